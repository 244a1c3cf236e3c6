"""Approve (or reject) a healing action: a reconciliation that would delete most of a source's records.

    export BEASTFLOW_API_KEY=$(cat .beastflow/demo_api_key)   # after `make up`
    .venv/bin/python examples/approve_healing.py [--reject] [--port 8788] [--keep]

The situation, made on purpose: a small upstream (served by this script on
127.0.0.1:<port>, speaking BeastFlow's own change feed and snapshot
protocol) has 20 orders, pushed to a source; then it loses 15 of them.
Reconciling would delete 75% of the source's records, over the safety cap
(`reconcile.max_change_ratio`, 10%): the run applies nothing, and a healing
action waits for an operator with the dry-run summary. Approving it runs the
reconciliation (15 records deleted); rejecting it keeps the records.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from beastflow_sdk import Client, upsert
from beastflow_sdk.models import HealingAction

ORDERS: dict[str, dict[str, Any]] = {f"order-{n}": {"total": n * 10} for n in range(1, 21)}


class Upstream(BaseHTTPRequestHandler):
    """GET /changes (nothing new) and GET /snapshot (the orders it still has); no digests (404)."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/changes":
            self.answer(200, {"events": [], "has_more": False})
        elif url.path == "/snapshot" and not query.keys() & {"digest", "bucket"}:
            records = [{"key": key, "version": 1, "data": data} for key, data in sorted(ORDERS.items())]
            self.answer(200, {"records": records, "next_page_token": None})
        else:
            self.answer(404, {"detail": "not here"})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def wait_for(what: str, check: Any, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what} after {timeout_s:g} s")
        time.sleep(0.5)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reject", action="store_true", help="reject the action instead of approving it")
    parser.add_argument("--port", type=int, default=8788, help="the example upstream's port on 127.0.0.1")
    parser.add_argument("--keep", action="store_true", help="keep the source (default: delete it at the end)")
    args = parser.parse_args()
    upstream = ThreadingHTTPServer(("127.0.0.1", args.port), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{args.port}"
    with Client() as bf:  # BEASTFLOW_URL (default http://localhost:8000), BEASTFLOW_API_KEY
        source = bf.sources.create(
            {
                "name": f"example-healing-{int(time.time())}",
                "connector": "http",
                "config": {"poll_url": f"{base}/changes", "snapshot_url": f"{base}/snapshot"},
                "reconcile": {"max_change_ratio": 0.1},
            }
        )
        source_id = source["id"]
        bf.push_batch(source_id, [upsert(key, 1, data, id=f"{key}-1") for key, data in ORDERS.items()])
        print(f"source {source_id}: {len(ORDERS)} orders pushed")

        for key in list(ORDERS)[5:]:
            del ORDERS[key]
        print(f"the upstream lost {20 - len(ORDERS)} orders; reconciling")
        run = bf.sources.reconcile(source_id)["run"]

        def waiting() -> HealingAction | None:
            page = bf.healing_actions.list(source=source_id, status="awaiting_approval")
            return page["results"][0] if page["results"] else None

        action = wait_for("the action awaiting approval", waiting)
        runs = bf.sources.reconciliations(source_id)["results"]
        held = next(r for r in runs if r["id"] == run)
        print(f"run {run} is {held['status']}; action {action['id']} ({action['strategy']}, risk {action['risk']})")
        print("  why:", action["detail"].get("hold_detail") or action["detail"])
        if args.reject:
            decided = bf.healing_actions.reject(action["id"], reason="the upstream is being restored from backup")
        else:
            decided = bf.healing_actions.approve(action["id"], reason="the orders were archived upstream on purpose")
        print(f"action {decided['id']} {decided['status']} by {decided['decided_by']}: {decided['reason']}")

        if not args.reject:
            final = wait_for(
                "the approved reconciliation",
                lambda: (a := bf.healing_actions.get(action["id"]))["status"] in ("succeeded", "failed") and a,
            )
            print(f"action {final['id']} {final['status']}")
        records = sum(1 for _ in bf.records.iter(source_id))
        print(f"the source holds {records} orders")
        for event in bf.healing_actions.get(action["id"]).get("events", []):
            print(f"  {event['at']} {event['kind']} by {event['actor']} {event['note']}")
        if not args.keep:
            bf.sources.delete(source_id)
    upstream.shutdown()


if __name__ == "__main__":
    main()
