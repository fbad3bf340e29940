"""The compiled record update (services/scorer/_fastcore.c) against its Python reference.

``features.apply_view`` is the specification; ``_fastcore.apply`` must return exactly the same
(same packed bytes, same unpacked list with the same types, same float activity) or decline with
None, after which the engine runs the Python. Checked per call on generated views and records
(hypothesis), on entity histories long enough to overflow sets and rebase the decay, and end to
end: the engine over a synthetic scenario stream keeps identical state and emits identical
records with and without the compiled update.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.pseudonym import Pseudonymizer, generate_key_text, parse_key
from services.common.records import CallMeta, ForwardingMeta, SimMeta, SmsMeta, SubscriptionMeta, View, encode
from services.devtools.synthetic import Generator
from services.scorer import features as F
from services.scorer import layout as L
from services.scorer.partition import PartitionScorer
from services.scorer.record import fp32
from tests.scorer.helpers import T0, pid

CORE = F.COMPILED_APPLY
SCAN = F.COMPILED_SCAN
A2P = frozenset({pid("bank-sender"), pid("otp-short-code")})
MODEMS = frozenset({35693803})
CODES = frozenset({pid("bank-sender")})      # one-time-code senders: the change tail counts their SMS


def test_the_compiled_update_is_built_and_in_use() -> None:
    # `make test` installs the project with its C extension; without it the scorer silently
    # falls back to Python, and every equivalence test below would compare Python with itself
    from services.scorer import _fastcore  # type: ignore[attr-defined]

    assert _fastcore.LAYOUT_SIGNATURE == F.LAYOUT_SIGNATURE, "_fastcore.c and features.py describe different records"
    assert CORE is _fastcore.apply
    assert SCAN is _fastcore.scan
    engine = PartitionScorer.default(Pseudonymizer(parse_key(generate_key_text("t"))))
    assert engine.engine._apply is CORE
    assert engine.sweeper.scan is SCAN


# -- generated views ------------------------------------------------------------------------------
_PSEUDONYMS = st.sampled_from([pid(f"p{i}") for i in range(40)] + [pid("bank-sender"), "0" * 32])
_ODD_TEXT = st.sampled_from(["", "xyz", "12", "0x1f", " 1f2e3d4c5b6a7988", "٣٥٦٩٣٨٠٣", "ffffffff", "1234567"])
_TACS = st.one_of(st.none(), st.sampled_from(["35693803", "35332011", "01", "", "3569380X", "٣٥٦٩٣٨٠٣",
                                              "123456789", "1234567890", "99999999999"]))


_DAY_MS = 86_400_000


def _offsets(span_ms: int) -> st.SearchStrategy[int]:
    """A view's time from t0: mostly within the hour before to ``span_ms`` after, one in four days
    to months late (the 5-minute weight underflows after ~62 h; link runs' 24-bit clock wraps at
    194 days)."""
    near = st.integers(-3_600_000, span_ms)
    late = st.one_of(st.integers(-200 * _DAY_MS, -_DAY_MS),
                     st.sampled_from([-3 * _DAY_MS, -62 * 3_600_000, -120 * _DAY_MS, -(1 << 24) * 1000 + 3 * _DAY_MS]))
    return st.one_of(near, near, near, late)


@st.composite
def views(draw: st.DrawFn, entity_type: str | None = None, t0: int = T0, span_ms: int = 6 * 3_600_000,
          odd: bool = True) -> View:
    kind = entity_type or draw(st.sampled_from(["number", "device"]))
    role = draw(st.sampled_from(["out", "in", "change"]))
    typ = draw(st.sampled_from(["sim", "sim", "forwarding", "subscription"])) if role == "change" \
        else draw(st.sampled_from(["sms", "call"]))
    ids = st.one_of(st.none(), _PSEUDONYMS, _ODD_TEXT) if odd and draw(st.integers(0, 9)) == 0 \
        else st.one_of(st.none(), _PSEUDONYMS)
    return View(
        view_id=pid(str(draw(st.integers()))), entity_type=kind,  # type: ignore[arg-type]
        entity=draw(_PSEUDONYMS), role=role, type=typ, operator="op",  # type: ignore[arg-type]
        occurred_ms=t0 + draw(_offsets(span_ms)), ingested_ms=t0, key_id="k",
        peer=draw(ids), peer_kind=draw(st.sampled_from([None, "e164", "alphanumeric", "short_code"])),
        number=draw(ids), device=draw(ids), imsi=draw(ids), cell=draw(ids),
        tac=draw(_TACS if odd else st.sampled_from([None, "35693803", "35332011"])),
        subscriber=draw(st.booleans()),
        sms=SmsMeta(has_url=draw(st.booleans())) if typ == "sms" and draw(st.integers(0, 5)) else None,
        call=CallMeta(duration_s=draw(st.sampled_from([0.0, 3.0, 9.999, 10.0, 45.0, 7])),
                      answered=draw(st.booleans())) if typ == "call" and draw(st.integers(0, 5)) else None,
        sim=SimMeta(change=draw(st.sampled_from(["swap", "activation", "port_in", "port_out", "device_change"])))
        if typ == "sim" and draw(st.integers(0, 5)) else None,
        forwarding=ForwardingMeta(action=draw(st.sampled_from(["set", "cleared"])),
                                  kind=draw(st.sampled_from(["unconditional", "busy", "no_answer", "not_reachable"])))
        if typ == "forwarding" and draw(st.integers(0, 5)) else None,
        subscription=SubscriptionMeta(change=draw(st.sampled_from(["new", "ported_in", "ported_out", "ceased"])),
                                      contract=draw(st.sampled_from([None, "PAYG", "PAYM", "business"])))
        if typ == "subscription" and draw(st.integers(0, 5)) else None,
    )


def _args(view: View, packed: bytes | None, offset: int | None, night: bool = False,
          min_activity: float = 4.0, protected: bool = False) -> tuple:  # type: ignore[type-arg]
    return (view.entity_type == "number", packed, view, offset, night, 10.0, A2P, min_activity, MODEMS, protected,
            CODES)


def _same(compiled: tuple | None, python: tuple) -> None:  # type: ignore[type-arg]
    if compiled is None:
        return                      # declined: the engine runs the Python
    assert compiled[0] == python[0]
    if python[0] == 2:
        values, reference = compiled[1], python[1]
        assert [type(v) for v in values] == [type(v) for v in reference]
        assert values == reference
        assert compiled[2:5] == python[2:5]
        features, expected = compiled[5], python[5]
        assert list(features) == list(expected)                   # same keys in the same order
        assert [type(v) for v in features.values()] == [type(v) for v in expected.values()]
        assert _bits(features) == _bits(expected)                 # bit for bit (NaN included)
    else:
        assert compiled == python


def _bits(features: dict[str, float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in features.values()]


def _run(history: list[View], *, min_activity: float, night: bool, protected: bool) -> int:
    """Thread one record through ``history`` comparing every step; how many steps C declined."""
    packed: dict[str, bytes] = {}
    declined = 0
    for offset, view in enumerate(history):
        key = view.entity_type + view.entity
        args = _args(view, packed.get(key), offset, night, min_activity, protected)
        compiled = CORE(*args)
        try:
            python = F.apply_view(*args)
        except (ValueError, OverflowError, AttributeError, TypeError, struct.error):
            assert compiled is None  # the Python raises: the compiled update must not have accepted it
            declined += 1
            continue
        _same(compiled, python)
        declined += compiled is None
        if python[0] == 1:
            packed[key] = python[1]
        elif python[0] == 2:
            layout = L.NUMBER if view.entity_type == "number" else L.DEVICE
            try:
                packed[key] = layout.pack(python[1])
            except struct.error:     # e.g. a 10-digit TAC: the C declined it above
                assert compiled is None

    return declined


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(views(), min_size=1, max_size=40), min_activity=st.sampled_from([0.5, 4.0, 1e9]),
       night=st.booleans(), protected=st.booleans())
def test_compiled_update_equals_the_reference_on_generated_views(history: list[View], min_activity: float,
                                                                  night: bool, protected: bool) -> None:
    _run(history, min_activity=min_activity, night=night, protected=protected)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(views(entity_type="number", span_ms=30 * 3_600_000, odd=False), min_size=150,
                        max_size=300))
def test_long_histories_overflow_sets_and_rebase_identically(history: list[View]) -> None:
    # one entity, 150-300 views over 30 h: recipient sets overflow into the sketch, the decay base
    # moves (every 200 min), late views land under the watermark; no view is declined
    one = [View(**{**{f: getattr(v, f) for f in v.__struct_fields__}, "entity": pid("one")}) for v in history]
    assert _run(one, min_activity=4.0, night=False, protected=False) == 0


_LIMITS = {"q": (-1, 2**62), "Q": (0, 2**64 - 1), "I": (0, 2**32 - 1), "B": (0, 255)}


@st.composite
def records(draw: st.DrawFn, layout: L.Layout) -> bytes:
    """Any record the layout can hold: times around the views' (or anywhere), counters, sets, flags."""
    values: list[float] = []
    near_ms = st.integers(T0 - 3 * 86_400_000, T0 + 86_400_000)
    near_s = st.integers((T0 - 3 * 86_400_000) // 1000, (T0 + 86_400_000) // 1000)
    for index, code in enumerate(layout.struct.format[1:]):
        if code == "f":
            values.append(draw(st.floats(0.0, 1e6, width=32)))
        elif index == L.LAST_MS:     # mostly ahead of the views (T0 - 1 h .. T0 + 6 h): late views
            values.append(draw(st.one_of(st.just(0), near_ms, st.integers(T0 + 6 * 3_600_000, T0 + 86_400_000),
                                         st.integers(T0, T0 + 200 * _DAY_MS))))     # or months late
        elif index == L.OFFSET:
            values.append(draw(st.one_of(st.just(-1), st.integers(*_LIMITS[code]))))
        elif index == L.BASE_MS:     # never ahead of the watermark, as the update keeps it
            base = draw(st.one_of(st.just(0), near_ms, st.just(values[L.LAST_MS])))
            values.append(min(base, values[L.LAST_MS]) if values[L.LAST_MS] else 0)
        elif index in (L.RISK_LEVEL, L.FLAG_EXPIRES_S, L.EVICTED):     # often clear: the fast path
            values.append(draw(st.one_of(st.just(0), st.integers(*_LIMITS[code]))))
        elif index in (L.SIM_CHANGED_S, L.DEVICE_CHANGED_S, L.ACTIVATED_S) and values[L.LAST_MS]:
            # around the watermark, where recency and the 24 h fast-path bound turn over
            edge = values[L.LAST_MS] // 1000 + draw(st.sampled_from([-86_401, -86_400, -86_399, -1, 0, 59, 60, 61]))
            values.append(draw(st.one_of(st.just(0), st.just(edge), near_s)))
        elif L.FIRST_S <= index <= L.SCORED_S or index == L.RISK_AT_S:
            values.append(draw(st.one_of(st.just(0), near_s, st.integers(*_LIMITS["I"]))))
        elif index >= layout.counters_end and code == "I" and index < layout.sketch_at:
            values.append(draw(st.sampled_from([0, 0, 1, fp32(pid("p1")), 2**32 - 1])))
        else:
            values.append(draw(st.integers(*_LIMITS[code])))
    return layout.pack(values)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), min_activity=st.sampled_from([0.5, 4.0]), night=st.booleans())
