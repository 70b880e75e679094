"""The rollout statistics against scipy, on generated samples; the guard's false-abort rate."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from charter.domain.experiments import guard_aborts, regressed, summarise, t_quantile, welch

samples = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=60,
).filter(lambda xs: statistics.pstdev(xs) > 1e-6)  # a spread the interval can see


def _close(a: float, b: float, scale: float = 1.0) -> bool:
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9 * max(1.0, scale))


@given(samples)
def test_summaries_match_scipy(values: list[float]) -> None:
    summary = summarise(values)
    described = stats.describe(values)
    scale = max(abs(v) for v in values)
    assert summary.n == described.nobs
    assert summary.mean is not None
    assert summary.sd is not None
    assert _close(summary.mean, float(described.mean), scale)
    assert _close(summary.sd, math.sqrt(float(described.variance)), scale)


@given(samples, samples)
@settings(max_examples=200)
def test_the_welch_interval_matches_scipy(candidate: list[float], control: list[float]) -> None:
    result = welch(summarise(candidate), summarise(control))
    assert result is not None
    expected = stats.ttest_ind(candidate, control, equal_var=False)
    interval = expected.confidence_interval(0.95)
    scale = max(abs(v) for v in candidate + control)
    assert _close(
        result.estimate, float(sum(candidate) / len(candidate) - sum(control) / len(control)), scale
    )
    assert _close(result.df, float(expected.df))
    assert _close(result.low, float(interval.low), scale)
    assert _close(result.high, float(interval.high), scale)


@given(st.floats(min_value=0.51, max_value=0.9999), st.floats(min_value=1.0, max_value=1e5))
def test_the_t_quantile_matches_scipy(p: float, df: float) -> None:
    assert math.isclose(t_quantile(p, df), float(stats.t.ppf(p, df)), rel_tol=1e-9)


def test_too_few_samples_make_no_interval() -> None:
    assert welch(summarise([1.0]), summarise([1.0, 2.0])) is None
    assert summarise([]).mean is None


def test_a_clear_regression_is_seen_either_way_round() -> None:
    rng = random.Random(7)
    worse = summarise([rng.gauss(0.6, 0.1) for _ in range(200)])
    better = summarise([rng.gauss(0.8, 0.1) for _ in range(200)])
    assert regressed(welch(worse, better), higher_is_better=True, max_regression=0.05)
    assert not regressed(welch(worse, better), higher_is_better=False, max_regression=0.05)
    assert regressed(welch(better, worse), higher_is_better=False, max_regression=0.05)
    # Worse by less than the allowed regression: kept.
    assert not regressed(welch(worse, better), higher_is_better=True, max_regression=0.3)


@pytest.mark.parametrize("max_regression", [0.0, 0.02])
def test_equal_arms_are_aborted_at_most_five_percent_of_the_time(max_regression: float) -> None:
    """Many seeded experiments with equal arms, each looked at as the guard does: again and
    again while outcomes arrive (here after every 10 new ones an arm), up to 16 x min_samples.
    An experiment counts as a false abort if any look said abort."""
    rng = random.Random(20261202)
    runs, aborts, min_samples = 200, 0, 20
    for _ in range(runs):
        a = [rng.gauss(1.0, 0.5) for _ in range(16 * min_samples)]
        b = [rng.gauss(1.0, 0.5) for _ in range(16 * min_samples)]
        aborts += any(
            guard_aborts(
                a[:n],
                b[:n],
                min_samples=min_samples,
                higher_is_better=True,
                max_regression=max_regression,
            )
            for n in range(min_samples, 16 * min_samples + 1, 10)
        )
    assert aborts / runs <= 0.05


def test_a_look_is_decided_on_its_own_prefix() -> None:
    rng = random.Random(3)
    worse = [rng.gauss(0.5, 0.1) for _ in range(20)]
    better = [rng.gauss(0.8, 0.1) for _ in range(20)]

    def aborts(candidate: list[float], control: list[float]) -> bool:
        return guard_aborts(
            candidate, control, min_samples=20, higher_is_better=True, max_regression=0.05
        )

    assert aborts(worse, better)
    assert not aborts(worse[:19], better)  # too few in one arm
    # Outcomes past the look's prefix do not change its answer until the next look (40):
    # these would make the candidate the better arm if they counted.
    great = [rng.gauss(1.5, 0.1) for _ in range(19)]
    assert aborts(worse + great, better + great[:19])
    assert not aborts(worse + great + [1.5], better + great + [0.8])  # look 1: all 40
    equal = [rng.gauss(0.8, 0.1) for _ in range(20)]
    assert not aborts(equal, better)
