"""The checker: protocol checks in their own processes, bounded in time and memory, refused
when busy, and the dashboard process never imports what runs inside them."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from wire import first_line

from robochem.protocols.load import load_platform
from robochem.web.checker import Checker, CheckerBusyError, CheckMemoryError, CheckTimeoutError

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = load_platform(ROOT / "protocols" / "platforms" / "simulated.yaml")
EXAMPLE = (ROOT / "protocols" / "examples" / "hat-alkylation.yaml").read_text()
#: valid YAML of almost 1 MB: seconds of pure-Python parsing and ~200 MB of nodes
BIG = "a:\n" + "- x\n" * 240_000


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(timeout_s=60)


def test_a_protocol_is_checked_in_another_process(checker: Checker) -> None:
    assert checker.call("validate", EXAMPLE, "<p>", PLATFORM) == []
    broken = EXAMPLE.replace("budget: 30", "budget: thirty")
    ((message, line, column, path),) = checker.call("validate", broken, "<p>", PLATFORM)
    assert path == "optimizer.budget" and line > 1 and column > 1 and "thirty" in message
    assert "robochem.web.check_worker" not in sys.modules


def test_a_check_past_its_time_is_killed() -> None:
    start = time.monotonic()
    with pytest.raises(CheckTimeoutError):
        Checker(timeout_s=0.5).call("validate", BIG, "<p>", None)
    assert time.monotonic() - start < 10
    assert multiprocessing.active_children() == []


def test_a_check_cannot_grow_past_its_memory_cap() -> None:
    """BIG needs ~200 MB of nodes: within 1 GB it is checked, within 50 MB it cannot be.
    Near the cap Python either raises MemoryError or crawls (every allocation first fails),
    so the check ends by whichever bound comes first."""
    # 7 s on an idle 2-core machine; the bound only says it finishes.
    ((message, *_),) = Checker(timeout_s=600).call("validate", BIG, "<p>", None)
    assert "missing the file format version" in message
    start = time.monotonic()
    with pytest.raises((CheckMemoryError, CheckTimeoutError)):
        Checker(timeout_s=5, memory_bytes=50 << 20).call("validate", BIG, "<p>", None)
    assert time.monotonic() - start < 15


def test_a_check_beyond_the_running_ones_is_refused_at_once() -> None:
    single = Checker(timeout_s=60, processes=1)

    def hold() -> None:  # only holds the one process; on a loaded machine it may time out
        with contextlib.suppress(CheckTimeoutError):  # (checks run at nice 10)
            single.call("validate", BIG, "<p>", None)

    slow = threading.Thread(target=hold)
    slow.start()
    try:
        deadline = time.monotonic() + 30
        while not multiprocessing.active_children():  # the slow check holds the only process
            assert time.monotonic() < deadline, "the slow check never started"
            time.sleep(0.01)
        with pytest.raises(CheckerBusyError):  # refused, not queued behind the slow check
            single.call("ping")
        assert slow.is_alive()
    finally:
        slow.join()
    assert single.call("ping") is True


ORPHAN = """
import multiprocessing, sys, threading, time
from benchmarks.hostile_input import heavy_protocol
from robochem.protocols.load import load_platform
from robochem.web.checker import Checker

def report():
    while not multiprocessing.active_children():
        time.sleep(0.01)
    print(multiprocessing.active_children()[0].pid, flush=True)

if __name__ == "__main__":
    platform = load_platform(sys.argv[1])
    threading.Thread(target=report, daemon=True).start()
    Checker(timeout_s=1).call("validate", heavy_protocol(3), "<p>", platform)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_check_whose_dashboard_died_still_ends(tmp_path: Path) -> None:
    """Its CPU time is capped just past the time bound, so a check left without the process
    that would have killed it (a 50 s check here) still ends."""
    script = tmp_path / "dashboard.py"
    script.write_text(ORPHAN)
    platform = ROOT / "protocols" / "platforms" / "simulated.yaml"
    dashboard = subprocess.Popen(
        [sys.executable, str(script), str(platform)], stdout=subprocess.PIPE, text=True,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    check = int(first_line(dashboard, timeout=30))
    dashboard.send_signal(signal.SIGKILL)
    dashboard.wait()
    deadline = time.monotonic() + 120  # CPU seconds accrue slowly on a loaded machine
    while _running(check) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(check)
