"""The callbacks engine's `/readyz` component: its sweep's last finished pass."""

from __future__ import annotations

from beastflow.passes import register_pass_component

# The sweep runs every 10 s on beat.
register_pass_component("callbacks", stale_after_s=60.0)
