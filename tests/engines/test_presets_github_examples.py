"""The github-issues preset's mappings over GitHub's own published webhook payloads.

`@octokit/webhooks-examples` (npm, installed at test time) holds the example
deliveries GitHub documents, by event type. The push mapping must turn each
`issues` delivery into the record the poll mapping makes of the same issue
(key = issue id as a string, version = updated_at, data = the issue), delete
on `deleted`, and ignore every other event type, including those that also
carry an `issue` (issue_comment) and GitHub's `ping`.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from engines.connectors.mapping import op_of, search, to_microseconds, version_of
from engines.connectors.mapping import parse_timestamp as rfc3339
from engines.connectors.presets import registry
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

EVENTS = ("issues", "ping", "issue_comment", "pull_request", "push", "label")


@pytest.fixture(scope="module")
def github_examples(upstream: UpstreamSigner) -> dict[str, list[dict[str, Any]]]:
    return {event: upstream.github_examples(event) for event in EVENTS}


def _request(event: str, body: dict[str, Any]) -> dict[str, Any]:
    # The headers GitHub sends with every delivery, lower-cased as the mapping sees them.
    return {"headers": {"x-github-event": event, "x-github-delivery": str(uuid.uuid4())}, "body": body}


def test_every_published_issues_delivery_maps_to_the_issue_record(
    github_examples: dict[str, list[dict[str, Any]]],
) -> None:
    mapping = registry()["github-issues"].fills["push"]["mapping"]
    deliveries = github_examples["issues"]
    assert len(deliveries) >= 20  # the package's examples, not an empty list
    for body in deliveries:
        request = _request("issues", body)
        issue = body["issue"]
        assert search(mapping["filter"], request), body["action"]
        assert search(mapping["id"], request) == request["headers"]["x-github-delivery"]
        assert search(mapping["key"], request) == str(issue["id"])
        assert version_of(search(mapping["version"], request)) == to_microseconds(rfc3339(issue["updated_at"]))
        expected_op = "delete" if body["action"] == "deleted" else "upsert"
        assert op_of(search(mapping["op"], request)) == expected_op, body["action"]
        assert search(mapping["data"], request) == issue


def test_the_deleted_action_is_among_the_examples_and_deletes(
    github_examples: dict[str, list[dict[str, Any]]],
) -> None:
    mapping = registry()["github-issues"].fills["push"]["mapping"]
    deleted = [body for body in github_examples["issues"] if body["action"] == "deleted"]
    assert deleted
    assert {op_of(search(mapping["op"], _request("issues", body))) for body in deleted} == {"delete"}


@pytest.mark.parametrize("event", ["ping", "issue_comment", "pull_request", "push", "label"])
def test_other_event_types_are_filtered_out(github_examples: dict[str, list[dict[str, Any]]], event: str) -> None:
    mapping = registry()["github-issues"].fills["push"]["mapping"]
    deliveries = github_examples[event]
    assert deliveries
    for body in deliveries:
        assert not search(mapping["filter"], _request(event, body))


def test_a_polled_issue_is_the_same_record_as_its_pushed_one(
    github_examples: dict[str, list[dict[str, Any]]],
) -> None:
    # The REST listing returns issue objects of the webhook's `issue` shape.
    config = registry()["github-issues"].fills["config"]
    mapping = registry()["github-issues"].fills["push"]["mapping"]
    for body in github_examples["issues"]:
        issue = body["issue"]
        request = _request("issues", body)
        assert search(config["key"], issue) == search(mapping["key"], request)
        assert version_of(search(config["version"], issue)) == version_of(search(mapping["version"], request))
        assert search(config["data"], issue) == search(mapping["data"], request)
        assert search(config["since_field"], issue) == issue["updated_at"]
