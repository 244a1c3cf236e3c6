"""What an announcement through engines/outbound.py costs next to the direct call it replaced.

The ingest path announces `ChangesCommitted` once per schema and wake-up of
the publisher (engines/publish.py), the monitor a few events per judged
batch. Both used to call the room above directly; this measures the
difference per call, in-process, with the subscriber doing nothing, so
the figure is the port's own overhead.

    python bench/outbound.py [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engines import outbound

woken: list[str] = []


def wake_deliveries(schema: str) -> None:
    """Stands in for callbacks.wake.wake_deliveries: the least a subscriber can do."""
    if not schema:
        woken.append(schema)


def _subscriber(event: outbound.ChangesCommitted) -> None:
    wake_deliveries(event.schema)


def _per_call_ns(fn: Callable[[], None], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - started) / calls)
    return best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args, _ = parser.parse_known_args(argv)  # `make bench` passes every script the same ARGS
    outbound.subscribe(outbound.ChangesCommitted, _subscriber)

    direct = _per_call_ns(lambda: wake_deliveries("t_acme"), args.calls, args.rounds)
    port = _per_call_ns(lambda: outbound.announce(outbound.ChangesCommitted("t_acme")), args.calls, args.rounds)
    nobody = _per_call_ns(lambda: outbound.announce(outbound.ModeSwitched("t_acme", 1)), args.calls, args.rounds)
    print(f"direct call                      {direct:8.0f} ns per call")
    print(f"announce, one subscriber         {port:8.0f} ns per call  (+{port - direct:.0f} ns)")
    print(f"announce, no subscriber          {nobody:8.0f} ns per call")
    print(f"best of {args.rounds} rounds of {args.calls:,} calls")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
