"""Outbound delivery decisions: pure Python over plain data.

When to retry a failed delivery, what counts against an endpoint's circuit
breaker, and when a subscription has failed long enough to be disabled. The
breaker itself is engines.polling_policy's (closed / open / half-open).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

from engines.polling_policy import BreakerPolicy

_MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class DeliveryPolicy:
    """Tuning of outbound deliveries, with defaults (settings.BEASTFLOW_CALLBACKS overrides).

    - `batch_size` (100): changes per POST.
    - `timeout_s` (10) / `connect_timeout_s` (3): per request.
    - `backoff_base_s` (1) / `backoff_max_s` (600): retry delay, doubled per
      consecutive failure, with full jitter.
    - `retry_after_cap_s` (3600): an endpoint's Retry-After is honoured up to this.
    - `disable_after_failures` (10) and `disable_after_s` (1800): a
      subscription is disabled once both are reached: that many failed
      attempts in a row, the first of them that long ago. Both, so neither a
      short burst of errors nor a single slow failure disables it.
    - `lease_s` (60): how long a worker owns a subscription's delivery; longer
      than one request can take, renewed per batch.
    - `max_batches_per_run` (20) / `run_budget_s` (60): a run stops there and
      is re-enqueued, so one busy subscription does not starve the others.
    - `breaker`: the endpoint's circuit breaker (5 failures open it for 30 s,
      doubling per failed probe up to 600 s).
    """

    batch_size: int = 100
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 600.0
    retry_after_cap_s: float = 3600.0
    disable_after_failures: int = 10
    disable_after_s: float = 1800.0
    lease_s: float = 60.0
    max_batches_per_run: int = 20
    run_budget_s: float = 60.0
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 1000:
            raise ValueError("batch_size must be within 1..1000")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")
        if not 0 < self.backoff_base_s <= self.backoff_max_s or self.retry_after_cap_s < 0:
            raise ValueError("0 < backoff_base_s <= backoff_max_s and retry_after_cap_s >= 0 are required")
        if self.disable_after_failures < 1 or self.disable_after_s < 0:
            raise ValueError("disable_after_failures >= 1 and disable_after_s >= 0 are required")
        if self.lease_s <= self.timeout_s + self.connect_timeout_s:
            raise ValueError("lease_s must outlast a request")
        if self.max_batches_per_run < 1 or self.run_budget_s <= 0:
            raise ValueError("max_batches_per_run >= 1 and run_budget_s > 0 are required")

    @classmethod
    def from_mapping(cls, config: Mapping[str, object]) -> DeliveryPolicy:
        """Build from a settings dict; `breaker` is a dict of BreakerPolicy's fields."""
        known = {f.name for f in fields(cls)} - {"breaker"}
        unknown = set(config) - known - {"breaker"}
        if unknown:
            raise ValueError(f"unknown callback settings: {sorted(unknown)}")
        values = {name: config[name] for name in known if name in config}
        breaker = config.get("breaker") or {}
        if not isinstance(breaker, Mapping):
            raise ValueError("breaker must be a mapping")
        return cls(**values, breaker=BreakerPolicy(**dict(breaker)))  # type: ignore[arg-type]


def retry_delay(
    *,
    failures: int,
    policy: DeliveryPolicy,
    retry_after_s: float | None = None,
    rand: Callable[[], float],
) -> float:
    """Seconds before the next attempt after `failures` failed ones in a row.

    Exponential with full jitter: uniform in [0, min(max, base * 2**(n-1))],
    so subscribers failing together spread out instead of retrying in
    lockstep. A Retry-After (429, 503) is a floor, capped at
    `retry_after_cap_s`.
    """
    cap = min(policy.backoff_max_s, policy.backoff_base_s * 2.0 ** min(max(0, failures - 1), _MAX_DOUBLINGS))
    delay = min(1.0, max(0.0, rand())) * cap
    if retry_after_s is not None and math.isfinite(retry_after_s):
        delay = max(delay, min(max(0.0, retry_after_s), policy.retry_after_cap_s))
    return delay


def counts_against_breaker(http_status: int | None) -> bool:
    """Whether a failed delivery says the endpoint is down.

    No answer (connection refused, timeout) and 5xx do; a 4xx is an answer
    from a live endpoint (429 asks to slow down, which Retry-After covers).
    """
    return http_status is None or http_status >= 500


def should_disable(*, failures: int, failing_for_s: float, policy: DeliveryPolicy) -> bool:
    return failures >= policy.disable_after_failures and failing_for_s >= policy.disable_after_s
