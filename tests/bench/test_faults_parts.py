"""Cheap checks of the fault suite's and the soak's own arithmetic and arguments (no stack started)."""

from __future__ import annotations

import pytest

from bench import faults, soak
from bench._launched import Answer


def _answer(answered: float, status: int | None) -> Answer:
    return Answer(sent=answered - 0.01, answered=answered, status=status, problem="" if status else "refused", ids=())


def test_the_longest_gap_counts_from_the_window_edges_between_2xx_answers() -> None:
    # given: 2xx at 1 and 2, refusals from 2 to 7, 2xx again at 7.5
    window = [_answer(1.0, 202), _answer(2.0, 202), _answer(4.0, None), _answer(6.0, 503), _answer(7.5, 202)]
    # then
    assert faults.longest_gap(window, start=0.0, end=8.0) == 5.5


def test_a_window_without_any_2xx_is_one_gap() -> None:
    assert faults.longest_gap([_answer(3.0, None)], start=0.0, end=10.0) == 10.0


def test_scenarios_that_stop_the_servers_need_servers_of_its_own() -> None:
    with pytest.raises(SystemExit):
        faults.parse(["--services", "local", "--scenarios", "kill-web,redis-down"])
    assert faults.parse(["--services", "local", "--scenarios", "kill-web"]).scenarios == ["kill-web"]


def test_an_unknown_scenario_is_refused() -> None:
    with pytest.raises(SystemExit):
        faults.parse(["--scenarios", "kill-everything"])


def test_soak_growth_is_in_mb_and_percent_of_the_first_sample() -> None:
    assert soak.growth({"web": 100.0, "beat": 50.0}, {"web": 102.0, "beat": 50.0}) == {
        "web": {"mb": 2.0, "percent": 2.0},
        "beat": {"mb": 0.0, "percent": 0.0},
    }


def test_soak_samples_a_tenth_of_the_run_apart_after_a_warm_up() -> None:
    args = soak.parse(["--minutes", "5"])
    assert (args.every_s, args.warmup_s) == (30.0, 30.0)
    args = soak.parse(["--minutes", "30"])
    assert (args.every_s, args.warmup_s) == (180.0, 120.0)
