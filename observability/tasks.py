"""Beat's observability tick: a sample of the queues and the monitor for the capacity trends, failure recordings due."""

from __future__ import annotations

from beastflow.celery import app


@app.task(ignore_result=True)
def observability_tick_task() -> None:
    """Every 15 s (beat): the queues' depth and lag and the monitor's lag into the capacity history; then the
    failure recordings whose window after the failure has passed (observability/recording.py)."""
    from observability.capacity import queues_sample
    from observability.recording import record_due

    queues_sample()
    record_due()
