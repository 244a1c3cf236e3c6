"""The launcher's metrics folder: shared by web, workers and beat; emptied when `up` starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from beastflow.launch import metrics_env


def test_up_empties_the_folder_and_single_processes_keep_it(tmp_path: Path) -> None:
    # given: files left by an earlier run
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"x")
    (folder / "notes.txt").write_text("not ours")
    given = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    # when: a single process starts, then `up`
    single = metrics_env(given, wipe=False)
    kept = sorted(p.name for p in folder.iterdir())
    up = metrics_env(given, wipe=True)
    # then
    assert single["PROMETHEUS_MULTIPROC_DIR"] == up["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
    assert kept == ["counter_123.db", "notes.txt"]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_the_default_folder_is_under_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEASTFLOW_STATE_DIR", str(tmp_path))
    env = metrics_env({}, wipe=True)
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics")
    assert (tmp_path / "metrics").is_dir()
