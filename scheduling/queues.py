"""The Celery queues as the broker holds them: how deep each is, how long its oldest message waited.

The broker is Redis (kombu): each queue is a list (plus one list per
priority step, `<name>\\x06\\x16<n>`), messages pushed on the left and
taken from the right, so the oldest waits at index -1. Every message
carries `bf_sent_at` (beastflow.celery stamps it when it is published);
its age is how long the queue made it wait. A message with an ETA is
counted from its ETA, not from when it was sent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from django.conf import settings

from beastflow.celery import SENT_AT_HEADER
from beastflow.redis_client import get_redis

_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)  # kombu's default steps besides 0, which is the plain list


@dataclass(frozen=True)
class QueueState:
    name: str
    depth: int
    oldest_age_s: float | None  # None: empty, or its oldest message carries no stamp


def queue_names() -> tuple[str, ...]:
    return tuple(getattr(settings, "BEASTFLOW_QUEUES", ("celery",)))


def _broker_key(name: str) -> str:
    prefix = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))
    return f"{prefix}{name}"


def _lists(name: str) -> list[str]:
    base = _broker_key(name)
    return [base, *(f"{base}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS)]


def _age(raw: bytes | str | None, now: float) -> float | None:
    if raw is None:
        return None
    try:
        message = json.loads(raw)
        headers = message.get("headers") or {}
        sent = headers.get(SENT_AT_HEADER)
        if sent is None:
            return None
        waited_from = float(sent)
        eta = headers.get("eta")
        if eta:
            from datetime import datetime

            waited_from = max(waited_from, datetime.fromisoformat(str(eta)).timestamp())
        return max(0.0, now - waited_from)
    except (ValueError, TypeError, AttributeError):
        return None


def queue_states(names: tuple[str, ...] | None = None) -> list[QueueState]:
    """Depth and oldest message age of each queue, in two pipelined round trips."""
    names = names or queue_names()
    client = get_redis()
    lists = {name: _lists(name) for name in names}
    with client.pipeline(transaction=False) as pipe:
        for keys in lists.values():
            for list_key in keys:
                pipe.llen(list_key)
                pipe.lindex(list_key, -1)
        replies = pipe.execute()
    now = time.time()
    states = []
    position = 0
    for name, keys in lists.items():
        depth = 0
        ages: list[float] = []
        for _ in keys:
            length, oldest = replies[position], replies[position + 1]
            position += 2
            depth += int(length or 0)
            age = _age(oldest, now)
            if age is not None:
                ages.append(age)
        states.append(QueueState(name=name, depth=depth, oldest_age_s=max(ages) if ages else None))
    return states


def queue_depth(name: str) -> int:
    """Messages waiting in one queue (its priority lists included)."""
    with get_redis().pipeline(transaction=False) as pipe:
        for list_key in _lists(name):
            pipe.llen(list_key)
        return sum(int(n or 0) for n in pipe.execute())


def room_for(*, depth: int, oldest_age_s: float | None, bound: int, max_wait_s: float | None) -> int:
    """How many more messages a dispatch round may queue (pure).

    Up to `bound` in the queue; none at all while its oldest message has
    waited `max_wait_s` or longer: the consumers are not keeping up, and
    what is sent now would wait longer still, past the claim it was sent
    under (it then expires unrun and is sent again: work that only churns).
    """
    if max_wait_s is not None and oldest_age_s is not None and oldest_age_s >= max_wait_s:
        return 0
    return max(0, bound - depth)


def queue_room(name: str, bound: int, *, max_wait_s: float | None = None) -> int:
    """`room_for` the queue as the broker holds it now (one pipelined round trip)."""
    state = queue_states((name,))[0]
    return room_for(depth=state.depth, oldest_age_s=state.oldest_age_s, bound=bound, max_wait_s=max_wait_s)
