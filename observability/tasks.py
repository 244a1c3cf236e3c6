"""Beat's observability tick: a sample of the queues and the monitor for the capacity trends."""

from __future__ import annotations

from beastflow.celery import app


@app.task(ignore_result=True)
def observability_tick_task() -> None:
    """Every SAMPLE_EVERY_S (beat): the queues' depth and lag and the monitor's lag, into the capacity history."""
    from observability.capacity import queues_sample

    queues_sample()
