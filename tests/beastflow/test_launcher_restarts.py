"""The launcher's Supervisor restarts what dies and gives up on a crash loop (small stand-in children).

The Supervisor runs in a process of its own (it takes SIGINT/SIGTERM), with
children that are plain Python one-liners, so these take seconds. The real
`make up` under kill -9 is tests/e2e/test_faults.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.stack import free_port, read_multiprocess_counters

ROOT = Path(__file__).resolve().parents[2]

SUPERVISE = """
import json, sys
from beastflow.launch import Supervisor
from beastflow.supervision import RestartPolicy
commands = json.loads(sys.argv[1])
policy = RestartPolicy(max_crashes=3, window_s=30, base_delay_s=0.05, max_delay_s=1)
sys.exit(Supervisor(commands, dict(__import__("os").environ), policy=policy).run())
"""


def _supervise(commands: dict[str, list[str]], folder: Path) -> subprocess.Popen[str]:
    import json

    env = dict(os.environ) | {
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "BEASTFLOW_PORT": str(free_port()),  # nothing serves /healthz there: no after-web children
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, json.dumps(commands)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _live_children(pid: int) -> list[int]:
    live = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                live.append(child.pid)
        except psutil.NoSuchProcess:
            continue  # reaped between the listing and the question
    return live


def _child_pid(supervisor: subprocess.Popen[str], deadline_s: float, *, other_than: int | None = None) -> int:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = [pid for pid in _live_children(supervisor.pid) if pid != other_than]
        if found:
            return found[0]
        assert supervisor.poll() is None, supervisor.communicate()[0]
        time.sleep(0.05)
    raise AssertionError(f"no child within {deadline_s} s")


@pytest.mark.e2e
def test_a_child_killed_with_sigkill_is_started_again_and_sigterm_still_stops_all(tmp_path: Path) -> None:
    # given
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    supervisor = _supervise({"sleeper": sleeper}, tmp_path)
    try:
        first = _child_pid(supervisor, 20)
        # when
        os.kill(first, signal.SIGKILL)
        second = _child_pid(supervisor, 20, other_than=first)
        supervisor.send_signal(signal.SIGTERM)
        output, _ = supervisor.communicate(timeout=30)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    # then
    assert supervisor.returncode == 0, output
    assert "event=process_died process=sleeper exit_code=-9 restarts=0 deaths_in_window=1 next_delay_s=0.05" in output
    assert f"event=process_restarted process=sleeper pid={second} restarts=1" in output
    assert not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE
    assert read_multiprocess_counters(tmp_path)["beastflow_process_restarts_total"] == {(("process", "sleeper"),): 1.0}


@pytest.mark.e2e
def test_a_crash_loop_makes_it_give_up_stop_the_others_and_exit_1(tmp_path: Path) -> None:
    # given: one child that exits at once, one that would run for two minutes
    pidfile = tmp_path / "steady.pid"
    steady = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    commands = {
        "crasher": [sys.executable, "-c", "import sys; sys.exit(3)"],
        "steady": [sys.executable, "-c", steady],
    }
    # when
    supervisor = _supervise(commands, tmp_path)
    try:
        output, _ = supervisor.communicate(timeout=60)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    # then: restarted twice (0.05 s, then 0.1 s), given up at the third death
    assert supervisor.returncode == 1, output
    assert "process=crasher exit_code=3 restarts=0 deaths_in_window=1 next_delay_s=0.05" in output
    assert "process=crasher exit_code=3 restarts=1 deaths_in_window=2 next_delay_s=0.1" in output
    assert "event=process_gave_up process=crasher exit_code=3 restarts=2 deaths_in_window=3" in output
    assert "crasher died 3 times within 30 s" in output
    steady_pid = int(pidfile.read_text())
    assert not psutil.pid_exists(steady_pid) or psutil.Process(steady_pid).status() == psutil.STATUS_ZOMBIE
    counters = read_multiprocess_counters(tmp_path)["beastflow_process_restarts_total"]
    assert counters == {(("process", "crasher"),): 2.0, (("process", "steady"),): 0.0}
