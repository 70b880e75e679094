"""An experiment's statistics: per-arm summaries, the Welch interval, the guard's decision.

Pure and dependency-free: the Student t quantile comes from the regularised incomplete beta
function (a continued fraction), checked against scipy by tests/domain/test_experiments.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    mean: float | None
    sd: float | None  # the sample standard deviation (n - 1); None below two samples


@dataclass(frozen=True, slots=True)
class Difference:
    """candidate - control, with its Welch interval at `CONFIDENCE`."""

    estimate: float
    low: float
    high: float
    df: float


def summarise(values: Sequence[float]) -> Summary:
    n = len(values)
    if n == 0:
        return Summary(0, None, None)
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(n, mean, None)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Summary(n, mean, math.sqrt(variance))


def welch(
    candidate: Summary, control: Summary, confidence: float = CONFIDENCE
) -> Difference | None:
    """The difference of means and its Welch-Satterthwaite interval; None below two samples
    in an arm."""
    if candidate.sd is None or control.sd is None:
        return None
    assert candidate.mean is not None
    assert control.mean is not None
    a = candidate.sd**2 / candidate.n
    b = control.sd**2 / control.n
    estimate = candidate.mean - control.mean
    se2 = a + b
    if se2 == 0:
        return Difference(estimate, estimate, estimate, math.inf)
    df = se2**2 / (a**2 / (candidate.n - 1) + b**2 / (control.n - 1))
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(se2)
    return Difference(estimate, estimate - half, estimate + half, df)


def regressed(
    difference: Difference | None, *, higher_is_better: bool, max_regression: float
) -> bool:
    """Whether the candidate is worse than control by more than `max_regression` at the
    interval's confidence: the whole interval lies beyond the allowed regression."""
    if difference is None:
        return False
    if higher_is_better:
        return difference.high < -max_regression
    return difference.low > max_regression


def guard_aborts(
    candidate: Sequence[float],
    control: Sequence[float],
    *,
    min_samples: int,
    higher_is_better: bool,
    max_regression: float,
) -> bool:
    """The guard's decision over each arm's outcomes, in the order they arrived.

    The guard looks again and again as outcomes arrive, and every look at a 95 % interval
    would be another 2.5 % chance of aborting an equal candidate. So it decides only at fixed
    looks, on fixed prefixes: look k uses the first `min_samples` x 2^k outcomes of each arm
    and a two-sided interval at 1 - 0.05 / 2^k (95 %, 97.5 %, 98.75 %, ...). Looking twice at
    one look gives one answer, and the one-sided error over every look is at most
    0.025 x (1 + 1/2 + 1/4 + ...) = 5 %.
    """
    n = min(len(candidate), len(control))
    if n < min_samples:
        return False
    look = int(math.log2(n / min_samples))
    while min_samples * 2 ** (look + 1) <= n:  # float log2 may fall a hair short
        look += 1
    size = min_samples * 2**look
    confidence = 1 - (1 - CONFIDENCE) / 2**look
    difference = welch(summarise(candidate[:size]), summarise(control[:size]), confidence)
    return regressed(difference, higher_is_better=higher_is_better, max_regression=max_regression)


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t with `df` degrees of freedom (0.5 < p < 1).

    Newton's method on the CDF from the normal quantile, kept inside a shrinking bracket
    (a step that leaves it bisects instead).
    """
    if math.isinf(df):
        return _normal_quantile(p)
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        low, high = high, high * 2
    log_scale = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    t = min(max(_normal_quantile(p), low), high)
    for _ in range(100):
        error = _t_cdf(t, df) - p
        if error < 0:
            low = t
        else:
            high = t
        density = math.exp(log_scale - (df + 1) / 2 * math.log1p(t * t / df))
        step = error / density if density > 0 else math.inf
        following = t - step
        if not low < following < high:
            following = (low + high) / 2
        if abs(following - t) <= 1e-15 * max(1.0, abs(t)) or high - low <= 1e-15 * high:
            return following
        t = following
    return t


def _t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for t ≥ 0, from whichever form of the incomplete beta keeps its precision."""
    if t * t < df:  # near the centre: the mass between 0 and t, directly
        return 0.5 + 0.5 * _incomplete_beta(0.5, df / 2, t * t / (df + t * t))
    return 1 - 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))


def _normal_quantile(p: float) -> float:
    low, high = 0.0, 40.0
    for _ in range(200):
        mid = (low + high) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < 1e-16:
            break
    return result
