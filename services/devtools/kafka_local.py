"""A real single-node Apache Kafka (KRaft) on this machine, from Maven Central jars.

Serves the demo (`fraudradar kafka up`), the pytest session fixture and the benchmarks.
The jars are resolved once into a cache directory by Maven (``deploy/kafka/pom.xml``, with a
temporary local repository, so nothing stays in ``~/.m2``); the
broker runs as ``java -cp 'libs/*' kafka.Kafka server.properties`` with combined
broker+controller roles on 127.0.0.1, storage formatted with ``--standalone``.

Blocking: ``ensure_jars`` (Maven, minutes on first use), ``LocalKafka.start`` (until the
broker logs "Kafka Server started", at most ``start_timeout_s``), ``LocalKafka.stop``.
Raises ``KafkaToolMissing`` when Java or Maven is absent and ``KafkaStartError`` when the
broker does not come up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.exceptions import FraudradarError

KAFKA_VERSION = "4.4.0"
STARTED_MARKER = "Kafka Server started"
_POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"


class KafkaToolMissing(FraudradarError):
    """Java or Maven is not installed, so a local broker cannot be started."""


class KafkaStartError(FraudradarError):
    """The broker process exited or did not report readiness in time."""


def cache_dir() -> Path:
    """Where jars and broker data live (``FRAUDRADAR_CACHE`` or ``~/.cache/fraudradar``)."""
    root = os.environ.get("FRAUDRADAR_CACHE") or str(Path.home() / ".cache" / "fraudradar")
    return Path(root)


def libs_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise KafkaToolMissing(f"'{tool}' is not on PATH: {hint}")
    return path


def check_java() -> str:
    """Return the java binary, or raise with what to install (Kafka 4.x needs Java 17+)."""
    java = _require("java", "install a JDK 17 or newer (Debian: apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    first = out.splitlines()[0] if out else ""
    try:
        major = int(first.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        return java
    if major < 17:
        raise KafkaToolMissing(f"Kafka {KAFKA_VERSION} needs Java 17 or newer; found: {first}")
    return java


def ensure_jars(quiet: bool = False) -> Path:
    """Resolve the broker jars into the cache once; later calls return at once."""
    target = libs_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    mvn = _require("mvn", "install Maven 3.8+ (Debian: apt-get install maven); it fetches Kafka from Maven Central")
    target.mkdir(parents=True, exist_ok=True)
    # Maven's local repository (its download cache, ~/.m2 by default) is a temporary directory
    # removed once the jars are copied: the jars in the cache are all the broker needs.
    with tempfile.TemporaryDirectory(prefix="fraudradar-m2-") as repo:
        cmd = [
            mvn, "-B", "-ntp", "-f", str(_POM), "dependency:copy-dependencies", f"-Dmaven.repo.local={repo}",
            "-DincludeScope=runtime", f"-DoutputDirectory={target}", *(["-q"] if quiet else []),
        ]
        proc = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stdout or "")[-2000:] if quiet else ""
        raise KafkaStartError(f"Maven could not resolve Kafka {KAFKA_VERSION} jars (exit {proc.returncode}). {detail}")
    if not any(p.name.startswith("kafka_2.13-") for p in target.glob("*.jar")):
        raise KafkaStartError(f"Maven finished but no kafka_2.13 jar is in {target}")
    marker.write_text(KAFKA_VERSION)
    return target


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10000
# ports this process has handed out: a broker's two ports, or a demo's three, picked one after
# the other before any is bound, must not be the same port drawn twice
_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(v) for v in _EPHEMERAL_RANGE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port that is free now, for a process started next to bind. It is drawn below
    the kernel's ephemeral range: the kernel hands ports of that range to every outgoing
    connection on the machine (a Kafka client's, say), so a port picked there can be taken by
    one before the process binds it; below it only processes that bind a port by number
    compete."""
    low, _ = _ephemeral_range()
    if low - _LOWEST_PORT >= 1000:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.randrange(_LOWEST_PORT, low)
            if port in _HANDED_OUT:     # free again, but maybe not yet bound by whoever got it
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_cluster_id() -> str:
    """Kafka's ``Uuid.randomUuid()`` format: URL-safe base64 of 16 bytes, no padding, no '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if "-" not in text:
            return text


_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
"""


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
# a transaction left open past its timeout (a frozen or dead producer) is aborted within a second
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
transactional.id.expiration.ms=604800000
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=2097152
log.cleaner.backoff.ms=1000
auto.create.topics.enable=false
message.max.bytes=4194304
"""


@dataclass
class LocalKafka:
    """One broker+controller process with its own data directory.

    ``workdir`` holds ``server.properties``, ``data/``, ``kafka.log`` and ``state.json``
    (pid and ports, read by ``fraudradar kafka status|down`` from another process).
    """

    workdir: Path
    port: int = 0
    controller_port: int = 0
    heap: str = "512m"
    fast_start: bool = True
    start_timeout_s: float = 120.0
    pid: int | None = None
    startup_s: float | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def _java_opts(self) -> list[str]:
        opts = [
            f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
        ]
        if self.fast_start:
            opts.append("-XX:TieredStopAtLevel=1")
        return opts

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, prefix: str = "fraudradar-kafka-", **settings: Any) -> Iterator[LocalKafka]:
        """A started broker in a fresh temporary directory; on exit it is stopped and the directory
        (its data: ~1 GB after a scorer benchmark) deleted, also when the body or the start fails."""
        workdir = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            broker = cls(workdir=workdir, **settings)
            try:
                yield broker.start()
            finally:
                broker.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def start(self) -> LocalKafka:
        java = check_java()
        libs = ensure_jars(quiet=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        data_dir = self.workdir / "data"
        props = self.workdir / "server.properties"
        props.write_text(server_properties(self.port, self.controller_port, data_dir))
        (self.workdir / "log4j2.properties").write_text(_LOG4J2)
        classpath = f"{libs}/*"
        if not (data_dir / "meta.properties").exists():
            fmt = subprocess.run(
                [java, *self._java_opts(), "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "--standalone", "-t", random_cluster_id(), "-c", str(props), "--ignore-formatted"],
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise KafkaStartError(f"kafka StorageTool format failed: {fmt.stdout[-1500:]}{fmt.stderr[-1500:]}")
        log_path = self.workdir / "kafka.log"
        started = time.monotonic()
        with log_path.open("ab") as log:
            log_offset = log.tell()
            proc = subprocess.Popen(
                [java, *self._java_opts(), "-cp", classpath, "kafka.Kafka", str(props)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid = proc.pid
        deadline = started + self.start_timeout_s
        while True:
            code = proc.poll()
            if code is not None:
                raise KafkaStartError(f"broker exited with code {code}; see {log_path}:\n{_tail(log_path)}")
            if _log_has(log_path, log_offset, STARTED_MARKER):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise KafkaStartError(f"broker not ready after {self.start_timeout_s:.0f}s; see {log_path}")
            time.sleep(0.1)
        self.startup_s = time.monotonic() - started
        self.state_file.write_text(json.dumps({
            "pid": self.pid, "port": self.port, "controller_port": self.controller_port,
            "bootstrap": self.bootstrap, "startup_s": self.startup_s,
        }))
        return self

    def alive(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (the broker's shutdown hook stops it cleanly), SIGKILL after ``timeout_s``."""
        if self.pid is None:
            return
        _terminate(self.pid, timeout_s)
        self.pid = None
        self.state_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests; ``start()`` again restarts on the same data."""
        if self.pid is not None:
            _signal(self.pid, signal.SIGKILL)
            _wait_gone(self.pid, 10.0)
            self.pid = None

    @classmethod
    def from_state(cls, workdir: Path) -> LocalKafka | None:
        """The broker a previous ``fraudradar kafka up`` left running in ``workdir``, if alive."""
        path = workdir / "state.json"
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        kafka = cls(workdir=workdir, port=state["port"], controller_port=state["controller_port"])
        kafka.pid = state["pid"]
        kafka.startup_s = state.get("startup_s")
        return kafka if kafka.alive() else None


def purge_broker_data(workdir: Path) -> int:
    """Delete a stopped broker's data (``data/``, ``kafka.log``); return the bytes freed.

    Refuses while the broker of ``workdir`` runs (its state file names a live process)."""
    if LocalKafka.from_state(workdir) is not None:
        raise KafkaStartError(f"the broker in {workdir} is running: stop it before deleting its data")
    freed = 0
    for path in (workdir / "data", workdir / "kafka.log"):
        if path.is_dir():
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        elif path.exists():
            freed += path.stat().st_size
            path.unlink()
    return freed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.1)
    return not _pid_alive(pid)


def _terminate(pid: int, timeout_s: float) -> None:
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout_s):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)


def _log_has(path: Path, offset: int, marker: str) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return marker.encode() in f.read()
    except FileNotFoundError:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
