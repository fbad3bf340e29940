import builtins
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from services.common.stream import Crc32cMissing, check_crc32c
from services.devtools import kafka_local
from services.devtools.kafka_local import KafkaToolMissing, LocalKafka, random_cluster_id, server_properties


def test_missing_java_or_maven_is_said_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kafka_local.shutil, "which", lambda tool: None)
    with pytest.raises(KafkaToolMissing, match="'java' is not on PATH: install a JDK 17"):
        LocalKafka(workdir=tmp_path).start()
    monkeypatch.setenv("FRAUDRADAR_CACHE", str(tmp_path))
    with pytest.raises(KafkaToolMissing, match="'mvn' is not on PATH: install Maven"):
        kafka_local.ensure_jars()


def test_cluster_id_has_kafkas_format() -> None:
    for _ in range(50):
        cid = random_cluster_id()
        assert len(cid) == 22 and "-" not in cid and "=" not in cid


def test_server_properties_are_loopback_kraft(tmp_path: Path) -> None:
    props = server_properties(19092, 19093, tmp_path)
    assert "process.roles=broker,controller" in props
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in props
    assert "0.0.0.0" not in props


def test_crc32c_extension_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    check_crc32c()  # installed here
    real_import = builtins.__import__

    def no_crc32c(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "crc32c":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "crc32c", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_crc32c)
    with pytest.raises(Crc32cMissing):
        check_crc32c()


@pytest.mark.kafka
def test_topics_ensure_is_idempotent_and_configures_compaction(kafka_bootstrap: str) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    from services.common.topics import ensure_topics

    first = ensure_topics(kafka_bootstrap, "idem.", partitions=2)
    assert set(first.values()) == {"created"} and "idem.fraudradar.risk" in first
    second = ensure_topics(kafka_bootstrap, "idem.", partitions=2)
    assert set(second.values()) == {"exists"} and set(second) == set(first)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "idem.fraudradar.risk")])
    admin.close()
    text = repr(described)
    assert "cleanup.policy" in text and "compact" in text


@pytest.mark.kafka
def test_a_temporary_broker_is_stopped_and_deleted_even_when_the_body_fails() -> None:
    # the tests' session broker and the benchmarks use this: a broker's data left behind in /tmp
    # by every run fills the disk (sizes in docs/testing.md, "Measured")
    with pytest.raises(RuntimeError, match="the body failed"), \
            LocalKafka.temporary("fraudradar-test-temporary-") as broker:
        workdir, pid = broker.workdir, broker.pid
        assert pid is not None and broker.alive()
        assert any((workdir / "data").iterdir())      # a formatted KRaft log directory
        raise RuntimeError("the body failed")
    assert not workdir.exists()
    assert not kafka_local._pid_alive(pid)


def test_free_ports_are_drawn_below_the_ephemeral_range_and_are_bindable() -> None:
    """Outgoing connections take ports from the kernel's ephemeral range at any moment; a port
    picked there for a child to bind later can be gone by then (a CI run lost an API server
    to exactly that). Ports are drawn below it."""
    low, _ = kafka_local._ephemeral_range()
    ports = {kafka_local.free_port() for _ in range(20)}
    if low - 10000 >= 1000:
        assert all(10000 <= p < low for p in ports), ports
    assert len(ports) > 1  # drawn at random, not one fixed port
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_is_not_handed_out_twice_by_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports picked one after the other (a broker's two, a demo's three) are bound only later:
    a port already handed out is not drawn again even though it is still free."""
    draws = iter([20001, 20001, 20002])

    class Fixed:
        def randrange(self, _low: int, _high: int) -> int:
            return next(draws)

    monkeypatch.setattr(kafka_local.random, "SystemRandom", Fixed)
    monkeypatch.setattr(kafka_local, "_HANDED_OUT", set())
    monkeypatch.setattr(kafka_local, "_ephemeral_range", lambda: (32768, 60999))
    assert [kafka_local.free_port(), kafka_local.free_port()] == [20001, 20002]
