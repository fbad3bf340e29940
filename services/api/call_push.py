"""Push of call-state events to banks' webhooks (Standard Webhooks, the existing dispatcher).

Two events, both offered once per call when its first step is applied live:

* ``call.risky``: a watch-listed customer entered a risky call (level high or critical):
  to each partner watching the customer's number that holds the ``call-state:check`` scope, on
  its webhooks subscribed to the event, so the bank app can warn before the transfer screen.
  Data: the watch entry (``watchId``, ``reference``) and the check's answer (status, level,
  reasons, start): never the counterpart.
* ``call.cli_spoofed``: a call presented one of the bank's own numbers and was taken for a
  spoof (``BANK_CLI_SPOOF``): to the bank that owns the number, with that number (the bank's
  own) and when; never the called customer, who may not be the bank's.

Events carry the ``fraudradar.calls`` partition and offset, so a delivery replica's cursors
deduplicate them like alerts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.api.call_state import REASONS, LiveCall
from services.api.webhooks import WebhookEvent
from services.common.call_records import CallState

if TYPE_CHECKING:
    from services.api.service import ApiService

RISKY = frozenset({"high", "critical"})


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def offer(service: ApiService, partition: int, offset: int, rec: CallState, call: LiveCall) -> None:
    """Called by the call feed on the event loop for each new call."""
    if service.dispatcher is None:
        return
    level, codes = service.calls.judge(call, int(service.calls.clock() * 1000))
    if level not in RISKY:
        return
    source = f"{service.calls.topic}:{partition}"
    at = _iso(call.started_ms)
    answer = {"status": "IN_CALL" if call.ended_ms is None else "RECENT_CALL", "riskLevel": level,
              "reasons": [{"code": c, "text": REASONS[c][1]} for c in codes], "startedAt": at}
    for (partner_id, _), entry in list(service.pstate.watchers.get(f"number:{rec.subscriber}", {}).items()):
        partner = service.partners.get(partner_id)
        if partner is None or "call-state:check" not in partner.granted:
            continue
        data: dict[str, Any] = {"watchId": entry.entry_id, **answer}
        if entry.reference:
            data["reference"] = entry.reference
        _send(service, partner_id, WebhookEvent(source, offset, "call.risky", data, at))
    owner = call.cli_owner
    if call.spoof and owner is not None and service.partners.get(owner) is not None:
        number = service.calls.own_number(owner, call.cli)
        data = {"startedAt": at, "internationalRoute": call.international, "reason": "BANK_CLI_SPOOF"}
        if number is not None:
            data["presentedNumber"] = number
        _send(service, owner, WebhookEvent(source, offset, "call.cli_spoofed", data, at))


def _send(service: ApiService, partner_id: str, event: WebhookEvent) -> None:
    assert service.dispatcher is not None
    for hook in service._owned_webhooks(partner_id):
        service.dispatcher.offer(hook.webhook_id, event)
