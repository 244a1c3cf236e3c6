"""Use a preset of your own for a REST API BeastFlow does not ship (examples/presets/inventory-items.yaml).

    BEASTFLOW_PRESET_DIRS=examples/presets make up                # the server loads the preset
    export BEASTFLOW_API_KEY=$(cat .beastflow/demo_api_key)
    .venv/bin/python examples/custom_preset.py [--port 8789] [--keep]

This script also plays the upstream: a small inventory API on
127.0.0.1:<port> (`GET /v1/items?page=&per_page=&updated_since=`, key in
`X-Api-Key`). The source is created with one request naming the preset;
its records arrive by poll; an item changed upstream arrives at the next
poll.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from beastflow_sdk import Client, NotFoundError

API_KEY = "inv_example_key"
ITEMS: dict[str, dict[str, Any]] = {}


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def put(sku: str, name: str, quantity: int) -> None:
    ITEMS[sku] = {"sku": sku, "name": name, "quantity": quantity, "updated_at": stamp()}


class InventoryApi(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/v1/items":
            return self.answer(404, {"error": "not found"})
        if self.headers.get("X-Api-Key") != API_KEY:
            return self.answer(401, {"error": "bad key"})
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        page, per_page = int(query.get("page", "1")), int(query.get("per_page", "50"))
        since = query.get("updated_since", "")
        listed = sorted((i for i in ITEMS.values() if i["updated_at"] >= since), key=lambda i: i["updated_at"])
        return self.answer(200, {"items": listed[(page - 1) * per_page : page * per_page], "page": page})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8789, help="the inventory API's port on 127.0.0.1")
    parser.add_argument("--keep", action="store_true", help="keep the source (default: delete it at the end)")
    args = parser.parse_args()
    for n in range(1, 61):  # two pages and a bit
        put(f"SKU-{n:04d}", f"item {n}", n)
    api = ThreadingHTTPServer(("127.0.0.1", args.port), InventoryApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    with Client() as bf:  # BEASTFLOW_URL (default http://localhost:8000), BEASTFLOW_API_KEY
        try:
            preset = bf.presets.get("inventory-items")
        except NotFoundError:
            sys.exit("the server does not know the preset: start it with BEASTFLOW_PRESET_DIRS=examples/presets")
        print(f"preset {preset['name']}: {preset['title']} (connector {preset['connector']})")
        source = bf.sources.create(
            {
                "name": f"example-inventory-{int(time.time())}",
                "preset": "inventory-items",
                "config": {"base_url": f"http://127.0.0.1:{args.port}", "headers": {"X-Api-Key": API_KEY}},
            }
        )
        source_id = source["id"]
        print(f"source {source_id}: polls {source['config']['base_url'].rstrip('/')}{source['config']['list_path']}")

        def count() -> int:
            return sum(1 for _ in bf.records.iter(source_id))

        bf.sources.poll(source_id)  # now, rather than at the first audit poll
        deadline = time.monotonic() + 90
        while count() < len(ITEMS):
            if time.monotonic() > deadline:
                sys.exit(f"only {count()} of {len(ITEMS)} items arrived: see GET /api/v1/sources/{source_id}/polls")
            time.sleep(1)
        print(f"{count()} items arrived by poll")

        put("SKU-0007", "item 7", 0)  # sold out, upstream
        bf.sources.poll(source_id)
        while bf.records.get(source_id, "SKU-0007")["data"]["quantity"] != 0:
            if time.monotonic() > deadline:
                sys.exit("the change to SKU-0007 did not arrive")
            time.sleep(1)
        print("SKU-0007 changed upstream; the next poll brought it:", bf.records.get(source_id, "SKU-0007")["data"])
        if not args.keep:
            bf.sources.delete(source_id)
    api.shutdown()


if __name__ == "__main__":
    main()
