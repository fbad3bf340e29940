"""Shared fixtures: a real Apache Kafka broker for the session, keys, unique topic prefixes.

The broker is the project's own launcher (``services.devtools.kafka_local``), started once per
test session; ``FRAUDRADAR_TEST_BOOTSTRAP`` points the suite at a broker that is already up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from services.common.pseudonym import generate_key_text
from services.common.topics import ensure_topics
from services.devtools.kafka_local import LocalKafka

# no silent skips; the kafka marker follows broker use (tests/support/guards.py)
pytest_plugins = ["tests.support.guards"]

TEST_PSEUDONYM_KEY = "ptest:" + "q" * 43 + "="
TEST_DISCLOSURE_KEY = "dtest:" + "r" * 43 + "="


@pytest.fixture(scope="session", autouse=True)
def _keys() -> Iterator[None]:
    """Deterministic test keys in the environment, as a deployment would set them."""
    old = {k: os.environ.get(k) for k in ("FRAUDRADAR_PSEUDONYM_KEY", "FRAUDRADAR_DISCLOSURE_KEY")}
    os.environ["FRAUDRADAR_PSEUDONYM_KEY"] = TEST_PSEUDONYM_KEY
    os.environ["FRAUDRADAR_DISCLOSURE_KEY"] = TEST_DISCLOSURE_KEY
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalKafka | None]:
    if os.environ.get("FRAUDRADAR_TEST_BOOTSTRAP"):
        yield None
        return
    with LocalKafka.temporary("fraudradar-kafka-") as broker:    # deleted afterwards: no 160 MB per run left in /tmp
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalKafka | None) -> str:
    if kafka_broker is None:
        return os.environ["FRAUDRADAR_TEST_BOOTSTRAP"]
    return kafka_broker.bootstrap


@pytest.fixture()
def topic_prefix(kafka_bootstrap: str) -> str:
    """A fresh prefix with every fraudradar topic created (3 partitions) for one test."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix, partitions=3)
    return prefix


@pytest.fixture()
def fresh_key_text() -> str:
    return generate_key_text("pother")
