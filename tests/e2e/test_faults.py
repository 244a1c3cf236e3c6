"""kill -9 of worker, beat and web under steady ingest, and bad input: nothing acknowledged is lost, nobody intervenes.

The short subset of `make faults` (bench/faults.py), run the same way: the
real launcher (`python -m beastflow.launch up`) on a database, Redis prefix,
port and metrics folder of its own, on this machine's PostgreSQL and Redis
(the scenarios that stop or flush those servers need the bench's own
embedded ones and run in `make faults` only).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from bench import faults

WEB_BACK_WITHIN_S = 45.0  # measured 6-9 s on a loaded 2-core machine; the bound leaves room for a slower one


@pytest.mark.e2e
def test_killed_processes_come_back_alone_and_no_acknowledged_event_is_lost(tmp_path: Path) -> None:
    # given: the launcher's stack pushed to steadily
    args = faults.parse(
        [
            "--services", "local",
            "--database", f"{settings.DATABASES['default']['TEST']['NAME']}_faults",
            "--workdir", str(tmp_path),
            "--scenarios", "kill-worker,kill-beat,kill-web,bad-input",
            "--lead-s", "2",
            "--settle-s", "3",
            "--poison-rounds", "4",
            "--env", "BEASTFLOW_LEADER_TTL_S=3",  # a new beat takes the clock sooner
        ]
    )  # fmt: skip

    # when
    report = faults.run(args)

    # then
    results = {r["scenario"]: r for r in report["results"]}
    assert report["launcher_alive"], "the launcher gave up"
    for name, result in results.items():
        assert result["acknowledged"] > 0, name
        assert result["lost"] == 0, result
        assert result["5xx"] == 0, result
        assert result["recovered_in_s"] is not None, f"{name} never recovered"
    # a dead worker or beat does not interrupt ingest at all
    assert results["kill-worker"]["not_2xx"] == {}
    assert results["kill-beat"]["not_2xx"] == {}
    # a dead web is back in seconds, without a person
    assert results["kill-web"]["recovered_in_s"] <= WEB_BACK_WITHIN_S
    assert all(report["restarts"].get(name, 0) >= 1 for name in ("web", "worker", "beat")), report["restarts"]
    # bad input is a 4xx, alone or inside a group commit, and never fails the valid pushes beside it
    bad = results["bad-input"]
    assert set(bad["bad_answers"]) == {
        "nul_in_data",
        "nul_in_key",
        "nul_in_id",
        "invalid_utf8",
        "deep_json_10k",
        "version_out_of_range",
    }
    assert all(status.startswith("4") for status in bad["bad_answers"].values()), bad["bad_answers"]
    assert all(status.startswith("4") for status in bad["poisoned_answers"]), bad["poisoned_answers"]
    assert bad["beside_poison"]["requests"] == 48
    assert bad["beside_poison"]["2xx"] == 48
