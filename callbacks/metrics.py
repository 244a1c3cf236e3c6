"""Prometheus metrics of outbound callbacks."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# outcome: "ok", "http_<status class>" (http_4xx, http_5xx) or "no_answer"; signature: the subscription's scheme.
DELIVERIES = Counter(
    "beastflow_callback_deliveries_total", "Callback POSTs by outcome and signature scheme", ["signature", "outcome"]
)
DELIVERY_SECONDS = Histogram("beastflow_callback_delivery_seconds", "Time of one callback POST, answered or not")
