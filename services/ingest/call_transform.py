"""A validated ``call_state`` event → one pseudonymised ``CallState`` for ``fraudradar.calls``.

The privacy boundary for call signalling, like ``transform.py`` for the other events: the
numbers are normalised and replaced by pseudonyms, the call id by a digest, and what the live
call state needs from the plaintext is computed here and travels as a class: the owner of a
protected presented CLI (``ProtectedNumbers``), and whether that CLI is a number of the
operator's own country (an international route presenting a domestic number is the classic
spoofing pattern). Call signalling yields no views: the scorer learns calls from the CDR
(``call`` events), the live state is the API's (docs/architecture.md, "Live call state").
"""

from __future__ import annotations

import hashlib

import phonenumbers

from services.common.call_records import CallState
from services.common.normalise import IdentifierError, normalise_number
from services.common.protected_numbers import ProtectedNumbers
from services.common.pseudonym import Pseudonymizer
from services.ingest.decode import INVALID_CALL_STATE, RawEvent, Rejected


def call_digest(operator: str, call_id: str) -> str:
    return hashlib.blake2b(f"{operator}\x1fcall\x1f{call_id}".encode(), digest_size=16).hexdigest()


class CallTransformer:
    """Stateless; safe to share."""

    def __init__(self, pseudonymizer: Pseudonymizer, protected: ProtectedNumbers | None = None,
                 default_region: str = "NL", operator_regions: dict[str, str] | None = None) -> None:
        self._pseudo = pseudonymizer
        self._protected = protected or ProtectedNumbers.empty()
        self._default_region = default_region
        self._operator_regions = operator_regions or {}

    def transform(self, ev: RawEvent, ingested_ms: int) -> CallState | Rejected:
        assert ev.call_state is not None and ev.a_number is not None and ev.b_number is not None
        cs = ev.call_state
        region = self._operator_regions.get(ev.operator, self._default_region)
        try:
            a = normalise_number(ev.a_number, region)
            b = normalise_number(ev.b_number, region)
            cli = normalise_number(cs.presented_cli, region) if cs.presented_cli is not None else a
        except IdentifierError as exc:
            return Rejected(exc.reason, str(exc))
        if cs.state != "ended" and cs.duration_s is not None:  # the schema refuses it; kept as a guard
            return Rejected(INVALID_CALL_STATE, "call_state.duration_s belongs to the ended step only")
        subscriber, counterpart = (a, b) if ev.direction == "mo" else (b, a)
        counterpart_p = self._pseudo("msisdn", counterpart.value)
        cli_p = self._pseudo("msisdn", cli.value) if cli.value != counterpart.value else None
        country = phonenumbers.country_code_for_region(region)
        return CallState(
            call=call_digest(ev.operator, cs.call_id), subscriber=self._pseudo("msisdn", subscriber.value),
            counterpart=counterpart_p, state=cs.state,  # type: ignore[arg-type]
            direction=ev.direction,  # type: ignore[arg-type]
            operator=ev.operator, occurred_ms=ev.occurred_ms, ingested_ms=ingested_ms, key_id=self._pseudo.key_id,
            cli=cli_p, cli_owner=self._protected.owner_of(cli.value),
            cli_domestic=cli.kind == "e164" and cli.value.startswith(f"+{country}"),
            international=cs.international, forwarded=cs.forwarded, duration_s=cs.duration_s,
        )
