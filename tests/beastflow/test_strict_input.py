"""Request bodies take the JSON types the OpenAPI document states: no silent coercion (found by schemathesis)."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from beastflow.strict_input import StrictInputSerializer
from tests.conftest import Persona


class Sample(StrictInputSerializer):
    name = serializers.CharField()
    count = serializers.IntegerField(required=False)
    ratio = serializers.FloatField(required=False)
    on = serializers.BooleanField(required=False)
    ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    note = serializers.CharField(required=False, allow_null=True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"name": "a", "count": "5"}, "count"),
        ({"name": "a", "count": True}, "count"),
        ({"name": "a", "ratio": "0.5"}, "ratio"),
        ({"name": "a", "on": "yes"}, "on"),
        ({"name": "a", "ids": [1, "2"]}, "ids"),
        ({"name": "a", "labels": {"k": 1}}, "labels"),
    ],
)
def test_a_value_of_another_json_type_is_refused_naming_the_field(body: dict[str, object], field: str) -> None:
    given = Sample(data=body)
    assert not given.is_valid()
    assert field in given.errors


def test_values_of_the_stated_types_pass_and_null_is_left_to_allow_null() -> None:
    given = Sample(
        data={"name": "a", "count": 5, "ratio": 1, "on": False, "ids": [1, 2], "labels": {"k": "v"}, "note": None}
    )
    assert given.is_valid(), given.errors
    assert given.validated_data["ratio"] == 1.0


def test_a_subscription_with_a_number_for_its_url_or_a_string_for_from_seq_is_a_422(alice: Persona) -> None:
    # when
    number_url = alice.client().post("/api/v1/subscriptions", {"url": 5}, format="json")
    string_seq = alice.client().post(
        "/api/v1/subscriptions", {"url": "https://hooks.example/x", "from_seq": "1"}, format="json"
    )
    # then
    assert number_url.status_code == 422
    assert {"field": "url", "message": "must be a string"} in number_url.json()["errors"]
    assert string_seq.status_code == 422
    assert string_seq.json()["errors"][0]["field"] == "from_seq"


def test_an_item_of_a_list_is_named_by_its_position() -> None:
    given = Sample(data={"name": "a", "ids": [1, "2", 3, None]})
    assert not given.is_valid()
    assert list(given.errors["ids"]) == [1]
