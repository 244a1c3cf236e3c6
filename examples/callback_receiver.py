"""Receive BeastFlow's callbacks in a small web app and verify every request's signature.

    export BEASTFLOW_API_KEY=$(cat .beastflow/demo_api_key)   # after `make up`
    .venv/bin/python examples/callback_receiver.py [--port 8787] [--scheme beastflow|standard-webhooks]
        [--source ID] [--count N]

It listens on 127.0.0.1:<port>, subscribes http://127.0.0.1:<port>/callbacks
(or CALLBACK_URL, the address BeastFlow can reach you at) to the tenant's
changes, and answers each POST: 204 once verified and handled, 401 when the
signature is wrong, stale or missing. Deliveries are at least once: a
change seen before (by seq) is acknowledged and skipped. The subscription is
deleted on exit.
"""

from __future__ import annotations

import argparse
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from beastflow_sdk import Client, WebhookVerificationError, verify_callback


def make_handler(
    secret: str, scheme: Literal["beastflow", "standard-webhooks"], done: threading.Event, count: int | None
) -> type[BaseHTTPRequestHandler]:
    seen: set[int] = set()
    lock = threading.Lock()

    class Callbacks(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the raw body, as signed
            try:
                payload = verify_callback(secret, dict(self.headers.items()), body, scheme=scheme)
            except WebhookVerificationError as exc:
                print(f"refused a callback: {exc}", flush=True)
                self.send_response(401)
                self.end_headers()
                return
            with lock:
                for change in payload["changes"]:
                    if change["seq"] in seen:
                        continue  # a redelivery
                    seen.add(change["seq"])
                    print(
                        f"verified seq {change['seq']} {change['type']} {change['key']} v{change['version']}",
                        flush=True,
                    )
                if count is not None and len(seen) >= count:
                    done.set()
            self.send_response(204)  # stored: BeastFlow moves on to the next batch
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per change above is enough

    return Callbacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--scheme", choices=["beastflow", "standard-webhooks"], default="beastflow")
    parser.add_argument("--source", type=int, action="append", help="only this source (repeatable)")
    parser.add_argument("--count", type=int, help="exit after this many changes")
    args = parser.parse_args()
    url = os.environ.get("CALLBACK_URL") or f"http://127.0.0.1:{args.port}/callbacks"
    # Listening before subscribing: the first delivery may come at once (it waits in the
    # socket's backlog until the handler, which needs the subscription's secret, is set).
    server = ThreadingHTTPServer(("127.0.0.1", args.port), BaseHTTPRequestHandler)
    with Client() as bf:  # BEASTFLOW_URL (default http://localhost:8000), BEASTFLOW_API_KEY
        subscription = bf.subscriptions.create(url, sources=args.source, signature=args.scheme)
        done = threading.Event()
        server.RequestHandlerClass = make_handler(subscription["secret"], args.scheme, done, args.count)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"subscription {subscription['id']} ({args.scheme}) delivers to {url}; listening", flush=True)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            bf.subscriptions.delete(subscription["id"])
            print(f"subscription {subscription['id']} deleted", flush=True)


if __name__ == "__main__":
    main()
