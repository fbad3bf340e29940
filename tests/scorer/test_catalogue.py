"""The feature catalogue (services/scorer/catalogue.py) is the one list every part follows.

The Python reference computes exactly its features in its order, the C twin was written
against the same table (feature names, counters and their order), the burst channels and the
policy's rule validation come from it — so adding a feature is one row plus its update code,
and a part left behind fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.common.pseudonym import Pseudonymizer, generate_key_text, parse_key
from services.scorer import catalogue
from services.scorer import derived as D
from services.scorer import features as F
from services.scorer import layout as L
from services.scorer.detectors import BURST_CHANNELS
from services.scorer.exceptions import PolicyError
from services.scorer.policy import Policy

C_SOURCE = Path("services/scorer/_fastcore.c").read_text()


@pytest.mark.parametrize(("kind", "compute", "table"), [
    ("number", F.number_features, L.NUMBER), ("device", F.device_features, L.DEVICE)])
def test_the_python_reference_computes_the_catalogue_in_order(kind: catalogue.EntityKind, compute: object,
                                                               table: L.Layout) -> None:
    feats = compute(table.empty())  # type: ignore[operator]
    assert tuple(feats) == catalogue.record_features(kind)
    derived = {f.name for f in catalogue.FEATURES[kind] if f.kind != "count"}
    assert set(D.DERIVED[kind]) == derived, "a derived feature without a formula, or a formula without a row"


def test_the_c_twin_follows_the_catalogue() -> None:
    from services.scorer import _fastcore  # type: ignore[attr-defined]

    assert {kind: catalogue.record_features(kind) for kind in ("number", "device")} == _fastcore.FEATURE_SIGNATURE
    assert _fastcore.LAYOUT_SIGNATURE == F.LAYOUT_SIGNATURE
    # the C's counter enums (the record slots it computes with) have one entry per catalogue counter
    for prefix, kind in (("N", "number"), ("D", "device")):
        enum = re.search(r"enum \{ (" + prefix + r"_[A-Z0-9_, \n]+?)" + prefix + r"_COUNTERS \}", C_SOURCE)
        assert enum is not None
        assert len([name for name in enum.group(1).replace("\n", " ").split(",") if name.strip()]) == \
            len(catalogue.COUNTERS[kind])
    assert F.COMPILED_APPLY is _fastcore.apply


def test_a_catalogue_the_c_does_not_know_disables_the_c(monkeypatch: pytest.MonkeyPatch) -> None:
    renamed = dict(F.FEATURE_SIGNATURE, number=(*F.FEATURE_SIGNATURE["number"][:-1], "off_network"))
    monkeypatch.setattr(F, "FEATURE_SIGNATURE", renamed)
    assert F._compiled("apply") is None


def test_burst_channels_and_the_layout_come_from_the_catalogue() -> None:
    for kind in ("number", "device"):
        assert [channel for channel, *_ in BURST_CHANNELS[kind]] == list(catalogue.BURST[kind])  # type: ignore[index]
    assert L.NUMBER.counters == catalogue.COUNTERS["number"]
    assert L.DEVICE.counters == catalogue.COUNTERS["device"]
    with pytest.raises(ValueError, match="no count feature"):
        catalogue.BURST["number"] = (*catalogue.BURST["number"], "nonsense")
        try:
            catalogue.burst_channels("number")
        finally:
            catalogue.BURST["number"] = catalogue.BURST["number"][:-1]


def test_a_rule_on_a_feature_the_catalogue_does_not_have_is_rejected(tmp_path: Path) -> None:
    text = Path("services/scorer/policy.yaml").read_text()
    assert "url_share_lb_24h: 0.3" in text
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace("url_share_lb_24h: 0.3", "url_share_lower_24h: 0.3"))
    with pytest.raises(PolicyError, match="no such number feature url_share_lower_24h"):
        Policy.load(Pseudonymizer(parse_key(generate_key_text("t"))), path)
