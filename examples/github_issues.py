"""Connect a GitHub repository's issues with the `github-issues` preset.

    export BEASTFLOW_API_KEY=$(cat .beastflow/demo_api_key)   # after `make up`
    .venv/bin/python examples/github_issues.py

Against GitHub itself, say which repository and give a token:
GITHUB_OWNER, GITHUB_REPO, GITHUB_TOKEN (and GITHUB_API_URL for GitHub
Enterprise). Without them it connects the simulated GitHub that `make up`
runs for the demo (the `demo-github` source's upstream). Then it sends the
`ping` GitHub sends to a new webhook (answered and ignored), asks for a
poll, and prints the issues that arrived.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import uuid

import httpx
from beastflow_sdk import Client

NAME = os.environ.get("SOURCE_NAME", "example-github")


def repository(bf: Client) -> tuple[str, str, str, str]:
    """(API root, owner, repo, token): from the environment, else the demo's simulated GitHub."""
    if os.environ.get("GITHUB_OWNER"):
        return (
            os.environ.get("GITHUB_API_URL", "https://api.github.com"),
            os.environ["GITHUB_OWNER"],
            os.environ["GITHUB_REPO"],
            os.environ.get("GITHUB_TOKEN", ""),
        )
    demo = next((s for s in bf.sources.iter() if s["name"] == "demo-github"), None)
    if demo is None:
        sys.exit("set GITHUB_OWNER, GITHUB_REPO and GITHUB_TOKEN, or run it against make up's demo tenant")
    config = demo["config"]
    return config["base_url"], config["owner"], config["repo"], config["headers"]["Authorization"][len("Bearer ") :]


def main() -> None:
    with Client() as bf:  # BEASTFLOW_URL (default http://localhost:8000), BEASTFLOW_API_KEY
        api, owner, repo, token = repository(bf)
        for old in [s for s in bf.sources.iter() if s["name"] == NAME]:
            bf.sources.delete(old["id"])  # a second run starts afresh
        secret = os.environ.get("GITHUB_WEBHOOK_SECRET") or secrets.token_urlsafe(24)
        source = bf.sources.create(
            {
                "name": NAME,
                "preset": "github-issues",
                "config": {
                    "base_url": api,
                    "owner": owner,
                    "repo": repo,
                    "headers": {"Authorization": f"Bearer {token}"} if token else {},
                },
                "push": {"secret": secret},  # the secret you set on the repository's webhook
                "poll": {"audit_interval_s": 30},
            }
        )
        print(
            f"source {source['id']}: {owner}/{repo} at {api} ({source['connector']}, push {source['push']['scheme']})"
        )
        print(f"on GitHub: Settings > Webhooks > payload URL {source['ingest_url']}, application/json, event Issues")

        # What GitHub sends when the webhook is created: signed, answered 2xx and ignored.
        ping = json.dumps({"zen": "Design for failure.", "hook_id": 1}).encode()
        signature = "sha256=" + hmac.new(secret.encode(), ping, hashlib.sha256).hexdigest()
        headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": signature}
        answer = httpx.post(source["ingest_url"], content=ping, headers=headers | {"Content-Type": "application/json"})
        print(f"ping: {answer.status_code} {answer.json()}")

        bf.sources.poll(source["id"])  # the first poll now, not at the first audit
        deadline = time.monotonic() + 90
        while not (latest := bf.records.list(source["id"], limit=5)["results"]):
            if time.monotonic() > deadline:
                sys.exit(f"no issue within 90 s: see GET /api/v1/sources/{source['id']}/polls")
            time.sleep(1)
        for record in latest:
            issue = record["data"]
            print(f"  #{issue['number']} [{issue['state']}] {issue['title']}")
        total = sum(1 for _ in bf.records.iter(source["id"]))
        print(f"{total} issues; new ones arrive by webhook, and audit polls every 30 s catch what a webhook missed")


if __name__ == "__main__":
    main()
