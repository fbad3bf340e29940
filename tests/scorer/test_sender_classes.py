"""Sender classes from structure: A2P sender IDs are never scored as subscribers; their red flag
is spoofing against the sender-ID registry (look-alikes, protected IDs from a SIM)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from services.common.normalise import normalise_number
from services.common.pseudonym import Pseudonymizer, parse_key
from services.common.records import SmsMeta, View
from services.scorer import registry
from services.scorer.exceptions import PolicyError
from services.scorer.partition import PartitionScorer
from services.scorer.policy import Policy
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.scorer.helpers import MIN, T0, device_view, pid, sms_in, sms_out

PSEUDO = Pseudonymizer(parse_key(TEST_PSEUDONYM_KEY))


def sender(name: str) -> str:
    return PSEUDO("msisdn", normalise_number(name, "NL", allow_alphanumeric=True).value)


def a2p(sender_id: str, i: int, *, kind: str = "alphanumeric", from_sim: bool = False, gap_ms: int = 2000) -> View:
    """An SMS under ``sender_id`` to a stranger with a link: delivered MT from an aggregator
    (no device), or, ``from_sim``, sent MO from a subscriber's SIM."""
    entity = sender(sender_id)
    return View(view_id=pid(f"{sender_id}{i}"), entity_type="number", entity=entity, role="out", type="sms",
                operator="op", occurred_ms=T0 + i * gap_ms, ingested_ms=T0, key_id="k", peer=pid(f"rcpt{i}"),
                peer_kind="e164", number_kind=kind, sms=SmsMeta(has_url=True),  # type: ignore[arg-type]
                subscriber=from_sim, imsi=pid("imsi") if from_sim else None,
                device=pid("dev") if from_sim else None)


@pytest.mark.parametrize(("name", "kind"), [("Pakketje", "alphanumeric"), ("ZORGKLIN1", "alphanumeric"),
                                            ("PostNL", "alphanumeric"), ("97979", "short_code")])
def test_an_a2p_sender_id_is_never_scored_by_subscriber_rules(name: str, kind: str) -> None:
    # unregistered or registered, a bulk sender texting hundreds of strangers links is A2P by form
    eng = PartitionScorer.default(PSEUDO)
    outs = [eng.process(a2p(name, i, kind=kind)) for i in range(400)]
    assert all(o.score == 0 and not o.alerts for o in outs)
    assert eng.state.entities()["number"] == 0
    assert eng.counters["a2p_views"] == 400


def test_the_same_traffic_from_a_subscriber_number_alerts() -> None:
    # the control of the test above: the gate is the sender's form, not the traffic. Paced (one
    # link SMS every ten minutes: SLOW_LINK_SPREAD); sent as one run, link SMS to strangers from a
    # number stay below the alert level without a second signal (policy: evidence group spread)
    eng = PartitionScorer.default(PSEUDO)
    outs = [eng.process(msgspec.structs.replace(a2p("Pakketje", i, gap_ms=10 * MIN), number_kind="e164"))
            for i in range(40)]
    assert any(o.alerts for o in outs)
    eng = PartitionScorer.default(PSEUDO)
    paced = [eng.process(a2p("Pakketje", i, gap_ms=10 * MIN)) for i in range(40)]
    assert not any(o.alerts or o.score for o in paced)


@pytest.mark.parametrize("spoof", ["lNG", "1NG", "Rab0bank", "RABOBANK1", "Rabobnk", "DigiD.", "D1giD"])
def test_a_lookalike_of_a_protected_sender_id_alerts_at_its_first_message(spoof: str) -> None:
    eng = PartitionScorer.default(PSEUDO)
    out = eng.process(a2p(spoof, 0))
    assert out.alerts and out.alerts[0].reasons[0].code == "SENDER_ID_LOOKALIKE"


@pytest.mark.parametrize("name", ["ING", "Rabobank", "PostNL", "KPN", "Pakketje", "DHL", "P0stNL"])
def test_registered_ids_and_lookalikes_of_unprotected_ones_do_not(name: str) -> None:
    eng = PartitionScorer.default(PSEUDO)
    assert not any(eng.process(a2p(name, i)).alerts for i in range(50))


def test_a_protected_sender_id_from_a_subscriber_sim_alerts() -> None:
    eng = PartitionScorer.default(PSEUDO)
    out = eng.process(a2p("ING", 0, from_sim=True))
    assert out.alerts and out.alerts[0].reasons[0].code == "PROTECTED_SENDER_FROM_SIM"
    # an unprotected (parcel) sender from a SIM is not spoofing a bank
    assert not PartitionScorer.default(PSEUDO).process(a2p("PostNL", 0, from_sim=True)).alerts


