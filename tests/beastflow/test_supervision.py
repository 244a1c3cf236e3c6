"""The launcher's restart policy (beastflow/supervision.py): pure, no process started."""

from __future__ import annotations

import pytest

from beastflow.supervision import RestartPolicy, on_death

POLICY = RestartPolicy(max_crashes=5, window_s=60.0, base_delay_s=0.5, max_delay_s=30.0)


def test_a_first_death_is_restarted_after_the_base_delay() -> None:
    # when
    decision = on_death((), now=100.0, policy=POLICY)
    # then
    assert not decision.give_up
    assert decision.delay_s == 0.5
    assert decision.crashes == (100.0,)


def test_the_delay_doubles_with_each_death_inside_the_window() -> None:
    # given
    crashes: tuple[float, ...] = ()
    delays = []
    # when: four deaths ten seconds apart
    for now in (0.0, 10.0, 20.0, 30.0):
        decision = on_death(crashes, now=now, policy=POLICY)
        crashes = decision.crashes
        delays.append(decision.delay_s)
    # then
    assert delays == [0.5, 1.0, 2.0, 4.0]


def test_it_gives_up_at_the_nth_death_within_the_window() -> None:
    # given: four deaths in the last minute
    earlier = (0.0, 10.0, 20.0, 30.0)
    # when: the fifth
    decision = on_death(earlier, now=40.0, policy=POLICY)
    # then
    assert decision.give_up
    assert decision.delay_s == 0.0
    assert len(decision.crashes) == 5


def test_deaths_older_than_the_window_are_forgotten() -> None:
    # given: four deaths, the oldest three more than a minute ago
    earlier = (0.0, 1.0, 2.0, 50.0)
    # when
    decision = on_death(earlier, now=70.0, policy=POLICY)
    # then: two deaths in the window, so a restart after the second delay
    assert not decision.give_up
    assert decision.crashes == (50.0, 70.0)
    assert decision.delay_s == 1.0


def test_a_process_that_dies_once_a_day_is_restarted_forever() -> None:
    crashes: tuple[float, ...] = ()
    for day in range(30):
        decision = on_death(crashes, now=day * 86_400.0, policy=POLICY)
        crashes = decision.crashes
        assert not decision.give_up
        assert decision.delay_s == 0.5


def test_the_delay_never_passes_the_maximum() -> None:
    # given: a generous limit, so only the cap stops the doubling
    policy = RestartPolicy(max_crashes=10_000, window_s=1e9, base_delay_s=0.5, max_delay_s=30.0)
    # when
    decision = on_death(tuple(float(t) for t in range(5_000)), now=5_000.0, policy=policy)
    # then
    assert not decision.give_up
    assert decision.delay_s == 30.0


def test_a_limit_of_one_gives_up_at_the_first_death() -> None:
    assert on_death((), now=0.0, policy=RestartPolicy(max_crashes=1)).give_up


def test_the_policy_reads_the_environment() -> None:
    # when
    policy = RestartPolicy.from_env(
        {
            "BEASTFLOW_RESTART_MAX": "3",
            "BEASTFLOW_RESTART_WINDOW_S": "20",
            "BEASTFLOW_RESTART_DELAY_S": "0.1",
            "BEASTFLOW_RESTART_MAX_DELAY_S": "2",
        }
    )
    # then
    assert policy == RestartPolicy(max_crashes=3, window_s=20.0, base_delay_s=0.1, max_delay_s=2.0)


def test_unset_or_empty_variables_keep_the_defaults() -> None:
    assert RestartPolicy.from_env({"BEASTFLOW_RESTART_MAX": " "}) == RestartPolicy()


@pytest.mark.parametrize(
    "env",
    [
        {"BEASTFLOW_RESTART_MAX": "many"},
        {"BEASTFLOW_RESTART_MAX": "0"},
        {"BEASTFLOW_RESTART_WINDOW_S": "0"},
        {"BEASTFLOW_RESTART_DELAY_S": "5", "BEASTFLOW_RESTART_MAX_DELAY_S": "1"},
    ],
)
def test_a_nonsensical_setting_is_refused_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"BEASTFLOW_RESTART|restart window"):
        RestartPolicy.from_env(env)
