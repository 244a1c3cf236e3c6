"""The healing bandit's per-tenant posterior, shrunk toward the other tenants' pooled prior."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from strategies.hierarchy import Pool, fit_strength, pools, prior


def test_a_new_tenant_starts_from_the_other_tenants_success_rate() -> None:
    pool = Pool(successes=90, failures=10, strength=None)
    s, f = prior(pool, own=(0, 0), strength=10, cap=50, fit=True)
    assert round(s + f, 6) == 10 and s / (s + f) > 0.85


def test_the_tenants_own_outcomes_are_taken_out_of_the_pool() -> None:
    pool = Pool(successes=5, failures=0)
    assert prior(pool, own=(5, 0), strength=10, cap=50, fit=False) == (0.0, 0.0)


def test_tenants_that_agree_make_a_stronger_prior_than_tenants_that_differ() -> None:
    agree = fit_strength([(50, 50), (48, 52), (51, 49), (50, 50)], cap=1000)
    differ = fit_strength([(95, 5), (5, 95), (90, 10), (10, 90)], cap=1000)
    assert agree is not None and differ is not None
    assert agree > differ
    assert fit_strength([(1, 1), (2, 0)], cap=50) is None  # too few tenants to tell


@given(
    tenants=st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.dictionaries(
            st.sampled_from([("outage", "retry_backoff"), ("flap", "hold_in_polling")]),
            st.tuples(st.integers(0, 500), st.integers(0, 500)),
        ),
        max_size=8,
    ),
    strength=st.floats(0, 100),
)
def test_the_prior_is_never_negative_and_never_stronger_than_asked(
    tenants: dict[str, dict[tuple[str, str], tuple[int, int]]], strength: float
) -> None:
    found = pools(tenants, cap=50)
    for counts in tenants.values():
        for pair, own in counts.items():
            s, f = prior(found[pair], own=own, strength=strength, cap=50, fit=False)
            assert s >= 0 and f >= 0 and s + f <= strength + 1e-9
            s, f = prior(found[pair], own=own, strength=strength, cap=50, fit=True)
            assert s + f <= max(50, strength) + 1e-9
