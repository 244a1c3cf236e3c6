"""Input serializers that take JSON types as the OpenAPI document states them.

DRF coerces: a CharField takes 5 as "5", an IntegerField takes "5" as 5, a
BooleanField takes "yes". The schema says `type: string` / `integer` /
`boolean`, so a client (or schemathesis' negative tests) sending another
type must be refused, not silently converted. `StrictInputSerializer`
checks each given field's JSON type before DRF's own validation, and names
the field in the error like any other validation error.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


def _type_problem(field: serializers.Field, value: Any) -> Any:  # type: ignore[type-arg]
    """None when `value` has the field's JSON type; else the error, shaped as DRF's (per item for a list)."""
    if value is None:
        return None  # allow_null is DRF's own check
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else ["must be a boolean"]
    if isinstance(field, (serializers.CharField, serializers.ChoiceField)):
        return None if isinstance(value, str) else ["must be a string"]
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else ["must be an integer"]
    if isinstance(field, serializers.FloatField):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else ["must be a number"]
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return ["must be a list"]
        items = {position: _type_problem(field.child, item) for position, item in enumerate(value)}
        return {position: problem for position, problem in items.items() if problem} or None
    if isinstance(field, serializers.DictField):
        if not isinstance(value, dict):
            return ["must be an object"]
        entries = {key: _type_problem(field.child, item) for key, item in value.items()}
        return {key: problem for key, problem in entries.items() if problem} or None
    return None


# A request body serializer whose fields refuse JSON values of another type than their own. (A comment,
# not a docstring: drf-spectacular would show an inherited docstring as every input body's description.)
class StrictInputSerializer(serializers.Serializer[Any]):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {}
            for name, field in self.fields.items():
                if name in data and not field.read_only:
                    problem = _type_problem(field, data[name])
                    if problem:
                        errors[name] = problem
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