def test_compiled_update_equals_the_reference_from_any_stored_record(data: st.DataObject, min_activity: float,
                                                                      night: bool) -> None:
    # restored, migrated or old-policy records: flags set, changes "in the future" of the
    # watermark, full sets, saturated sketches, counters far from the base
    view = data.draw(views(odd=False))
    layout = L.NUMBER if view.entity_type == "number" else L.DEVICE
    packed = data.draw(records(layout))
    offset = data.draw(st.one_of(st.none(), st.integers(-1, 2**40)))
    args = _args(view, packed, offset, night, min_activity, data.draw(st.booleans()))
    try:
        python = F.apply_view(*args)
    except (ValueError, OverflowError, struct.error):
        assert CORE(*args) is None
        return
    _same(CORE(*args), python)


def test_a_device_record_with_more_calls_than_events_gives_no_sms_not_a_division_by_zero() -> None:
    """A stored device record whose day's calls exceed its originated events by two (a damaged or
    hand-made state: the engine never writes one) made the SMS count -2 and the link share's
    denominator 0: Python raised ZeroDivisionError and C divided by zero. The SMS count is held
    at 0 in both."""
    dev = pid("modem-dev")
    view = View(view_id="d1", entity_type="device", entity=dev, role="out", type="sms", operator="op",
                occurred_ms=T0, ingested_ms=T0, key_id="k", peer=pid("them"), sms=SmsMeta(has_url=True),
                tac="35693803")
    first = F.apply_view(*_args(view, None, 7))
    values = list(first[1])
    out_24h, call_24h = L.DEVICE.counter_at["out"] + 2, L.DEVICE.counter_at["call_out"] + 2
    values[call_24h] = values[out_24h] + 3.0      # the next SMS adds one event: calls exceed events by 2
    packed = L.DEVICE.pack(values)
    again = View(**{**{f: getattr(view, f) for f in view.__struct_fields__}, "view_id": "d2"})
    python = F.apply_view(*_args(again, packed, 8))
    assert python[0] == 2
    assert python[5]["url_share_24h"] == 1.0       # two link SMS over 0 SMS and the 2 pseudo-events
    assert 0.0 <= python[5]["url_share_lb_24h"] <= 1.0
    _same(CORE(*_args(again, packed, 8)), python)


