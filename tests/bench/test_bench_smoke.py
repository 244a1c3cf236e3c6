"""Cheap checks that `make bench` can start: its modules import, its naive route resolves."""

from __future__ import annotations

from django.urls import resolve

from bench._changes import _changes_in
from bench._client import percentile


def test_naive_baseline_route_resolves_to_a_drf_create_view():
    # given
    from bench import _naive_urls

    # when
    match = resolve("/naive/sources/7/events", urlconf=_naive_urls)

    # then
    assert match.func.view_class is _naive_urls.NaiveEventCreateApi
    assert match.kwargs == {"source_id": 7}


def test_naive_urls_keep_every_product_route():
    from bench import _naive_urls

    assert resolve("/api/v1/changes", urlconf=_naive_urls).url_name == "changes"


def test_percentile_is_nearest_rank():
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile(range(1, 101), 99) == 99
    assert percentile([7.0], 99) == 7.0


def test_changes_are_found_in_any_envelope():
    change = {"seq": 3, "committed_at": "2026-11-26T10:00:00+00:00", "source": 1}

    assert _changes_in(change) == [change]
    assert _changes_in({"type": "changes.batch", "changes": [change, change]}) == [change, change]
    assert _changes_in([{"results": [change]}]) == [change]
    assert _changes_in({"type": "hello"}) == []
