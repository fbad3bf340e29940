"""Every field of an alert, exactly: an entity's own alert (``Verdicts.alert``) and a link alert
(a number acting on a flagged device). Partners read these fields (the window, the evidence, the
campaign, the sealed number and its key id, the ingest time for latency). Found by mutation
testing (docs/mutation.md): the id tests alone let dropped or changed fields through."""

from __future__ import annotations

import msgspec

from services.common.records import Link, Reason, Window
from services.scorer import layout as L
from services.scorer.output import iso_ms
from services.scorer.verdicts import device_campaign
from tests.scorer.helpers import T0, device_view, pid, sms_out
from tests.scorer.test_engine import engine

EPISODE_S = T0 // 1000 - 600


def _reason(window: str, code: str = "HIGH_RECIPIENT_DIVERSITY") -> Reason:
    return Reason(code=code, feature="recipients_1h", value=40.0, window=window, rarity="p99.9", text=code)


def _number_values() -> list[object]:
    values: list[object] = list(L.NUMBER.empty())
    values[L.EPISODE_S] = EPISODE_S
    values[L.N_VIEWS] = 42
    return values


def test_the_alert_window_spans_the_first_reasons_window_ending_now() -> None:
    verdicts = engine().verdicts
    view = sms_out(pid("n1"), pid("p1"), T0)
    spans = {"5m": 300_000, "1h": 3_600_000, "24h": 86_400_000,
             "event": 3_600_000, "lifetime": 3_600_000}          # other windows: an hour
    for window, span in spans.items():
        alert = verdicts.alert(_number_values(), view, score=90, level="high", reasons=[_reason(window)],
                               features={}, now_ms=T0, campaign=None)
        assert alert.window == Window(start=iso_ms(T0 - span), end=iso_ms(T0)), window
    bare = verdicts.alert(_number_values(), view, score=90, level="high", reasons=[], features={}, now_ms=T0,
                          campaign=None)
    assert bare.window == Window(start=iso_ms(T0 - 3_600_000), end=iso_ms(T0)) and bare.reasons == []


def test_an_alert_carries_positive_evidence_rounded_the_top_five_reasons_and_its_campaign() -> None:
    eng = engine()
    view = msgspec.structs.replace(sms_out(pid("n2"), pid("p2"), T0), number_enc="enc-n2", ingested_ms=T0 + 7)
    reasons = [_reason("1h", f"CODE_{i}") for i in range(7)]
    alert = eng.verdicts.alert(_number_values(), view, score=91, level="high", reasons=reasons,
                               features={"a": 1.234, "zero": 0.0, "half": 0.5, "negative": -1.0},
                               now_ms=T0, campaign="cmp-0123456789abcdef")
    assert alert.evidence == {"a": 1.23, "half": 0.5, "views_total": 42.0}
    assert alert.reasons == reasons[:5]
    assert (alert.entity_type, alert.entity, alert.level, alert.score) == ("number", view.entity, "high", 91)
    assert (alert.model_version, alert.raised_at, alert.campaign_id) == (eng.model_version, iso_ms(T0),
                                                                        "cmp-0123456789abcdef")
    assert (alert.number_enc, alert.key_id, alert.ingested_ms) == ("enc-n2", "k", T0 + 7)


def test_only_a_number_alert_carries_the_sealed_number_and_its_key_id() -> None:
    verdicts = engine().verdicts
    plain = verdicts.alert(_number_values(), sms_out(pid("n3"), pid("p3"), T0), score=90, level="high",
                           reasons=[], features={}, now_ms=T0, campaign=None)
    assert (plain.number_enc, plain.key_id, plain.campaign_id) == (None, None, None)
    # a device view carries its subscriber's sealed number: a device alert must not
    device = msgspec.structs.replace(device_view(pid("d3"), pid("n3"), pid("i3"), T0, pid("p3")), number_enc="enc")
    values = L.DEVICE.empty()
    values[L.EPISODE_S] = EPISODE_S
    alert = verdicts.alert(values, device, score=90, level="high", reasons=[], features={}, now_ms=T0,
                           campaign=None)
    assert (alert.entity_type, alert.number_enc, alert.key_id) == ("device", None, None)


def _link(**changes: object) -> Link:
    link = Link(number=pid("linked-number"), device=pid("flagged-device"), device_score=90,
                device_episode_s=EPISODE_S, reason="SIM_HOPPING", occurred_ms=T0, key_id="k",
                ingested_ms=T0 + 5, number_enc="enc-linked", campaign_id="cmp-00000000000000aa")
    return msgspec.structs.replace(link, **changes)


def test_a_link_alert_carries_the_devices_campaign_the_model_and_the_ingest_time() -> None:
    eng = engine()
    [alert] = eng.apply_link(_link()).alerts
    assert alert.campaign_id == "cmp-00000000000000aa" and alert.model_version == eng.model_version
    assert (alert.number_enc, alert.key_id, alert.ingested_ms) == ("enc-linked", "k", T0 + 5)
    assert alert.window == Window(start=iso_ms(EPISODE_S * 1000), end=iso_ms(T0)) and alert.raised_at == iso_ms(T0)


def test_a_link_alert_without_campaign_sealed_number_or_ingest_time_fills_in_or_leaves_out() -> None:
    link = _link(campaign_id=None, number_enc=None, ingested_ms=0, device_episode_s=0)
    [alert] = engine().apply_link(link).alerts
    assert alert.campaign_id == device_campaign(link.device)     # a link of an older scorer
    assert (alert.number_enc, alert.key_id, alert.ingested_ms) == (None, None, None)
    assert alert.window.start == "1970-01-01T00:00:00.000Z"