def test_replays_and_unusual_values_are_left_to_python() -> None:
    me = pid("me")
    view = View(view_id="v", entity_type="number", entity=me, role="out", type="sms", operator="op",
                occurred_ms=T0, ingested_ms=T0, key_id="k", peer=pid("them"), sms=SmsMeta(has_url=True),
                tac="35693803")
    first = CORE(*_args(view, None, 7))
    assert first is not None and first[0] == 2          # on a modem TAC: looked at closely
    packed = L.NUMBER.pack(first[1])
    assert CORE(*_args(view, packed, 7)) == (0, 0) == F.apply_view(*_args(view, packed, 7))   # replay
    # a TAC in Arabic-Indic digits: str.isdigit() holds and int() reads it; C leaves it to Python
    odd = View(**{**{f: getattr(view, f) for f in view.__struct_fields__}, "tac": "٣٥٦٩٣٨٠٣"})
    assert CORE(*_args(odd, packed, 8)) is None
    assert F.apply_view(*_args(odd, packed, 8))[1][L.TAC] == 35693803
    # a record of another size (corrupt, or another layout) is the Python's to reject
    assert CORE(*_args(view, packed[:-1], 9)) is None
    with pytest.raises(Exception, match="unpack"):
        F.apply_view(*_args(view, packed[:-1], 9))


