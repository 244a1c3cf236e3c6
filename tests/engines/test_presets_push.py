"""A source made from the github-issues preset takes GitHub's own webhooks, signed by GitHub's own signer.

Nothing but the tenant's part is given (owner, repo, token, secret): the
preset's push scheme and mapping do the rest. Payloads come from
@octokit/webhooks-examples and signatures from @octokit/webhooks-methods.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from django.test import Client

from engines.connectors.mapping import parse_timestamp, to_microseconds
from tests.conftest import Persona
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

SECRET = "gh-preset-webhook-secret"


def _source(persona: Persona) -> int:
    body = {
        "name": f"gh-{uuid.uuid4().hex[:6]}",
        "preset": "github-issues",
        "config": {"owner": "octo-org", "repo": "hello", "headers": {"Authorization": "Bearer t"}},
        "push": {"secret": SECRET},
    }
    created = persona.client().post("/api/v1/sources", body, format="json")
    assert created.status_code == 201, created.json()
    source_id: int = created.json()["id"]
    return source_id


def _deliver(upstream: UpstreamSigner, source_id: int, event: str, payload: Any, secret: str = SECRET) -> Any:
    body = json.dumps(payload)
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": upstream.sign_github(secret, body),
        "User-Agent": "GitHub-Hookshot/044aadd",
    }
    return Client().post(
        f"/api/v1/sources/{source_id}/events", data=body.encode(), content_type="application/json", headers=headers
    )


def test_every_published_issues_delivery_becomes_its_issue_record(alice: Persona, upstream: UpstreamSigner) -> None:
    # given: GitHub's examples, each issue given an id of its own (they reuse three)
    source_id = _source(alice)
    examples = copy.deepcopy(upstream.github_examples("issues"))
    for n, example in enumerate(examples):
        example["issue"]["id"] = 7_000_000 + n
    # when
    answers = [_deliver(upstream, source_id, "issues", example) for example in examples]
    # then
    assert [answer.status_code for answer in answers] == [202] * len(examples)
    for example in examples:
        issue = example["issue"]
        response = alice.client().get(f"/api/v1/sources/{source_id}/records/{issue['id']}")
        if example["action"] == "deleted":
            assert response.status_code == 404
            continue
        record = response.json()
        assert record["data"] == issue
        assert record["version"] == to_microseconds(parse_timestamp(issue["updated_at"]))


def test_pings_and_other_events_are_ignored_and_a_wrong_secret_is_refused(
    alice: Persona, upstream: UpstreamSigner
) -> None:
    source_id = _source(alice)
    ping = _deliver(upstream, source_id, "ping", upstream.github_examples("ping")[0])
    comment = _deliver(upstream, source_id, "issue_comment", upstream.github_examples("issue_comment")[0])
    forged = _deliver(upstream, source_id, "issues", upstream.github_examples("issues")[0], secret="not-it")
    assert ping.status_code in (200, 202) and ping.json()["ignored"] == 1
    assert comment.status_code in (200, 202) and comment.json()["ignored"] == 1
    assert forged.status_code == 401
    assert alice.client().get(f"/api/v1/sources/{source_id}/records").json()["results"] == []
