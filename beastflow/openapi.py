"""What every operation of /api/schema/ shares: bearer auth, problem+json answers, cursor pagination.

The views declare their 2xx bodies and the errors peculiar to them (a 409
on a taken name, a 410 below the changes floor) with `problems(...)`; the
postprocessing hook `shared_answers_hook` then adds, to every operation, the
errors any of them can answer, from what the operation itself shows:

- 401 on every operation that needs an API key (all of /api/v1/), and 503
  (PostgreSQL or Redis out of reach: Retry-After, never a 500);
- 404 where the path names an object (another tenant's is not found either);
- 400 where there are query parameters to misread or a JSON body to misparse;
- 415 where there is a JSON body (only application/json is parsed);
- and every query parameter allows an empty value: `?limit=` reads as absent.

Every problem answer is one of the response components (`#/components/responses/...`,
built from `PROBLEMS`), each with its example, so a client learns the shape
once. Cursor pagination is described once as well: the parameters `Limit` and
`Cursor` and the schema `CursorPage`, which every `...Page` body extends.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from pydantic import BaseModel, ConfigDict, Field

from beastflow.problems import CONTENT_TYPE, TYPE_BASE, problem_body

BEARER = "bearerAuth"


class ProblemFieldError(BaseModel):
    """One thing wrong with the request: a field (dotted path) or an item's index in a batch."""

    field: str | None = Field(default=None, description="The field, e.g. `config.base_url` or `events[3].key`.")
    index: int | None = Field(default=None, description="The item of a batch (ingest) the message is about.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details: every error BeastFlow answers has this body (application/problem+json)."""

    model_config = ConfigDict(extra="allow")  # a 410 adds `floor`

    type: str = Field(description=f"A URI naming the kind of problem ({TYPE_BASE}<kind>).")
    title: str
    status: int
    detail: str = Field(description="What went wrong and, where it helps, what to do.")
    errors: list[ProblemFieldError] = Field(description="Per field or per batch item; empty when not about fields.")


# status -> (component name, description, example detail, example errors, Retry-After header)
PROBLEMS: dict[int, tuple[str, str, str, list[dict[str, Any]], bool]] = {
    400: (
        "BadRequest",
        "The request cannot be read: a query parameter that is not a number, a cursor this API did not give, "
        "a body that is not JSON or not an object.",
        "limit must be between 1 and 500",
        [{"field": "limit", "message": "out of range"}],
        False,
    ),
    401: (
        "Unauthorized",
        "No API key, or one that is unknown or revoked (`WWW-Authenticate: Bearer`).",
        "An API key is required: send 'Authorization: Bearer <api_key>'.",
        [],
        False,
    ),
    404: (
        "NotFound",
        "No such object in the caller's tenant; another tenant's objects answer the same.",
        "No such source.",
        [],
        False,
    ),
    409: ("Conflict", "The object's state forbids it (a name taken, an action decided already).", "", [], False),
    410: (
        "Gone",
        "What was asked for is below the changes' retention floor: resume from `floor` after re-reading records.",
        "Changes up to seq 1200 are no longer kept (retention); resume with after >= 1200, "
        "after re-reading the records for the state.",
        [{"field": "after", "message": "must be at least 1200"}],
        False,
    ),
    413: ("ContentTooLarge", "The body, or the batch, is over its limit.", "", [], False),
    415: (
        "UnsupportedMediaType",
        "The body is not application/json.",
        'Unsupported media type "text/plain" in request.',
        [],
        False,
    ),
    422: ("UnprocessableContent", "The body reads as JSON but is not valid; `errors` names each field.", "", [], False),
    429: (
        "TooManyRequests",
        "Over the tenant's ingest quota: retry after `Retry-After` seconds.",
        "Over the tenant's ingest quota of 1000 events/s.",
        [],
        True,
    ),
    503: (
        "ServiceUnavailable",
        "PostgreSQL or Redis cannot be reached: nothing was changed; retry after `Retry-After` seconds.",
        "The database is unavailable; retry shortly.",
        [],
        True,
    ),
}

_EXAMPLE_DETAILS = {
    409: ("A source named 'orders' exists.", [{"field": "name", "message": "taken"}]),
    413: ("A batch holds at most 1000 events; this one has 1200.", []),
    422: ("The request is invalid; see errors.", [{"field": "url", "message": "must be an http or https URL"}]),
}


def problems(*statuses: int) -> dict[int, OpenApiResponse]:
    """The problem answers peculiar to one operation, for `extend_schema(responses={..., **problems(409)})`."""
    return {status: OpenApiResponse(response=Problem, description=PROBLEMS[status][1]) for status in statuses}


def problem_ref(status: int) -> dict[str, str]:
    """A reference to the shared problem answer for `status` (its response component)."""
    return {"$ref": f"#/components/responses/{PROBLEMS[status][0]}"}


def _response_component(status: int) -> dict[str, Any]:
    _, description, detail, errors, retry = PROBLEMS[status]
    if status in _EXAMPLE_DETAILS:
        detail, errors = _EXAMPLE_DETAILS[status]
    body = problem_body(status, detail, errors=errors)
    if status == 410:
        body["floor"] = 1200
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: {description}",
        "content": {CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}, "example": body}},
    }
    if retry:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
        }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": 'Bearer realm="beastflow"', "schema": {"type": "string"}}
        }
    return response


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """tenants.authentication.ApiKeyAuthentication as the schema shows it: a bearer token, the tenant's API key."""

    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = BEARER

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant's API key: `Authorization: Bearer <api_key>`. The key decides the tenant.",
        }