def test_the_engine_keeps_identical_state_and_output_with_and_without_it() -> None:
    pseudonymizer = Pseudonymizer(parse_key(generate_key_text("fastcore")))
    generator = Generator(seed=3)
    stream = generator.stream(normal=800, hours=4, fraud_start_h=1)
    ordered = sorted(stream.views, key=lambda v: v.occurred_ms)
    runs = []
    accepted: list[int] = []

    def counted(*args: object) -> tuple | None:  # type: ignore[type-arg]
        result = CORE(*args)
        accepted.append(result is not None)
        return result

    scans: list[int] = []

    def counted_scan(*args: object) -> tuple | None:  # type: ignore[type-arg]
        result = SCAN(*args)
        scans.append(result is not None)
        return result

    for compiled in (True, False):
        engine = PartitionScorer.default(pseudonymizer)
        engine.engine._apply = counted if compiled else None
        engine.sweeper.scan = counted_scan if compiled else None
        # short lives, so that the 4 h make the sweeps forget idle entities and expire flags
        engine.policy.ttl_ms = 3_600_000
        engine.policy.flag_ttl_ms = dict.fromkeys(engine.policy.flag_ttl_ms, 1_800_000)
        emitted = []
        for offset, view in enumerate(ordered):
            out = engine.process(view, offset=offset)
            emitted.append((out.score, out.skipped, [encode(a) for a in out.alerts],
                            encode(out.risk) if out.risk else None, list(out.tombstones),
                            [encode(r) for r in out.risk_updates], dict(out.model_scores)))
        runs.append((engine, emitted))
    (fast, fast_out), (slow, slow_out) = runs
    assert sum(len(e[2]) for e in fast_out) > 0, "the stream should raise alerts"
    assert all(accepted) and len(accepted) > 10_000, "the C must have done the work it is compared on"
    assert all(scans) and len(scans) >= 20, "every sweep's scan should have been the C's"
    assert fast.counters["forgotten"] > 100, "the sweeps should have forgotten idle entities"
    assert sum(len(e[4]) + len(e[5]) for e in fast_out) >= 5, "... and expired flags"
    assert fast_out == slow_out
    assert fast.store.numbers.records == slow.store.numbers.records
    assert fast.store.devices.records == slow.store.devices.records
    assert fast.counters == slow.counters


@pytest.mark.parametrize("since_change_s", [86_399, 86_400, 86_401])
def test_the_fast_path_turns_over_exactly_24_hours_after_a_change(since_change_s: int) -> None:
    # a quiet number (one SMS in) whose SIM changed exactly a day ago, or a second less or more
    view = View(view_id="v", entity_type="number", entity=pid("quiet"), role="in", type="sms", operator="op",
                occurred_ms=T0, ingested_ms=T0, key_id="k", peer=pid("friend"), sms=SmsMeta())
    values = L.NUMBER.empty()
    values[L.LAST_MS] = T0
    values[L.SIM_CHANGED_S] = T0 // 1000 - since_change_s
    args = _args(view, L.NUMBER.pack(values), 1)
    python = F.apply_view(*args)
    assert python[0] == (1 if since_change_s > 86_400 else 2)
    _same(CORE(*args), python)
    assert CORE(*args)[0] == python[0]


