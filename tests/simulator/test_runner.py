from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from simulator.runner import start_in_thread
from tests.simulator.support import wait_for
from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """\
name: blink
repeat: true
phases:
  - name: up
    duration_s: 0.2
  - name: down
    duration_s: 0.2
    faults: {outage: feed}
"""


def test_a_scenario_file_loops_when_it_repeats(tmp_path: Path) -> None:
    # given
    path = tmp_path / "blink.yaml"
    path.write_text(SCENARIO)
    # when
    with start_in_thread(scenario=path) as handle:
        seen: set[tuple[int, str]] = set()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and (1, "down") not in seen:
            state = httpx.get(f"{handle.base_url}/_control/state", headers=handle.control_headers).json()["scenario"]
            seen.add((state["loop"], state["phase"]))
            time.sleep(0.02)
    # then
    assert {(0, "up"), (0, "down"), (1, "up"), (1, "down")} <= seen


def test_stop_is_prompt_even_while_a_request_is_held_by_a_timeout() -> None:
    handle = start_in_thread()
    handle.faults.update({"timeout_rate": 1.0, "timeout_s": 60})
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(f"{handle.base_url}/changes", timeout=10).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: handle.sim.requests["changes.timeout"] == 1)
    started = time.monotonic()
    handle.stop()
    caller.join(5)
    assert not handle.thread.is_alive() and time.monotonic() - started < 2
    assert outcome  # answered (504) or cut, but not left hanging


def test_run_serves_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    # given: the standalone entry point, as `manage.py simulate` will call it
    path = tmp_path / "blink.yaml"
    path.write_text(SCENARIO)
    port = free_port()
    code = (
        "from simulator.runner import run; "
        f"run(port={port}, token='t', scenario={str(path)!r}, initial_records=10, mutations_per_s=20,"
        " control_token='ctl')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{base}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, timeout=10)
        # when
        control = {"Authorization": "Bearer ctl"}
        wait_for(lambda: httpx.get(f"{base}/_control/state", headers=control).json()["dataset"]["head_seq"] > 12)
        state = httpx.get(f"{base}/_control/state", headers=control).json()
        proc.send_signal(signal.SIGTERM)
        # then
        assert proc.wait(5) == 0
        assert state["scenario"]["name"] == "blink" and state["dataset"]["records"] >= 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