def test_fold_and_lookalikes() -> None:
    assert registry.fold("lNG") == registry.fold("ING") == "ing"
    assert registry.fold("Rab0bank") == "rabobank"
    assert registry.looks_like("Rabobamk", "Rabobank") and not registry.looks_like("Rabobank", "Rabobank")
    assert not registry.looks_like("Robobonk", "Rabobank")
    assert all(registry.looks_like(x, "ING") for x in registry.lookalikes("ING"))
    assert {"lNG", "1NG", "lng", "I.NG"} <= registry.lookalikes("ING")
    # a short ID's one-edit neighbours are ordinary words and names: only homoglyphs count
    assert not {"ING1", "IN", "tin6", "KING"} & registry.lookalikes("ING")


def test_registry_import_writes_good_rows_and_gives_a_reason_for_each_bad_one(tmp_path: Path) -> None:
    src = tmp_path / "export.csv"
    src.write_text("sender_id,owner,category,aggregators\n"
                   "ZorgKliniek,Kliniek B.V.,health,agg-1;agg-2\n"
                   "WAYTOOLONGSENDER,X,retail,\n"
                   "Bank,Some Bank,bank,\n"
                   "Shop,Shop B.V.,shopping,\n"
                   ",Nobody,retail,\n"
                   "Bank,Again,bank,\n"
                   "Route,R,retail,BAD AGG\n")
    out = tmp_path / "registry.csv"
    assert registry.main(["import", str(src), "--out", str(out)]) == 1
    assert [s.sender_id for s in registry.load(out)] == ["ZorgKliniek", "Bank"]
    rejected = [json.loads(line) for line in (tmp_path / "registry.csv.rejected.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [3, 5, 6, 7, 8]
    reasons = [r["reason"] for r in rejected]
    assert "neither a short code" in reasons[0] and "category 'shopping'" in reasons[1]
    assert "sender_id is empty" in reasons[2] and "already on line 4" in reasons[3] and "aggregator" in reasons[4]
    bad = tmp_path / "nohead.csv"
    bad.write_text("id,who\nX,Y\n")
    assert registry.main(["import", str(bad), "--out", str(tmp_path / "x.csv")]) == 2


def test_the_policy_loads_the_registry_it_names(tmp_path: Path) -> None:
    text = Path("services/scorer/policy.yaml").read_text()
    (tmp_path / "reg.csv").write_text("sender_id,owner,category,aggregators\nZorgKliniek,K,government,\n")
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace("sender_registry:\n", "sender_registry:\n  path: reg.csv\n"))
    policy = Policy.load(PSEUDO, path)
    assert policy.senders.protected == {sender("ZorgKliniek")}
    assert sender("ZorgK1iniek") in policy.senders.lookalike and sender("lNG") not in policy.senders.lookalike
    (tmp_path / "reg.csv").write_text("sender_id,owner,category\nX,Y,nonsense\n")
    with pytest.raises(PolicyError, match="category 'nonsense'"):
        Policy.load(PSEUDO, path)


def _modem_sms(me: str, i: int) -> View:
    return msgspec.structs.replace(sms_out(me, pid(f"customer{me}{i}"), T0 + i * 10 * MIN, url=True,
                                           device=pid("modem"), n=i), tac="86101503", subscriber=True)


def test_a_modem_whose_customers_reply_is_not_a_farm() -> None:
    # legitimacy evidence gates MODEM_LINK_SMS: the same link reminders from a modem, answered
    # by a third of the customers, raise nothing; unanswered, they alert by the third SMS
    eng = PartitionScorer.default(PSEUDO)
    business, farm = pid("clinic"), pid("farm")
    alerts = []
    for i in range(12):
        alerts += eng.process(_modem_sms(business, i)).alerts
        if i % 3 == 0:
            alerts += eng.process(sms_in(business, pid(f"customer{business}{i}"), T0 + i * 10 * MIN + MIN)).alerts
    assert not alerts
    farm_alerts = [eng.process(_modem_sms(farm, i)).alerts for i in range(3)]
    assert farm_alerts[-1] and farm_alerts[-1][0].reasons[0].code == "MODEM_LINK_SMS"


def test_a_modem_whose_reminders_carry_a_link_now_and_then_is_not_flagged_as_a_device() -> None:
    # the device sees no replies: its MODEM_LINK_SMS asks for a link share whose 95 % lower bound
    # is at least 0.3 — mostly links, as a farm sends, not a reminder with a link now and then
    eng = PartitionScorer.default(PSEUDO)

    def modem_view(device: str, i: int, url: bool) -> View:
        view = device_view(device, pid(f"line{device}"), pid(f"imsi{device}"), T0 + i * MIN, pid(f"c{device}{i}"))
        return msgspec.structs.replace(view, tac="86101503", sms=SmsMeta(has_url=url))

    business = [eng.process(modem_view(pid("clinic-modem"), i, url=i % 5 == 0)) for i in range(15)]
    assert not [a for o in business for a in o.alerts]
    farm = [eng.process(modem_view(pid("farm-modem"), i, url=True)) for i in range(2)]
    assert farm[-1].alerts and farm[-1].alerts[0].reasons[0].code == "MODEM_LINK_SMS"
