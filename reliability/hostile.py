"""A labelled corpus of hostile raw events: each malformed input with the reason ingest must give.

Families: invalid JSON (JSONTestSuite ``n_`` cases, plus invalid UTF-8), JSON that is not an
object, huge and deeply nested payloads, duplicate keys, wrong types, missing fields, bad
identifiers, NUL bytes and control characters, unicode tricks (fullwidth and Arabic-Indic
digits, bidi overrides, zero-width spaces, homoglyph senders, lone surrogates), bad and
far-future timestamps. ``edge_valid`` lists inputs that look odd but are valid and must be
scored like any other (far-past events, unicode event ids, integral floats, NBSP separators).

Every expected reason was decided from the contract (docs/contracts.md), not from what the
code happened to answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

# JSONTestSuite (nst/JSONTestSuite) "n_" documents: every RFC 8259 parser must reject them.
JSON_TEST_SUITE_N: tuple[bytes, ...] = (
    b"[1 true]", b'["": 1]', b"[,1]", b"[1,,2]", b'["x",,]', b"[1,]", b'{"a":1,}', b"{,}", b'{"a" 1}',
    b'{"a":"a" 123}', b"{'a':0}", b'{"a":"b",,"c":"d"}', b"{a:1}", b'{"a":1 "b":2}', b'{"a"://\n1}',
    b'{"a":/*c*/1}', b'["a"', b'{"a":[}', b"[NaN]", b"[Infinity]", b"[-Infinity]", b"[+1]", b"[01]",
    b"[1.]", b"[.1]", b"[1e]", b"[1e+]", b"[0x1]", b"[1.0e-]", b"[- 1]", b"[tru]", b"[nul]", b"[True]",
    b'["\\x00"]', b'["\\uD800\\u"]', b'["\\u00A"]', b'["\\a"]', b'["\t"]', b'["new\nline"]',
    b"['single quote']", b'["\x00"]', b'["abc', b"[\"\\\"]", b"{\"a\":\"b\"}#", b"{}}", b"[]]", b"[][]",
    b"\xef\xbb\xbf{}", b"[\"\xff\"]", b"[\"\xc0\xaf\"]", b"[\"\xed\xa0\x80\"]", b"[\"\xe9\"]", b"{\"\xb9\":1}",
    b"", b" ", b"[", b"{", b"]", b"}", b":", b",", b"\x00", b"nul", b"{\"a\":1}\x00", b"[1]x",
    b"{\"a\":tru}", b"[\"a\" \"b\"]", b"{\"a\":\"b\" \"c\":\"d\"}", b"[1e1.0]", b"[--1]", b"[1-]",
)
# Valid JSON, valid UTF-8, but not an object (JSONTestSuite "y_" top-level values).
NOT_OBJECTS: tuple[bytes, ...] = (b"null", b"true", b"false", b"0", b"-0.0e1", b'"event"', b"[]", b"[{}]",
                                  b'[{"event_id":"x"}]', b"1e2", b'"\\u0000"', b"[null]")


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' * depth + inner + b"}" * depth


@dataclass(frozen=True)
class Case:
    raw: bytes
    reason: str | None     # None: valid (must be scored)
    family: str


class Corpus:
    """Builds hostile cases around realistic base events (``base_event`` varies per case)."""

    def __init__(self, seed: int, now: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.now = now or datetime.now(UTC)
        self.n = 0

    def base_event(self) -> dict[str, object]:
        rng = self.rng
        self.n += 1
        kind = rng.random()
        ev: dict[str, object] = {
            "event_id": f"hostile-{self.n}", "operator": rng.choice(["kpn", "odido", "vodafoneziggo"]),
            "occurred_at": (self.now - timedelta(seconds=rng.randrange(1, 3600))).isoformat(),
            "a_number": f"+316{rng.randrange(10**7, 10**8)}", "b_number": f"06{rng.randrange(10**7, 10**8)}",
            "direction": rng.choice(["mo", "mt"]),
        }
        if kind < 0.6:
            ev["type"] = "sms"
            ev["sms"] = {"segments": rng.randrange(1, 4), "has_url": rng.random() < 0.2, "chars": 120}
        else:
            ev["type"] = "call"
            ev["call"] = {"duration_s": round(rng.uniform(0, 600), 1), "answered": rng.random() < 0.7}
        if rng.random() < 0.5:
            ev["imei"] = f"35{rng.randrange(10**12, 10**13)}"
            ev["imsi"] = f"20408{rng.randrange(10**9, 10**10)}"
            ev["cell_id"] = f"cell-{rng.randrange(1000)}"
        return ev

    def _with(self, **changes: object) -> bytes:
        ev = self.base_event()
        for key, value in changes.items():
            if value is ...:
                ev.pop(key, None)
            else:
                ev[key] = value
        return orjson.dumps(ev)

    def _splice(self, field: str, raw_value: bytes) -> bytes:
        """A base event whose ``field`` holds ``raw_value`` verbatim (bytes orjson cannot write)."""
        ev = self.base_event()
        ev[field] = "\x01PLACEHOLDER\x01"
        return orjson.dumps(ev).replace(b'"\\u0001PLACEHOLDER\\u0001"', raw_value)

    def families(self) -> dict[str, Callable[[], Case]]:
        rng = self.rng
        w = self._with
        s = self._splice

        def c(raw: bytes, reason: str | None, family: str) -> Case:
            return Case(raw, reason, family)

        far_future = rng.choice(["9999-12-31T23:59:59Z", "2999-01-01T00:00:00+14:00",
                                 (self.now + timedelta(days=rng.randrange(1, 4000))).isoformat()])
        return {
            "jsontestsuite": lambda: c(rng.choice(JSON_TEST_SUITE_N), "INVALID_JSON", "jsontestsuite"),
            "not_object": lambda: c(rng.choice(NOT_OBJECTS), "NOT_AN_OBJECT", "not_object"),
            "invalid_utf8": lambda: c(s(rng.choice(["event_id", "cell_id", "a_number"]),
                                        rng.choice([b'"\xff\xfe"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"a\x80"'])),
                                      "INVALID_JSON", "invalid_utf8"),
            "raw_nul": lambda: c(s("event_id", b'"a\x00b"'), "INVALID_JSON", "nul"),
            "escaped_nul_id": lambda: c(w(event_id="id\x00" + str(rng.random())), "INVALID_FIELD", "nul"),
            "escaped_nul_cell": lambda: c(w(cell_id="cell\x00"), "INVALID_FIELD", "nul"),
            "nul_number": lambda: c(w(a_number="+3161234\x005678"), "INVALID_NUMBER", "nul"),
            "control_char_id": lambda: c(w(event_id=f"id\n{rng.random()}"), "INVALID_FIELD", "nul"),
            "huge": lambda: c(w(padding="x" * rng.randrange(66_000, 300_000)), "TOO_LARGE", "huge"),
            "huge_array": lambda: c(b"[" + b"1," * 40_000 + b"1]", "TOO_LARGE", "huge"),
            "deep_object": lambda: c(s("extra", _nested(rng.randrange(2_000, 10_000))), "INVALID_JSON", "nested"),
            "deep_array": lambda: c(b"[" * 20_000 + b"]" * 20_000, "INVALID_JSON", "nested"),
            "duplicate_key": lambda: c(w()[:-1] + b',"a_number":"+31600000001"}', "DUPLICATE_KEY", "duplicate_key"),
            "duplicate_key_nested": lambda: c(s("sms", b'{"segments":1,"segments":9}'), "DUPLICATE_KEY",
                                              "duplicate_key"),
            "wrong_type_id": lambda: c(w(event_id=rng.choice([7, 1.5, True, None, [], {}])), "WRONG_TYPE",
                                       "wrong_type"),
            "wrong_type_number": lambda: c(w(a_number=rng.choice([31612345678, [1], {"n": 1}, False])),
                                           "WRONG_TYPE", "wrong_type"),
            "wrong_type_sms": lambda: c(w(type="sms", call=..., sms=rng.choice(["1", 1, [1], {"segments": "1"}])),
                                        "WRONG_TYPE", "wrong_type"),
            "wrong_type_ts": lambda: c(w(occurred_at=rng.choice([1793610000, None, ["2026"]])), "WRONG_TYPE",
                                       "wrong_type"),
            "missing_field": lambda: c(w(**{rng.choice(["event_id", "operator", "type", "occurred_at"]): ...}),
                                       "MISSING_FIELD", "missing"),
            "unknown_type": lambda: c(w(type=rng.choice(["mms", "SMS", "", "fax"])), "UNKNOWN_TYPE", "wrong_type"),
            "schema_version": lambda: c(w(schema_version=rng.choice([0, 2, 99, -1])), "SCHEMA_VERSION",
                                        "wrong_type"),
            "bad_timestamp": lambda: c(w(occurred_at=rng.choice([
                "yesterday", "2026-11-02T10:00:00", "2026-13-01T00:00:00Z", "2026-02-30T10:00:00Z",
                "2026-06-30T23:59:60Z", "2026-01-01 10:00:00Z", "2026-W01-1T10:00:00Z", "2026-01-01T10:00:00+25:00",
                "2026-01-01t10:00:00z", "１９７０-01-01T00:00:00Z"])), "BAD_TIMESTAMP", "timestamp"),
            "far_future": lambda: c(w(occurred_at=far_future), "FUTURE_EVENT", "far_future"),
            "bad_number": lambda: c(w(b_number=rng.choice(["06-CALL-ME", "+", "++31612345678", "1" * 31,
                                                           "+999999999999", "0", "tel:+31612345678", "PayPal"])),
                                    "INVALID_NUMBER", "identifier"),
            "bad_imei": lambda: c(w(imei=rng.choice(["123", "3534567890123456789", "35345678901234X",
                                                     "-35345678901234", "35 345678 901234 5"])),
                                  "INVALID_IMEI", "identifier"),
            "bad_imsi": lambda: c(w(imsi=rng.choice(["1234", "2040812345678901", "20408abc", ""])),
                                  "INVALID_IMSI", "identifier"),
            "bad_operator": lambda: c(w(operator=rng.choice(["KPN", "kpn mobile", "a" * 33, "kpn\u200b"])),
                                      "INVALID_FIELD", "identifier"),
            "unicode_digits": lambda: c(w(a_number=rng.choice([
                "+３１６１２３４５６７８", "\u0660\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
                "+\u0663\u0661\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668"])),
                "INVALID_NUMBER", "unicode"),
            "unicode_invisible": lambda: c(w(a_number=rng.choice([
                "\u202e+31612345678", "+3161234\u200b5678", "+31612345678\u2060", "\ufeff+31612345678"])),
                "INVALID_NUMBER", "unicode"),
            "homoglyph_sender": lambda: c(w(type="sms", call=..., sms={"segments": 1},
                                            a_number=rng.choice(["P\u0430yPal", "ING\u200b", "R\u0430bobank",
                                                                 "PayPal\n"])),
                                          "INVALID_NUMBER", "unicode"),
            "unicode_imei": lambda: c(w(imei="\u0663" * 15), "INVALID_IMEI", "unicode"),
            "lone_surrogate": lambda: c(s(rng.choice(["event_id", "a_number", "cell_id"]),
                                          rng.choice([b'"\\ud800"', b'"\\udfff"', b'"a\\ud83d"'])),
                                        "INVALID_JSON", "unicode"),
        }

    def hostile(self, n: int) -> list[Case]:
        families = list(self.families().items())
        out: list[Case] = []
        for i in range(n):
            # rebuild the closures now and then so randomised constants vary
            if i % 500 == 0:
                families = list(self.families().items())
            out.append(families[i % len(families)][1]())
        return out

    def edge_valid(self, n: int) -> list[Case]:
        """Odd-looking but valid events: they must be scored, never dead-lettered."""
        rng = self.rng
        w = self._with
        makers: list[Callable[[], Case]] = [
            lambda: Case(w(occurred_at=rng.choice(["0001-01-01T00:00:00Z", "1900-01-01T00:00:00+01:00",
                                                   "1969-12-31T23:59:59Z", "2000-02-29T12:00:00Z"])),
                         None, "far_past"),
            lambda: Case(w(event_id="\U0001f600" * rng.randrange(1, 120) + str(self.n)), None, "unicode_id"),
            lambda: Case(w(type="sms", call=..., sms={"segments": 2.0, "chars": 80.0}), None, "integral_float"),
            lambda: Case(w(a_number="+31 6\u00a012345678"[:0] + f"+31 6\u00a0{rng.randrange(10**7, 10**8)}"),
                         None, "nbsp"),
            lambda: Case(w(text="content that must be stripped", schema_version=1), None, "content"),
            lambda: Case(w(extra={"nested": [1, {"a": "b\":c"}]}, occurred_at=(
                self.now - timedelta(hours=rng.randrange(7, 72))).isoformat()), None, "late"),
        ]
        return [makers[i % len(makers)]() for i in range(n)]


def far_past_count(cases: list[Case]) -> int:
    return sum(1 for c in cases if c.family in ("far_past", "late"))
