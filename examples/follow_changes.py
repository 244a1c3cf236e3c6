"""Follow changes live over the websocket, and resume after a restart where the last run stopped.

    export BEASTFLOW_API_KEY=$(cat .beastflow/demo_api_key)   # after `make up`
    .venv/bin/python examples/follow_changes.py [--source ID] [--count N] [--idle S] [--state FILE]

The last handled seq is written to a state file (`.beastflow/follow_changes.seq`
unless `--state` or FOLLOW_STATE say otherwise) after each change. Stop it
(Ctrl-C) and start it again: it goes on from that seq, so nothing is missed
and nothing is handled twice. Inside one run the SDK reconnects on its own
after a dropped connection or a server restart, with the same rule.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from beastflow_sdk import Client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=int, help="only this source's changes")
    parser.add_argument("--count", type=int, help="stop after this many changes")
    parser.add_argument("--idle", type=float, help="stop after this many seconds without a change")
    parser.add_argument(
        "--state", default=os.environ.get("FOLLOW_STATE", ".beastflow/follow_changes.seq"), help="state file"
    )
    args = parser.parse_args()
    state = Path(args.state)
    state.parent.mkdir(parents=True, exist_ok=True)
    after = int(state.read_text()) if state.exists() else 0
    print(f"following changes after seq {after}", flush=True)
    handled = 0
    with Client() as bf:  # BEASTFLOW_URL (default http://localhost:8000), BEASTFLOW_API_KEY
        follower = bf.follow(
            after=after,
            source=args.source,
            idle_timeout_s=args.idle,
            on_reconnect=lambda seq, error: print(f"reconnecting after seq {seq}: {error}", flush=True),
        )
        try:
            for change in follower:
                print(
                    f"seq {change['seq']} source {change['source']} {change['type']} {change['key']}"
                    f" v{change['version']} ({change['origin']})",
                    flush=True,
                )
                # Handle the change first, then remember it: a crash in between repeats it, never loses it.
                temporary = state.with_suffix(".tmp")
                temporary.write_text(str(change["seq"]))
                temporary.replace(state)
                handled += 1
                if args.count is not None and handled >= args.count:
                    break
        except KeyboardInterrupt:
            pass
    print(f"stopped at seq {follower.last_seq} after {handled} changes; run again to resume", flush=True)


if __name__ == "__main__":
    main()
