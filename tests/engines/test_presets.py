"""Presets as data: every shipped file expands to a valid source; the tenant's part is checked. No database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engines.connectors.presets.registry import (
    PRESETS_DIR,
    PresetError,
    PresetFileError,
    deep_merge,
    preset_apply,
    preset_load,
    presets_load,
    registry,
)
from engines.schemas import Connector, PushScheme, RestConnectorConfig, validate_source
from engines.sources import SourceError, parse_spec

SHIPPED = ["github-issues", "shopify-orders", "stripe-customers"]


def github_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "gh",
        "preset": "github-issues",
        "config": {
            "base_url": "https://api.github.com",
            "owner": "octo-org",
            "repo": "hello",
            "headers": {"Authorization": "Bearer t0ken"},
        },
        "push": {"secret": "s3cret"},
        "poll": {"audit_interval_s": 60},
    }
    body.update(overrides)
    return body


def test_the_shipped_presets_are_loaded_by_name() -> None:
    assert list(registry()) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_expands_its_example_to_a_valid_rest_source(name: str) -> None:
    # given
    preset = registry()[name]
    # when
    spec, errors = validate_source(preset_apply(dict(preset.example)))
    # then
    assert errors == []
    assert spec is not None
    assert spec.preset == name
    assert spec.connector is Connector.REST
    assert isinstance(spec.connector_config(), RestConnectorConfig)
    assert spec.push.scheme.value == preset.push_scheme
    assert spec.push.mapping is not None
    assert preset.summary()["connector"] == "rest"


def test_the_github_preset_polls_and_maps_exactly_as_documented() -> None:
    spec = parse_spec(github_body())
    config = spec.connector_config()
    assert isinstance(config, RestConnectorConfig)
    assert str(config.base_url).rstrip("/") == "https://api.github.com"
    assert config.list_path == "/repos/{owner}/{repo}/issues"
    assert config.template_values() == {"owner": "octo-org", "repo": "hello"}
    assert config.params == {"state": "all", "sort": "updated", "direction": "asc", "per_page": "100"}
    assert (config.since_param, config.since_field, config.pagination.style) == ("since", "updated_at", "link")
    assert (config.key, config.version, config.data) == ("to_string(id)", "updated_at", "@")
    assert config.headers["Authorization"] == "Bearer t0ken"
    assert config.headers["Accept"] == "application/vnd.github+json"  # the preset's, merged under the tenant's
    assert spec.push.scheme is PushScheme.GITHUB
    assert spec.push.secret == "s3cret"
    assert spec.poll.audit_interval_s == 60


def test_the_stripe_preset_pages_events_by_cursor_in_unix_time_and_snapshots_customers() -> None:
    spec = parse_spec(dict(registry()["stripe-customers"].example))
    config = spec.connector_config()
    assert isinstance(config, RestConnectorConfig)
    assert config.list_path == "/v1/events"
    assert config.params["type"] == "customer.*"
    assert (config.since_param, config.since_format) == ("created[gte]", "unix")
    assert config.pagination.style == "cursor"
    assert config.pagination.param == "starting_after"
    assert config.snapshot is not None
    assert config.snapshot.path == "/v1/customers"
    assert spec.push.scheme is PushScheme.STRIPE


def test_any_field_a_preset_fills_can_be_overridden_in_the_same_body() -> None:
    # given
    body = github_body(
        config={"owner": "o", "repo": "r", "params": {"per_page": "50"}, "list_path": "/repos/{owner}/{repo}/pulls"},
        poll={"min_interval_s": 30, "max_interval_s": 120},
        push={"secret": "s", "mapping": {"filter": "headers.\"x-github-event\" == 'issue_comment'"}},
    )
    # when
    spec = parse_spec(body)
    # then
    config = spec.connector_config()
    assert isinstance(config, RestConnectorConfig)
    assert config.params == {"state": "all", "sort": "updated", "direction": "asc", "per_page": "50"}
    assert config.list_path == "/repos/{owner}/{repo}/pulls"
    assert spec.poll.min_interval_s == 30
    assert spec.poll.audit_interval_s == 60  # the preset's, kept
    assert spec.push.mapping is not None
    assert spec.push.mapping.filter == "headers.\"x-github-event\" == 'issue_comment'"
    assert spec.push.mapping.key == "to_string(body.issue.id)"  # the rest of the mapping stays


def test_a_null_in_the_body_removes_what_the_preset_filled() -> None:
    spec = parse_spec(github_body(push={"secret": "s", "mapping": {"filter": None}}))
    assert spec.push.mapping is not None
    assert spec.push.mapping.filter is None


def test_missing_owner_and_repo_are_named_as_config_fields() -> None:
    with pytest.raises(SourceError) as caught:
        parse_spec(github_body(config={"headers": {"Authorization": "Bearer t"}}))
    assert caught.value.status == 422
    assert {error["field"] for error in caught.value.errors} == {"config.owner", "config.repo"}


@pytest.mark.parametrize("owner", ["../admin", "a/b", "", "-x"])
def test_an_owner_that_would_leave_the_repository_path_is_refused(owner: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_spec(github_body(config={"owner": owner, "repo": "r"}))
    assert [error["field"] for error in caught.value.errors] == ["config.owner"]


@pytest.mark.parametrize("repo", ["..", ".", "a b", "x/y"])
def test_a_repo_name_github_would_not_take_is_refused(repo: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_spec(github_body(config={"owner": "o", "repo": repo}))
    assert [error["field"] for error in caught.value.errors] == ["config.repo"]


def test_nested_requirements_name_the_nested_field() -> None:
    with pytest.raises(PresetError) as caught:
        preset_apply({"name": "s", "preset": "stripe-customers", "config": {"headers": {"Stripe-Account": "acct_1"}}})
    assert [error["field"] for error in caught.value.errors] == ["config.headers.Authorization"]


def test_an_unknown_preset_is_a_422_on_the_preset_field() -> None:
    with pytest.raises(SourceError) as caught:
        parse_spec(github_body(preset="gitlab-issues"))
    assert caught.value.status == 422
    assert caught.value.errors[0]["field"] == "preset"
    assert "github-issues" in caught.value.errors[0]["message"]


def test_a_preset_that_is_not_a_string_is_unknown() -> None:
    with pytest.raises(PresetError) as caught:
        preset_apply(github_body(preset=["github-issues"]))
    assert caught.value.errors[0]["field"] == "preset"


def test_a_config_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PresetError) as caught:
        preset_apply(github_body(config="owner=o"))
    assert caught.value.errors == [{"field": "config", "message": "not an object"}]


def test_the_whole_result_is_still_validated_after_the_merge() -> None:
    # An override the preset's schema allows but the connector does not: caught by the source validation.
    with pytest.raises(SourceError) as caught:
        parse_spec(github_body(config={"owner": "o", "repo": "r", "pagination": {"style": "cursor"}}))
    assert any(error["field"].startswith("config.pagination") for error in caught.value.errors)


def test_a_body_without_a_preset_is_left_as_it_is() -> None:
    body = {"name": "n", "connector": "http", "config": {"poll_url": "http://127.0.0.1:1/changes"}}
    assert preset_apply(body) is body


def test_deep_merge_merges_objects_and_replaces_everything_else() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # untouched


# Preset files written by an operator ------------------------------------------


def _write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _copy_of_github(**changes: Any) -> dict[str, Any]:
    data = yaml.safe_load((PRESETS_DIR / "github-issues.yaml").read_text())
    data.update(changes)
    return data


def test_a_copied_preset_file_in_another_folder_is_loaded_beside_the_shipped_ones(tmp_path: Path) -> None:
    # given
    _write(tmp_path, "gitea-issues", _copy_of_github(name="gitea-issues", title="Gitea issues"))
    # when
    presets = presets_load([PRESETS_DIR, tmp_path])
    # then
    assert set(presets) == {*SHIPPED, "gitea-issues"}
    body = preset_apply({**presets["gitea-issues"].example, "preset": "gitea-issues"}, presets)
    assert validate_source(body)[1] == []


def test_two_files_of_one_name_are_an_error_not_an_override(tmp_path: Path) -> None:
    _write(tmp_path, "github-issues", _copy_of_github())
    with pytest.raises(PresetFileError, match="also defined"):
        presets_load([PRESETS_DIR, tmp_path])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "other"}, "file name"),
        ({"fills": {"name": "x"}}, "not source fields"),
        ({"fills": {"connector": "rest", "push": {"scheme": "github", "secret": "s"}}}, "never a preset's"),
        ({"config_schema": {"type": "nonsense"}}, "not a JSON Schema"),
        ({"example": {"name": "x", "config": {"owner": "o"}}}, "config_schema"),
        ({"fills": {"connector": "rest", "config": {"list_path": "/x"}}}, "valid source"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_broken_preset_file_is_refused_with_its_path(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = _write(tmp_path, "github-issues", _copy_of_github(**changes))
    with pytest.raises(PresetFileError, match=message) as caught:
        preset_load(path)
    assert str(path) in str(caught.value)


def test_a_preset_folder_that_does_not_exist_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(PresetFileError, match="not a folder"):
        presets_load([PRESETS_DIR, tmp_path / "missing"])
