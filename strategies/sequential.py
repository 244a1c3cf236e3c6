"""The experiments' significance test: a mixture SPRT with always-valid p-values.

Pure. An experiment is looked at after every new outcome, so a fixed-horizon
test (a t-test at each look) would find a "significant" difference in far
more than 5% of A/A experiments. The mixture sequential probability ratio
test (Robbins; Johari, Pekelis and Walsh, "Always valid inference", 2017)
is valid however often it is looked at: the chance that an A/A experiment
is ever declared significant at level alpha is at most alpha.

Model: the arms' means differ by theta = mean(treatment) - mean(control);
the observed difference d has variance v = s_t^2 / n_t + s_c^2 / n_c (the
arms' sample variances, a plug-in that needs `min_samples` per arm before
it is trusted). Against H0: theta = 0, with a normal mixture N(0, tau^2)
over the alternatives, the likelihood ratio is

    Lambda = sqrt(v / (v + tau^2)) * exp(tau^2 d^2 / (2 v (v + tau^2)))

and the always-valid p-value after each look is min(previous p, 1 / Lambda).
The confidence sequence, the thetas not rejected at level alpha, is

    d +- sqrt(2 v (v + tau^2) / tau^2 * (log(1 / alpha) + log((v + tau^2) / v) / 2))

tau is `mixture_sd` standard deviations of one observation: the effect
size the test is most sensitive to (0.5 here, a "medium" effect).

Steps of `SequentialTest.add`: fold the outcome into its arm (Welford), and
once both arms have `min_samples`, compute Lambda and lower the running p.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ALPHA = 0.05
MIN_SAMPLES = 20
MIXTURE_SD = 0.5
# Below this the arms' spread is taken as this much, so identical constant
# outcomes (no spread at all) do not make an infinitely sure test.
MIN_VARIANCE = 1e-9


@dataclass
class Moments:
    """Running count, mean and sum of squared deviations of one arm (Welford's method)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


@dataclass(frozen=True)
class Result:
    """Where the test stands: the effect (treatment - control), its confidence sequence, the p-value."""

    control_n: int
    treatment_n: int
    control_mean: float
    treatment_mean: float
    effect: float
    ci_low: float | None
    ci_high: float | None
    p_value: float
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def relative_effect(self) -> float | None:
        """The effect as a share of the control's mean (None when that is 0)."""
        return None if self.control_mean == 0 else self.effect / abs(self.control_mean)

    def as_dict(self) -> dict[str, Any]:
        return {
            "control_n": self.control_n,
            "treatment_n": self.treatment_n,
            "control_mean": self.control_mean,
            "treatment_mean": self.treatment_mean,
            "effect": self.effect,
            "relative_effect": self.relative_effect,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "significant": self.significant,
        }


@dataclass
class SequentialTest:
    """Feed outcomes as they come (`add`); read `result()` at any time, as often as wanted."""

    alpha: float = ALPHA
    min_samples: int = MIN_SAMPLES
    mixture_sd: float = MIXTURE_SD
    control: Moments = field(default_factory=Moments)
    treatment: Moments = field(default_factory=Moments)
    p_value: float = 1.0
    # The p-value's first crossing below alpha: when, in outcomes seen, the test decided.
    decided_at: int | None = None
    # The running intersection of the confidence sequence: valid at every look, so
    # their intersection is too, and it excludes 0 exactly when p < alpha.
    ci_low: float | None = None
    ci_high: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or self.min_samples < 2 or self.mixture_sd <= 0:
            raise ValueError("0 < alpha < 1, min_samples >= 2 and mixture_sd > 0 are required")

    @property
    def samples(self) -> int:
        return self.control.n + self.treatment.n

    def add(self, *, treatment: bool, value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"an outcome must be a finite number, got {value!r}")
        (self.treatment if treatment else self.control).add(value)
        if self.control.n < self.min_samples or self.treatment.n < self.min_samples:
            return
        v, tau2, d = self._spread()
        log_lambda = 0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2 * v * (v + tau2))
        p = math.exp(-log_lambda) if log_lambda > 0 else 1.0
        if p < self.p_value:
            self.p_value = p
            if self.p_value < self.alpha and self.decided_at is None:
                self.decided_at = self.samples
        log_term = math.log(1 / self.alpha) + 0.5 * math.log((v + tau2) / v)
        half = math.sqrt(2 * v * (v + tau2) / tau2 * log_term)
        self.ci_low = d - half if self.ci_low is None else max(self.ci_low, d - half)
        self.ci_high = d + half if self.ci_high is None else min(self.ci_high, d + half)

    def result(self) -> Result:
        c, t = self.control, self.treatment
        low, high = self.ci_low, self.ci_high
        if low is not None and high is not None and low > high:
            # The intersection is empty only if the model is wrong (a drifting effect): say nothing narrower.
            low, high = min(low, high), max(low, high)
        return Result(
            control_n=c.n,
            treatment_n=t.n,
            control_mean=c.mean,
            treatment_mean=t.mean,
            effect=t.mean - c.mean,
            ci_low=low,
            ci_high=high,
            p_value=self.p_value,
            alpha=self.alpha,
        )

    def _spread(self) -> tuple[float, float, float]:
        """(variance of the difference, the mixture's variance, the difference)."""
        c, t = self.control, self.treatment
        v = max(MIN_VARIANCE, t.variance / t.n + c.variance / c.n)
        pooled = max(MIN_VARIANCE, (t.variance + c.variance) / 2)
        tau2 = self.mixture_sd**2 * pooled
        return v, tau2, t.mean - c.mean


def run(outcomes: list[tuple[bool, float]], **options: Any) -> SequentialTest:
    """A test fed these (treatment?, value) outcomes in order."""
    test = SequentialTest(**options)
    for treatment, value in outcomes:
        test.add(treatment=treatment, value=value)
    return test
