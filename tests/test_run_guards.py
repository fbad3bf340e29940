"""The run's own guards (tests/support/guards.py), checked on throw-away test files run by a real
pytest: a skip fails, a broker used without the ``kafka`` marker fails, and a marked test that
used no broker fails; deselecting with ``-m "not kafka"`` stays clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = '''
import pytest
pytest_plugins = ["tests.support.guards"]

@pytest.fixture(scope="session")
def kafka_broker():
    return None

@pytest.fixture()
def kafka_bootstrap(kafka_broker):
    return "127.0.0.1:9"
'''


def _run(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    kafka: broker\n")
    (tmp_path / "test_case.py").write_text("import pytest\n\n" + body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), str(tmp_path / "test_case.py"), *args],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("body", [
    "def test_x():\n    pytest.skip('helm not installed')\n",
    "@pytest.mark.skipif(True, reason='policy file missing')\ndef test_x():\n    pass\n",
    "pytest.importorskip('services.no_such_engine')\n\ndef test_x():\n    pass\n",
    "@pytest.fixture()\ndef tool():\n    pytest.skip('promtool not installed')\n\ndef test_x(tool):\n    pass\n",
])
def test_a_skip_fails_the_run(tmp_path: Path, body: str) -> None:
    result = _run(tmp_path, body)
    assert result.returncode in (1, 2), result.stdout          # 2: a module skipped at collection
    assert "skipped tests fail the run" in result.stdout
    assert " skipped" not in result.stdout.splitlines()[-1]


def test_xfail_and_passing_tests_still_pass(tmp_path: Path) -> None:
    result = _run(tmp_path, "@pytest.mark.xfail(strict=True)\ndef test_x():\n    assert False\n\n"
                            "def test_y():\n    pass\n")
    assert result.returncode == 0, result.stdout


def test_a_broker_fixture_without_the_marker_fails_collection(tmp_path: Path) -> None:
    result = _run(tmp_path, "def test_x(kafka_bootstrap):\n    pass\n")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "lack @pytest.mark.kafka" in result.stdout + result.stderr


def test_a_broker_requested_at_run_time_without_the_marker_fails(tmp_path: Path) -> None:
    result = _run(tmp_path, "def test_x(request):\n    request.getfixturevalue('kafka_bootstrap')\n")
    assert result.returncode == 1, result.stdout
    assert "uses the Kafka broker but is not marked" in result.stdout


def test_a_marked_test_that_used_no_broker_fails(tmp_path: Path) -> None:
    result = _run(tmp_path, "@pytest.mark.kafka\ndef test_x():\n    pass\n")
    assert result.returncode == 1, result.stdout
    assert "marked @pytest.mark.kafka but used no broker" in result.stdout


def test_marked_broker_tests_pass_and_deselect_cleanly(tmp_path: Path) -> None:
    body = ("@pytest.mark.kafka\ndef test_static(kafka_bootstrap):\n    pass\n\n"
            "@pytest.mark.kafka\ndef test_dynamic(request):\n    request.getfixturevalue('kafka_bootstrap')\n\n"
            "def test_fast():\n    pass\n")
    assert _run(tmp_path, body).returncode == 0
    fast = _run(tmp_path, body, "-m", "not kafka")
    assert fast.returncode == 0, fast.stdout
    assert "1 passed, 2 deselected" in fast.stdout
