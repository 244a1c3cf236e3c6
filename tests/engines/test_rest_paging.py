"""The rest connector's pure parts, without a database or a server (engines/connectors/rest_paging.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engines.connectors.mapping import MappingError, to_microseconds
from engines.connectors.rest import PageRequest
from engines.connectors.rest_paging import (
    RecordMapping,
    cursor_next,
    event_id,
    fill,
    is_missed,
    map_record,
    next_link,
    next_watermark,
    parse_links,
    rate_limit_wait,
    raw_event,
    records_of,
    since_of,
    since_value,
)
from engines.connectors.rest_poll import RestMemory
from engines.ingest.validation import validate

GITHUB = RecordMapping(key="to_string(id)", version="updated_at", data="@", since_field="updated_at")
STRIPE_EVENTS = RecordMapping(
    key="data.object.id",
    version="created",
    op="type == 'customer.deleted' && 'delete' || 'upsert'",
    data="data.object",
    since_field="created",
)


def _us(text: str) -> int:
    return to_microseconds(datetime.fromisoformat(text))


# --- Link headers -------------------------------------------------------------------------------


def test_the_next_link_is_read_from_githubs_link_header() -> None:
    # given: GitHub's header, as its REST API documents it
    header = (
        '<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", '
        '<https://api.github.com/repositories/1300192/issues?page=4>; rel="next", '
        '<https://api.github.com/repositories/1300192/issues?page=515>; rel="last", '
        '<https://api.github.com/repositories/1300192/issues?page=1>; rel="first"'
    )
    # when
    links = parse_links(header)
    # then
    assert next_link({"link": header}) == "https://api.github.com/repositories/1300192/issues?page=4"
    assert set(links) == {"prev", "next", "last", "first"}


def test_a_target_with_commas_and_semicolons_in_its_query_is_read_whole() -> None:
    # given: Shopify's page_info links carry fields=a,b
    header = '<https://shop.example/orders.json?fields=id,name;x=1&page_info=abc>; rel="next"'
    # when / then
    assert next_link({"link": header}) == "https://shop.example/orders.json?fields=id,name;x=1&page_info=abc"


def test_rel_may_list_several_types_and_is_case_insensitive() -> None:
    # when
    links = parse_links('</p/9>; title="x"; REL="Next Last"')
    # then
    assert links == {"next": "/p/9", "last": "/p/9"}


@pytest.mark.parametrize("header", [None, "", '<https://x/p?page=1>; rel="prev"', "garbage"])
def test_without_a_next_link_the_page_is_the_last(header: str | None) -> None:
    # when / then
    assert next_link({"link": header} if header is not None else {}) is None


# --- cursors ------------------------------------------------------------------------------------


def test_stripes_cursor_is_the_last_objects_id_while_has_more() -> None:
    # given
    body = {"object": "list", "data": [{"id": "evt_1"}, {"id": "evt_2"}], "has_more": True}
    # when / then
    assert cursor_next(body, "has_more && data[-1].id") == "evt_2"
    assert cursor_next({**body, "has_more": False}, "has_more && data[-1].id") is None


@pytest.mark.parametrize("value", [None, False, "", []])
def test_an_empty_cursor_means_the_last_page(value: object) -> None:
    # when / then
    assert cursor_next({"next": value}, "next") is None


def test_a_numeric_cursor_is_sent_as_text_and_an_object_is_refused() -> None:
    # when / then
    assert cursor_next({"next": 40}, "next") == "40"
    assert cursor_next({"next": 40.0}, "next") == "40"
    with pytest.raises(MappingError, match=r"pagination\.next"):
        cursor_next({"next": {"a": 1}}, "next")


# --- templates ----------------------------------------------------------------------------------


def test_template_values_fill_a_path_as_single_segments() -> None:
    # when
    path = fill("/repos/{owner}/{repo}/issues", {"owner": "octo-org", "repo": "a/../b"}, path=True)
    # then: a value cannot climb out of its segment
    assert path == "/repos/octo-org/a%2F..%2Fb/issues"
    assert fill("{owner}/x", {"owner": "a b"}, path=False) == "a b/x"


# --- since watermark ----------------------------------------------------------------------------


def test_since_times_are_read_from_rfc3339_and_unix_seconds() -> None:
    # when / then
    assert since_of("2026-12-01T10:00:00Z") == _us("2026-12-01T10:00:00+00:00")
    assert since_of(1_700_000_000) == 1_700_000_000_000_000
    assert since_of("1700000000") == 1_700_000_000_000_000
    assert since_of(None) is None


@pytest.mark.parametrize("value", ["yesterday", True, -5, {"t": 1}])
def test_an_unreadable_since_time_is_a_mapping_error_not_a_silent_skip(value: object) -> None:
    with pytest.raises(MappingError, match="since_field"):
        since_of(value)


def test_the_query_asks_from_the_watermark_minus_the_overlap_rounded_down() -> None:
    # given
    watermark = _us("2026-12-01T10:00:07.900000+00:00")
    # when / then
    assert since_value(watermark, overlap_s=5, style="rfc3339") == "2026-12-01T10:00:02Z"
    assert since_value(watermark, overlap_s=0, style="rfc3339") == "2026-12-01T10:00:07Z"
    assert since_value(watermark, overlap_s=5, style="unix") == str(int(watermark / 1e6) - 5)
    assert since_value(None, overlap_s=5, style="rfc3339") is None


@given(watermark=st.integers(0, 2**62), overlap=st.floats(0, 86_400))
def test_the_since_asked_is_never_later_than_the_watermark_minus_the_overlap(watermark: int, overlap: float) -> None:
    # when
    asked = since_value(watermark, overlap_s=overlap, style="unix")
    # then
    assert asked is not None
    assert int(asked) * 1_000_000 <= max(0, watermark - overlap * 1_000_000) + 1


def test_the_watermark_moves_to_the_highest_seen_when_the_listing_was_read_to_its_end() -> None:
    # when / then
    assert next_watermark(100, 300, finished=True, ascending=False) == 300
    assert next_watermark(None, 300, finished=True, ascending=False) == 300


def test_a_listing_in_since_order_moves_the_watermark_even_when_the_poll_stopped_early() -> None:
    # when / then
    assert next_watermark(100, 300, finished=False, ascending=True) == 300


def test_a_listing_out_of_since_order_cut_short_keeps_the_watermark() -> None:
    # given: newest first (Stripe's events), stopped by the page budget: older records were not reached
    # when / then
    assert next_watermark(100, 300, finished=False, ascending=False) == 100


def test_the_watermark_never_moves_back() -> None:
    # when / then
    assert next_watermark(500, 300, finished=True, ascending=True) == 500
    assert next_watermark(500, None, finished=True, ascending=True) == 500


# --- rate limits --------------------------------------------------------------------------------


def test_a_spent_rate_limit_waits_until_its_reset() -> None:
    # when
    wait = rate_limit_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000"}, now=970.5)
    # then
    assert wait == 29.5


def test_a_rate_limit_with_calls_left_does_not_wait() -> None:
    # when / then
    assert rate_limit_wait({"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1000"}, now=970) is None
    assert rate_limit_wait({}, now=970) is None


def test_a_reset_in_the_past_waits_nothing_and_an_unreadable_one_a_minute() -> None:
    # when / then
    assert rate_limit_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "900"}, now=970) == 0.0
    assert rate_limit_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "soon"}, now=970) == 60.0


# --- records ------------------------------------------------------------------------------------


def test_a_github_issue_maps_to_its_id_updated_at_and_itself() -> None:
    # given
    issue = {"id": 1347, "number": 7, "title": "Found a bug", "updated_at": "2026-12-01T10:00:00Z"}
    # when
    record = map_record(issue, GITHUB)
    # then
    assert (record.key, record.op, record.data) == ("1347", "upsert", issue)
    assert record.version == record.since_us == _us("2026-12-01T10:00:00+00:00")


def test_a_stripe_deletion_event_maps_to_a_delete_of_its_customer() -> None:
    # given
    event = {"id": "evt_9", "type": "customer.deleted", "created": 1_700_000_123, "data": {"object": {"id": "cus_1"}}}
    # when
    record = map_record(event, STRIPE_EVENTS)
    # then
    assert (record.key, record.version, record.op, record.data) == ("cus_1", 1_700_000_123, "delete", None)
    assert record.since_us == 1_700_000_123_000_000


def test_a_record_without_a_key_names_the_key_field() -> None:
    # (JMESPath's to_string(null) is "null": a key expression should not stringify a missing id)
    with pytest.raises(MappingError) as error:
        map_record({"updated_at": "2026-12-01T10:00:00Z"}, RecordMapping(key="id", version="updated_at"))
    assert error.value.field == "key"


def test_an_upsert_whose_data_is_not_an_object_is_refused() -> None:
    with pytest.raises(MappingError, match="data"):
        map_record(
            {"id": 1, "updated_at": "2026-12-01T10:00:00Z", "d": [1]}, RecordMapping("id", "updated_at", data="d")
        )


def test_records_are_found_with_the_records_expression_or_are_the_body() -> None:
    # when / then
    assert records_of([{"id": 1}], None) == [{"id": 1}]
    assert records_of({"data": [{"id": 1}]}, "data") == [{"id": 1}]
    assert records_of({"other": 1}, "data") == []
    with pytest.raises(MappingError, match="records"):
        records_of({"data": {"id": 1}}, "data")


def test_a_polled_record_is_the_event_a_push_would_be_with_id_key_colon_version() -> None:
    # given
    issue = {"id": 1347, "updated_at": "2026-12-01T10:00:00Z"}
    record = map_record(issue, GITHUB)
    # when
    batch = validate([raw_event(record)])
    # then
    assert not batch.errors
    [event] = batch.events
    assert event.id == f"1347:{record.version}"
    assert event.occurred_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert event.hash  # hashed like a push


def test_a_key_too_long_for_an_event_id_is_replaced_by_its_sha256() -> None:
    # when
    long_id = event_id("k" * 300, 7)
    # then
    assert len(long_id) <= 255
    assert long_id.startswith("sha256:") and long_id.endswith(":7")
    assert event_id("k" * 300, 7) == long_id != event_id("k" * 301, 7)


# --- misses -------------------------------------------------------------------------------------


def test_a_change_older_than_the_grace_is_a_miss() -> None:
    # when / then
    assert is_missed(10_000_000, received_us=13_000_000, grace_s=2, watching_since_us=0)


def test_a_change_within_the_grace_may_be_a_push_in_flight() -> None:
    # when / then
    assert not is_missed(12_000_000, received_us=13_000_000, grace_s=2, watching_since_us=0)


def test_a_change_from_before_the_source_existed_was_never_pushed_to_it() -> None:
    # when / then: the first poll's backfill is not a miss
    assert not is_missed(10_000_000, received_us=99_000_000, grace_s=2, watching_since_us=50_000_000)


def test_a_change_without_a_since_time_cannot_be_judged() -> None:
    # when / then
    assert not is_missed(None, received_us=99_000_000, grace_s=2, watching_since_us=0)


# --- what polls remember ------------------------------------------------------------------------


def test_a_rest_sources_memory_survives_its_json_round_trip() -> None:
    # given
    memory = RestMemory(
        watermark_us=1_700_000_000_000_000,
        etag='W/"abc"',
        etag_for="http://x/issues?since=2026-12-01T10%3A00%3A00Z",
        resume=PageRequest(url="http://x/v1/events", params={"starting_after": "evt_9", "limit": "5"}, number=2),
        pending_us=1_700_000_100_000_000,
    )
    # when / then
    assert RestMemory.from_dict(memory.to_dict()) == memory
    assert RestMemory.from_dict(None) == RestMemory()
    assert RestMemory.from_dict({"watermark_us": True, "resume": "junk"}) == RestMemory()
