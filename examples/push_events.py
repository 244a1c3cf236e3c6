"""Push events from an application: one, a batch, NDJSON, a redelivery, a delete.

    export BEASTFLOW_API_KEY=$(cat .beastflow/demo_api_key)   # after `make up`
    .venv/bin/python examples/push_events.py [--keep]

Each event carries an id of your own (here: the row of an outbox table and
the version), the idempotency key: a retry, or the same event sent again
after a crash, is counted as a duplicate and changes nothing. The SDK
retries pushes on 429/503 after the server's Retry-After, and on a broken
connection, with the same ids.
"""

from __future__ import annotations

import argparse
import os

from beastflow_sdk import Client, RetryInfo, delete, upsert

SOURCE = "example-orders"


def said(info: RetryInfo) -> None:
    print(f"  retrying {info.method} {info.path} in {info.delay_s:.1f} s ({info.status or info.error})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the source (default: delete it at the end)")
    args = parser.parse_args()
    with Client(on_retry=said) as bf:  # BEASTFLOW_URL (default http://localhost:8000), BEASTFLOW_API_KEY
        source = next((s for s in bf.sources.iter() if s["name"] == SOURCE), None) or bf.sources.create(
            {
                "name": SOURCE,
                "connector": "http",
                # Where BeastFlow would poll if pushes degraded: your application's change feed
                # (docs/sdk.md). Nothing listens at this default; the example only pushes.
                "config": {"poll_url": os.environ.get("APP_FEED_URL", "http://127.0.0.1:9/changes")},
            }
        )
        source_id = source["id"]
        print(f"source {source_id} {source['name']}: ingest URL {source['ingest_url']}")

        one = bf.push(source_id, upsert("order-1", 1, {"total": 12.5, "status": "new"}, id="outbox-1"))
        print("one event:", one)

        batch = [upsert(f"order-{n}", 1, {"total": n * 10.0, "status": "new"}, id=f"outbox-{n}") for n in range(2, 102)]
        print("a batch of 100:", bf.push_batch(source_id, batch))

        lines = [upsert(f"order-{n}", 2, {"total": n * 10.0, "status": "paid"}, id=f"outbox-{n}-paid") for n in (2, 3)]
        print("NDJSON:", bf.push_ndjson(source_id, lines))

        print("the batch again (a redelivery):", bf.push_batch(source_id, batch))
        print("a delete:", bf.push(source_id, delete("order-4", 2, id="outbox-4-deleted")))

        record = bf.records.get(source_id, "order-2")
        print(f"order-2 is at version {record['version']}: {record['data']}")
        print(f"{sum(1 for _ in bf.records.iter(source_id))} orders stored")
        if not args.keep:
            bf.sources.delete(source_id)
            print(f"source {source_id} deleted (--keep keeps it)")


if __name__ == "__main__":
    main()