CURSOR_PAGE = {
    "type": "object",
    "description": (
        "One page of a list, newest first. Ask for the next one with `cursor=<next_cursor>`; "
        "`next_cursor` is null on the last page. Pages stay stable while rows are added."
    ),
    "required": ["next_cursor"],
    "properties": {
        "next_cursor": {
            "type": ["string", "null"],
            "description": "Give it as `cursor` for the next page; null when there is none.",
        }
    },
}
LIMIT_PARAMETER = {
    "name": "limit",
    "in": "query",
    "description": "Page size, 1..500 (default 50).",
    "allowEmptyValue": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
}
CURSOR_PARAMETER = {
    "name": "cursor",
    "in": "query",
    "description": "The `next_cursor` of the previous page, as given (opaque: anything else answers 400).",
    "allowEmptyValue": True,
    "schema": {"type": "string"},
}
_CURSOR_HINT = "next_cursor of the previous page."
# A cursor-paginated list's parameters, for `extend_schema(parameters=[..., *PAGE_PARAMETERS])`;
# `shared_answers_hook` swaps them for the components Limit and Cursor. A list whose page size differs
# (the audit timeline) declares its own `limit`, which keeps its description.
PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description=str(LIMIT_PARAMETER["description"])),
    OpenApiParameter("cursor", str, description=_CURSOR_HINT),
]
_PROBLEM_REF = "#/components/schemas/Problem"
_PATH_PARAM = re.compile(r"{[^}]+}")


def _is_problem(response: dict[str, Any]) -> bool:
    return any(media.get("schema", {}).get("$ref") == _PROBLEM_REF for media in response.get("content", {}).values())


def _cursor_pages(schemas: dict[str, Any]) -> None:
    """Every {results, next_cursor} body becomes CursorPage plus its own `results`."""
    for name, schema in list(schemas.items()):
        properties = schema.get("properties", {})
        if name == "CursorPage" or set(properties) != {"results", "next_cursor"}:
            continue
        results = properties["results"]
        schemas[name] = {
            "title": schema.get("title", name),
            "description": schema.get("description", "One page of a list; see CursorPage."),
            "allOf": [
                {"$ref": "#/components/schemas/CursorPage"},
                {"type": "object", "required": ["results"], "properties": {"results": results}},
            ],
        }


def _paginated_parameters(operation: dict[str, Any]) -> None:
    for position, parameter in enumerate(operation.get("parameters", [])):
        if parameter.get("in") != "query":
            continue
        # Every query parameter given empty (`?limit=`) reads as absent.
        parameter["allowEmptyValue"] = True
        # A list whose page size differs (the audit timeline) keeps its own description.
        if parameter.get("name") == "limit" and parameter.get("description") == LIMIT_PARAMETER["description"]:
            operation["parameters"][position] = {"$ref": "#/components/parameters/Limit"}
        elif parameter.get("name") == "cursor" and parameter.get("description") == _CURSOR_HINT:
            operation["parameters"][position] = {"$ref": "#/components/parameters/Cursor"}


def shared_answers_hook(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the shared components, and the errors every operation can answer."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub_schema in schemas["Problem"].pop("$defs", {}).items():
        schemas.setdefault(name, sub_schema)
    schemas["CursorPage"] = CURSOR_PAGE
    _cursor_pages(schemas)
    parameters = components.setdefault("parameters", {})
    parameters.update({"Limit": LIMIT_PARAMETER, "Cursor": CURSOR_PARAMETER})
    components["responses"] = {
        **components.get("responses", {}),
        **{PROBLEMS[status][0]: _response_component(status) for status in sorted(PROBLEMS)},
    }
    for path, methods in result.get("paths", {}).items():
        for operation in methods.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _paginated_parameters(operation)
            responses = operation["responses"]
            secured = any(BEARER in requirement for requirement in operation.get("security", []))
            wanted = set()
            if secured:
                wanted |= {401, 503}
            if _PATH_PARAM.search(path):
                wanted.add(404)
            query = [p for p in operation.get("parameters", []) if p.get("in") == "query" or "$ref" in p]
            if query:
                wanted.add(400)
            if any(p.get("name") == "source" for p in query):
                wanted.add(404)  # a filter on a source that is not the caller's
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                wanted |= {400, 415}
            for status in wanted:
                responses.setdefault(str(status), {})
            for status, response in responses.items():
                if status.isdigit() and int(status) in PROBLEMS and (not response or _is_problem(response)):
                    responses[status] = problem_ref(int(status))
            operation["responses"] = dict(sorted(responses.items()))
    return result


def example_of(model: type[BaseModel]) -> dict[str, Any]:
    """The first example a documentation model declares (`json_schema_extra={"examples": [...]}`), to extend."""
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict), model
    examples = extra["examples"]
    assert isinstance(examples, list) and isinstance(examples[0], dict), model
    return dict(examples[0])


def examples_config(example: dict[str, Any]) -> ConfigDict:
    """A documentation model's config showing `example` in the schema."""
    return ConfigDict(json_schema_extra={"examples": [example]})
