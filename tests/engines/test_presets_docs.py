"""The worked example of docs/presets.md is a working preset: loaded, expanded, and mapping GitHub's own payloads."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from engines.connectors.mapping import op_of, search, version_of
from engines.connectors.presets.registry import PRESETS_DIR, Preset, preset_apply, presets_load
from engines.schemas import RestConnectorConfig, validate_source
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

DOC = Path(__file__).resolve().parents[2] / "docs" / "presets.md"


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Preset]:
    text = DOC.read_text()
    section = text[text.index("### A worked example") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the worked example's YAML block"
    folder = tmp_path_factory.mktemp("my-presets")
    (folder / "github-issue-comments.yaml").write_text(block.group(1))
    return presets_load([PRESETS_DIR, folder])


def test_the_documented_preset_loads_beside_the_shipped_ones_and_its_example_is_a_source(
    documented: dict[str, Preset],
) -> None:
    preset = documented["github-issue-comments"]
    spec, errors = validate_source(preset_apply(dict(preset.example), documented))
    assert errors == []
    assert spec is not None
    config = spec.connector_config()
    assert isinstance(config, RestConnectorConfig)
    assert config.list_path == "/repos/{owner}/{repo}/issues/comments"
    assert config.headers["Authorization"] == "Bearer <token>"


def test_its_push_mapping_reads_githubs_issue_comment_examples_as_its_poll_mapping_reads_the_comment(
    documented: dict[str, Preset], upstream: UpstreamSigner
) -> None:
    fills: dict[str, Any] = documented["github-issue-comments"].fills
    push, poll = fills["push"]["mapping"], fills["config"]
    examples = upstream.github_examples("issue_comment")
    assert examples
    for body in examples:
        request = {"headers": {"x-github-event": "issue_comment", "x-github-delivery": str(uuid.uuid4())}, "body": body}
        comment = body["comment"]
        assert search(push["filter"], request)
        assert search(push["key"], request) == search(poll["key"], comment) == str(comment["id"])
        assert version_of(search(push["version"], request)) == version_of(search(poll["version"], comment))
        assert search(push["data"], request) == search(poll["data"], comment) == comment
        assert op_of(search(push["op"], request)) == ("delete" if body["action"] == "deleted" else "upsert")
    for body in upstream.github_examples("issues"):
        assert not search(push["filter"], {"headers": {"x-github-event": "issues"}, "body": body})