# -- the sweep's scan -----------------------------------------------------------------------------
_CUTOFF_MS = T0
_HORIZON_S = T0 // 1000 + 3600


@st.composite
def tables(draw: st.DrawFn, layout: L.Layout) -> dict[bytes, bytes]:
    """Records whose event time, flag expiry and link expiry sit at the sweep's edges."""
    out = {}
    for i in range(draw(st.integers(0, 30))):
        values = L.NUMBER.empty() if layout is L.NUMBER else L.DEVICE.empty()
        values[L.LAST_MS] = draw(st.sampled_from([0, _CUTOFF_MS - 1, _CUTOFF_MS, _CUTOFF_MS + 1, 2**62]))
        edges = st.sampled_from([0, 1, _HORIZON_S - 1, _HORIZON_S, _HORIZON_S + 1, 2**32 - 1])
        values[L.FLAG_EXPIRES_S] = draw(edges)
        values[layout.link_at + L.LINK_EXPIRES_S] = draw(edges)
        values[layout.link_at + L.LINK_S] = draw(edges)        # a neighbour: must not be read instead
        values[L.FLAG_FIRST_S] = draw(edges)
        out[draw(st.binary(min_size=1, max_size=16)) + bytes([i])] = layout.pack(values)
    return out


@settings(max_examples=500, deadline=None)
@given(data=st.data(), is_number=st.booleans())
def test_the_compiled_scan_equals_the_reference(data: st.DataObject, is_number: bool) -> None:
    records = data.draw(tables(L.NUMBER if is_number else L.DEVICE))
    horizon_s = data.draw(st.sampled_from([_HORIZON_S, 0, 2**40]))
    expected = F.scan_records(is_number, records, _CUTOFF_MS, horizon_s)
    assert SCAN(is_number, records, _CUTOFF_MS, horizon_s) == expected


def test_the_scan_finds_idle_and_expired_and_leaves_odd_tables_to_python() -> None:
    def table(layout: L.Layout) -> dict[bytes, bytes]:
        def record(last_ms: int, flag_s: int = 0, link_s: int = 0) -> bytes:
            values = layout.empty()
            values[L.LAST_MS], values[L.FLAG_EXPIRES_S] = last_ms, flag_s
            values[layout.link_at + L.LINK_EXPIRES_S] = link_s
            return layout.pack(values)

        return {b"idle": record(_CUTOFF_MS - 1, flag_s=1), b"fresh": record(_CUTOFF_MS),
                b"flag": record(_CUTOFF_MS, flag_s=_HORIZON_S - 1), b"link": record(_CUTOFF_MS, link_s=1),
                b"later": record(_CUTOFF_MS, flag_s=_HORIZON_S, link_s=_HORIZON_S)}

    numbers, devices = table(L.NUMBER), table(L.DEVICE)
    assert SCAN(True, numbers, _CUTOFF_MS, _HORIZON_S) == ([b"idle"], [b"flag", b"link"])
    assert SCAN(False, devices, _CUTOFF_MS, _HORIZON_S) == ([b"idle"], [b"flag"])    # devices: no link flags
    assert SCAN(False, numbers, _CUTOFF_MS, _HORIZON_S) is None     # a number record is not a device's size
    assert SCAN(True, {**numbers, b"short": numbers[b"fresh"][:-1]}, _CUTOFF_MS, _HORIZON_S) is None
    assert SCAN(True, {b"text": "not bytes"}, _CUTOFF_MS, _HORIZON_S) is None
    assert SCAN(True, {}, _CUTOFF_MS, _HORIZON_S) == ([], [])
    assert SCAN(True, numbers, 2**64, _HORIZON_S) is None          # bounds beyond 64 bits: the Python's
    assert F.scan_records(True, numbers, 2**64, _HORIZON_S)[0] == list(numbers)
    assert SCAN(True, numbers, _CUTOFF_MS, -(2**70)) is None
    for is_number, records in ((True, numbers), (False, devices)):
        assert F.scan_records(is_number, records, _CUTOFF_MS, _HORIZON_S) == \
            SCAN(is_number, records, _CUTOFF_MS, _HORIZON_S)
