"""The engines' `/readyz` components: each periodic engine's last finished pass."""

from __future__ import annotations

from django.conf import settings

from beastflow.passes import register_pass_component

# Ten missed ticks (or a minimum) before an engine counts as stalled: one
# slow tick on a busy worker is not an outage.
register_pass_component("monitor", stale_after_s=max(30.0, 10 * settings.BEASTFLOW_MONITOR_TICK_S))
register_pass_component("polling", stale_after_s=30.0)
register_pass_component("reconciliation", stale_after_s=120.0)
