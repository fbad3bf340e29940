"""A call's counterpart first seen by the network today: the index and the classification (no broker)."""

from __future__ import annotations

import asyncio
import hashlib
from types import SimpleNamespace

from kafka import TopicPartition

from services.api.call_feed import CallFeed
from services.api.call_service import CallService
from services.api.call_state import REASONS, Announcements, counterpart_class, verdict
from services.api.config import ApiSettings
from services.api.first_seen import DAY_MS, FirstSeenFeed, FirstSeenIndex
from services.api.identifiers import EntityResolver
from services.common.first_seen import FirstSeen, encode_first_seen
from services.common.pseudonym import Key, Pseudonymizer
from tests.api.test_call_state_store import MIN, none, rec, store

NOW = 1_790_000_000_000


def p(name: str) -> str:
    """A pseudonym-shaped name (32 hex digits, like ``Pseudonymizer``'s)."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def test_the_index_answers_within_a_day_of_the_first_sighting_only() -> None:
    index = FirstSeenIndex()
    index.add(p("new"), NOW - 2 * 3600_000, NOW)
    index.add(p("stale"), NOW - DAY_MS - 1, NOW)           # older than a day: never held
    assert index.is_new(p("new"), NOW) and len(index) == 1
    assert not index.is_new(p("stale"), NOW) and not index.is_new(p("never"), NOW)
    # told again (a scorer replay, a later first sighting after it was forgotten): the earliest counts
    index.add(p("new"), NOW - 3600_000, NOW)
    assert not index.is_new(p("new"), NOW - 2 * 3600_000 + DAY_MS + 1)
    assert index.is_new(p("new"), NOW - 2 * 3600_000 + DAY_MS)


def test_the_index_is_bounded_and_ages_out_oldest_first() -> None:
    index = FirstSeenIndex(max_items=3)
    for i in range(5):
        index.add(p(f"n{i}"), NOW + i * MIN, NOW + i * MIN)
    assert len(index) == 3 and index.dropped == 2
    assert not index.is_new(p("n0"), NOW + 5 * MIN) and index.is_new(p("n4"), NOW + 5 * MIN)
    index.evict(NOW + 3 * MIN + DAY_MS + 1)                  # n2 and n3 aged out, n4 not yet
    assert len(index) == 1 and index.is_new(p("n4"), NOW + 4 * MIN + DAY_MS)


def test_a_first_seen_counterpart_is_a_low_reason_and_its_class_never_its_identity() -> None:
    s = store()
    index = FirstSeenIndex()
    index.add(p("fresh"), NOW - 10 * MIN, NOW)
    call = s.apply(rec("started", NOW, other=p("fresh")))
    old = s.apply(rec("started", NOW, call="c2", sub="s2", other=p("old")))
    assert call is not None and old is not None

    def first_seen(number: str) -> bool:
        return index.is_new(number, NOW)

    level, codes = verdict(call, none, first_seen)
    assert (level, codes) == ("low", ["COUNTERPART_FIRST_SEEN_TODAY"])
    assert REASONS["COUNTERPART_FIRST_SEEN_TODAY"][0] == "low"
    assert counterpart_class(call, codes) == "first_seen_today"
    assert p("fresh") not in REASONS["COUNTERPART_FIRST_SEEN_TODAY"][1]
    assert verdict(old, none, first_seen) == ("none", [])
    assert counterpart_class(old, []) == "unknown"
    # a stronger reason sets the level and the class; the first sighting stays among the reasons
    assert verdict(call, lambda n: "high" if n == p("fresh") else "none", first_seen) == (
        "high", ["FLAGGED_COUNTERPART", "COUNTERPART_FIRST_SEEN_TODAY"])
    assert counterpart_class(call, ["FLAGGED_COUNTERPART", "COUNTERPART_FIRST_SEEN_TODAY"]) == "flagged"


def test_a_known_contact_first_seen_today_is_classed_first_seen_and_an_announced_call_is_not() -> None:
    s = store()
    index = FirstSeenIndex()
    index.add(p("newfriend"), NOW - 30 * MIN, NOW)
    s.apply(rec("started", NOW - 20 * MIN, call="c0", other=p("newfriend")))
    s.apply(rec("ended", NOW - 18 * MIN, call="c0", other=p("newfriend"), duration_s=100.0))
    again = s.apply(rec("started", NOW, call="c1", other=p("newfriend")))
    assert again is not None and again.known_contact
    codes = verdict(again, none, lambda n: index.is_new(n, NOW))[1]
    assert counterpart_class(again, codes) == "first_seen_today"
    # a bank's announced call from a new line: the bank vouches for it
    announcements = Announcements()
    announcements.add("bank-a", "s9", "bankcli", expires_ms=NOW + MIN)
    banked = store(announcements=announcements).apply(
        rec("started", NOW, sub="s9", other=p("bankline"), cli="bankcli", cli_owner="bank-a"))
    index.add(p("bankline"), NOW - MIN, NOW)
    assert banked is not None and banked.announced
    assert verdict(banked, none, lambda n: index.is_new(n, NOW)) == ("none", [])



def test_the_check_is_not_ready_before_the_first_seen_index_is_rebuilt() -> None:
    """A replica that answered before its index caught up would miss today's new numbers."""
    settings = ApiSettings.model_validate({"bootstrap": "127.0.0.1:1", "topic_prefix": "t."})
    calls = CallService(settings, EntityResolver(Pseudonymizer(Key("k", b"k" * 32)), "NL"), none)
    loop = asyncio.new_event_loop()
    try:
        calls.feed = CallFeed({}, "t.fraudradar.calls", calls.store, 60, loop)
        calls.first_seen_feed = FirstSeenFeed({}, "t.fraudradar.first-seen", calls.first_seen, loop)
        calls.feed.ready.set()
        assert not calls.ready
        calls.first_seen_feed.ready.set()
        assert calls.ready
        calls.first_seen_feed.failed = RuntimeError("topic gone")
        assert not calls.ready
    finally:
        loop.close()


def test_the_feed_skips_what_is_not_a_first_seen_record_and_keeps_the_rest_of_the_batch() -> None:
    tp = TopicPartition("t.fraudradar.first-seen", 0)
    good = encode_first_seen(FirstSeen(p("good"), NOW))
    batch = {tp: [SimpleNamespace(value=v, offset=i) for i, v in enumerate(
        [b"not json", encode_first_seen(FirstSeen("not-a-pseudonym", NOW)), None, good])]}
    loop = asyncio.new_event_loop()
    try:
        feed = FirstSeenFeed({}, tp.topic, FirstSeenIndex(), loop)
        assert feed._decode(batch) == [FirstSeen(p("good"), NOW)]  # type: ignore[arg-type]
    finally:
        loop.close()
