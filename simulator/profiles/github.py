"""The `github` profile: one repository's issues, as GitHub's REST API and webhooks show them.

Served (with `Authorization: Bearer <token>` or `token <token>`):

    GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&per_page=N&since=<ISO 8601>&page=P
    GET /repos/{owner}/{repo}/issues/{number}
    GET /rate_limit

The issues list is GitHub's: a JSON list of issue objects, `state`
(open|closed|all, default open), `sort` (created|updated|comments, default
created), `direction` (default desc), `since` (updated at or after),
`labels`, `per_page` (default 30, at most 100) and `page`, with a `Link`
header (`next`, `last`, `first`, `prev`) carrying the other parameters
unchanged. Every answer has a weak `ETag`; `If-None-Match` with it answers
304, which costs no budget, as on GitHub. `X-RateLimit-Limit/-Remaining/
-Reset/-Used/-Resource` count a budget per window (`rate_limit`,
`rate_window_s`); over it, 403 (or `rate_limit_status` 429) with
`X-RateLimit-Remaining: 0`, as GitHub answers. Deleted issues (deletes,
silent or not) are gone from every listing.

The dataset's record "rec-000042" is issue number 43 with id
`ID_BASE + 42`; its order fields become the issue's state, title, body,
labels, assignee and comment count, and its stamps `created_at` and
`updated_at` (RFC 3339, whole seconds, 'Z'). The same record renders to
the same issue object in a listing and in a webhook, so a receiver's record
is the same whichever way it came.

Pushed: one request per change, GitHub's `issues` webhook with `action`
opened, edited, closed, reopened or deleted, headers `X-GitHub-Event`,
`X-GitHub-Delivery` (a UUID; a duplicate repeats it, as a redelivery does),
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>` (and the
legacy `X-Hub-Signature` sha1), plus a `ping` when the pusher starts and
every `ping_every_s`. No seq, no heartbeats: GitHub has neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec

from simulator.dataset import ChangeMeta, Event, Record
from simulator.faults import Breaker, RequestPlan
from simulator.profiles.base import (
    ApiError,
    Item,
    Profile,
    Request,
    Response,
    etag_matches,
    etag_of,
    key_index,
)
from simulator.ratelimit import RateWindow

if TYPE_CHECKING:
    from simulator.state import Simulator

API = "https://api.github.com"  # what the objects' links say; never followed by a receiver
WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"
ID_BASE = 2_100_000_000  # issue ids are large integers on GitHub; any stable one will do
REPO_ID = 186_853_002
HOOK_ID = 109_948_940
MAX_PER_PAGE = 100

_LOGINS = ("octo-dev", "hubot-ops", "mona-lisa", "gh-triage", "codercat")
_TITLES = (
    "Spelling error in the README file",
    "Crash when saving a draft",
    "Checkout fails on an empty cart",
    "Add a dark mode",
    "Improve the error message on 401",
    "Document webhook retries",
    "Search is slow on large repositories",
    "Support ISO 8601 week dates",
)
# The dataset's order status as an issue: its state, state_reason and label.
_STATUS = {
    "new": ("open", None, "triage"),
    "paid": ("open", None, "bug"),
    "shipped": ("closed", "completed", "enhancement"),
    "cancelled": ("closed", "not_planned", "wontfix"),
}
_LABEL_COLORS = {"triage": "fbca04", "bug": "d73a4a", "enhancement": "a2eeef", "wontfix": "ffffff", "urgent": "b60205"}
_ZEN = (
    "Anything added dilutes everything else.",
    "Keep it logically awesome.",
    "Responsive is better than fast.",
    "Half measures are as bad as nothing at all.",
)


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, number: int) -> str:
    # GitHub's legacy global ids: base64 of "<len>:<Type><id>".
    raw = f"{kind}{number}"
    return base64.b64encode(f"0{len(kind)}:{raw}".encode()).decode()


def user_object(login: str) -> dict[str, Any]:
    user_id = 21_000_000 + int(hashlib.sha256(login.encode()).hexdigest()[:6], 16)
    url = f"{API}/users/{login}"
    return {
        "login": login,
        "id": user_id,
        "node_id": _node_id("User", user_id),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": url,
        "html_url": f"{WEB}/{login}",
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": "User",
        "site_admin": False,
    }


def _label(repo_url: str, name: str) -> dict[str, Any]:
    label_id = 1_362_000_000 + int(hashlib.sha256(name.encode()).hexdigest()[:5], 16)
    return {
        "id": label_id,
        "node_id": _node_id("Label", label_id),
        "url": f"{repo_url}/labels/{name}",
        "name": name,
        "color": _LABEL_COLORS[name],
        "default": name in ("bug", "enhancement", "wontfix"),
        "description": None,
    }


class GithubProfile(Profile):
    name = "github"

    def __init__(
        self,
        sim: Simulator,
        *,
        owner: str = "octo-org",
        repo: str = "hello-world",
        rate_limit: int | None = 5000,
        rate_window_s: float = 3600.0,
        rate_limit_status: int = 403,
        ping_every_s: float = 0.0,
    ) -> None:
        super().__init__(sim)
        if not owner or not repo or "/" in owner + repo:
            raise ValueError("owner and repo are one path segment each")
        self.owner = owner
        self.repo = repo
        self.window = RateWindow(limit=rate_limit, window_s=rate_window_s)
        self.rate_limit_status = _status_for_limit(rate_limit_status)
        self.ping_every_s = ping_every_s
        self._prefix = f"/repos/{owner}/{repo}/".lower()
        self.repo_url = f"{API}/repos/{owner}/{repo}"

    # -- settings --------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        state = self.window.state()
        return {
            "name": self.name,
            "owner": self.owner,
            "repo": self.repo,
            "rate_limit": self.window.limit,
            "rate_window_s": self.window.window_s,
            "rate_limit_status": self.rate_limit_status,
            "rate_remaining": state.remaining,
            "rate_reset": state.reset,
            "rate_refused": self.window.refused,
            "ping_every_s": self.ping_every_s,
        }

    def configure(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(patch) - {"rate_limit", "rate_window_s", "rate_limit_status", "ping_every_s"}
        if unknown:
            raise ValueError(f"unknown github setting(s): {sorted(unknown)}")
        limit = patch.get("rate_limit", self.window.limit)
        window_s = patch.get("rate_window_s", self.window.window_s)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise ValueError("rate_limit must be an integer or null")
        if not isinstance(window_s, int | float) or isinstance(window_s, bool):
            raise ValueError("rate_window_s must be a number")
        status = _status_for_limit(patch.get("rate_limit_status", self.rate_limit_status))
        ping = patch.get("ping_every_s", self.ping_every_s)
        if not isinstance(ping, int | float) or isinstance(ping, bool) or ping < 0:
            raise ValueError("ping_every_s must be a number >= 0")
        if "rate_limit" in patch or "rate_window_s" in patch:
            self.window.configure(limit=limit, window_s=float(window_s))
            self.window.reset()  # a new budget starts a new window
        self.rate_limit_status = status
        self.ping_every_s = float(ping)
        return self.settings()

    def reset(self) -> None:
        self.window.reset()

    def upstream_key(self, key: str) -> str:
        return str(ID_BASE + key_index(key))

    # -- HTTP ------------------------------------------------------------------

    def route(self, method: str, path: str) -> str | None:
        endpoint: str | None = None
        lowered = path.lower()
        if lowered == "/rate_limit":
            endpoint = "rate_limit"
        elif lowered.startswith(self._prefix):
            rest = lowered.removeprefix(self._prefix).rstrip("/")
            if rest == "issues":
                endpoint = "issues"
            elif rest.startswith("issues/") and rest.removeprefix("issues/").isdigit():
                endpoint = "issue"
        if endpoint is not None and method != "GET":
            raise ApiError(404, "Not Found")  # GitHub answers 404 to what it does not route
        return endpoint

    def authorized(self, request: Request) -> bool:
        token = self.sim.token
        if token is None:
            return True
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        return scheme.lower() in ("bearer", "token") and hmac.compare_digest(value.encode(), token.encode())

    def error(self, status: int, detail: str, field: str | None = None) -> Response:
        message = {401: "Bad credentials", 404: "Not Found"}.get(status, detail)
        body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
        if field is not None:
            body["errors"] = [{"resource": "Issue", "field": field, "code": "invalid"}]
        return Response(status, msgspec.json.encode(body), content_type="application/json; charset=utf-8")

    def failure(self, plan: RequestPlan) -> Response:
        response = super().failure(plan)
        if plan.outcome == "rate_limited":  # a secondary rate limit, with Retry-After
            response = self.error(plan.status, "You have exceeded a secondary rate limit.")
            if plan.retry_after_s is not None:
                response.headers.append(("retry-after", str(plan.retry_after_s)))
        return response

    def serve(self, endpoint: str, request: Request) -> Response:
        if endpoint == "rate_limit":  # free, as on GitHub
            state = self.window.state()
            limit = 5000 if state.limit is None else state.limit
            remaining = limit if state.remaining is None else state.remaining
            core: dict[str, int | str] = {"limit": limit, "remaining": remaining, "reset": state.reset}
            core |= {"used": state.used, "resource": "core"}
            return Response(200, msgspec.json.encode({"resources": {"core": core}, "rate": core}))
        if not self.window.take():
            state = self.window.state()
            response = self.error(
                self.rate_limit_status, "API rate limit exceeded for user ID 1. (simulated: rate_limit per window)"
            )
            response.headers += state.headers()
            response.outcome = "over_limit"
            return response
        if endpoint == "issue":
            body = self._one(request)
        else:
            body, links = self._list(request)
        response = self._conditional(request, body)
        if endpoint == "issues" and links:
            response.headers.append(("link", links))
        if response.status == 304:
            self.window.give_back()
        response.headers += self.window.state().headers()
        return response

    def _conditional(self, request: Request, body: bytes) -> Response:
        etag = etag_of(body)
        headers = [("etag", etag), ("cache-control", "private, max-age=60, s-maxage=60"), ("vary", "Authorization")]
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(304, b"", headers, outcome="not_modified")
        return Response(200, body, headers, content_type="application/json; charset=utf-8")

    def _one(self, request: Request) -> bytes:
        number = int(request.path.rstrip("/").rsplit("/", 1)[1])
        for record in self.sim.dataset.records():
            if key_index(record.key) + 1 == number:
                return msgspec.json.encode(self.issue(record.key, record.data, record.created_s, record.updated_s))
        raise ApiError(404, "Not Found")

    def _list(self, request: Request) -> tuple[bytes, str]:
        state = request.param("state") or "open"
        sort = request.param("sort") or "created"
        direction = request.param("direction") or "desc"
        if state not in ("open", "closed", "all"):
            raise ApiError(422, "Validation Failed", "state")
        if sort not in ("created", "updated", "comments"):
            raise ApiError(422, "Validation Failed", "sort")
        if direction not in ("asc", "desc"):
            raise ApiError(422, "Validation Failed", "direction")
        since = _since(request.param("since"))
        per_page = min(_positive(request, "per_page", 30), MAX_PER_PAGE)
        page = _positive(request, "page", 1)
        wanted_labels = {name.strip() for name in (request.param("labels") or "").split(",") if name.strip()}

        issues = []
        for record in self.sim.dataset.records():
            if since is not None and record.updated_s < since:
                continue
            issue = self.issue(record.key, record.data, record.created_s, record.updated_s)
            if state != "all" and issue["state"] != state:
                continue
            if wanted_labels and not wanted_labels <= {label["name"] for label in issue["labels"]}:
                continue
            issues.append((record, issue))
        field = {"created": "created_at", "updated": "updated_at", "comments": "comments"}[sort]
        issues.sort(key=lambda pair: (pair[1][field], pair[1]["number"]), reverse=direction == "desc")

        last = max(1, math.ceil(len(issues) / per_page))
        chosen = [issue for _, issue in issues[(page - 1) * per_page : page * per_page]]
        chosen = self.sim.faults.maybe_break(chosen, ISSUE_BREAKS)
        return msgspec.json.encode(chosen), _links(request, page, last)

    # -- rendering -------------------------------------------------------------

    def issue(self, key: str, data: Mapping[str, Any], created_s: int, updated_s: int) -> dict[str, Any]:
        """The issue object GitHub would return for this record (identical in lists and webhooks)."""
        index = key_index(key)
        number = index + 1
        issue_id = ID_BASE + index
        status = str(data.get("status", "new"))
        state, reason, label = _STATUS.get(status, ("open", None, "triage"))
        qty = int(data.get("qty", 1))
        price = int(data.get("price_cents", 0))
        note = str(data.get("note", ""))
        labels = [_label(self.repo_url, label)] + ([_label(self.repo_url, "urgent")] if qty > 15 else [])
        author = _LOGINS[index % len(_LOGINS)]
        assignee = user_object(_LOGINS[(index + qty) % len(_LOGINS)]) if qty % 3 else None
        url = f"{self.repo_url}/issues/{number}"
        return {
            "url": url,
            "repository_url": self.repo_url,
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{WEB}/{self.owner}/{self.repo}/issues/{number}",
            "id": issue_id,
            "node_id": _node_id("Issue", issue_id),
            "number": number,
            "title": _TITLES[price % len(_TITLES)],
            "user": user_object(author),
            "labels": labels,
            "state": state,
            "locked": False,
            "assignee": assignee,
            "assignees": [assignee] if assignee else [],
            "milestone": None,
            "comments": qty - 1,
            "created_at": rfc3339(created_s),
            "updated_at": rfc3339(updated_s),
            "closed_at": rfc3339(updated_s) if state == "closed" else None,
            "author_association": "OWNER" if author == self.owner else "CONTRIBUTOR",
            "active_lock_reason": None,
            "body": note or None,
            "reactions": {
                "url": f"{url}/reactions",
                "total_count": 0,
                "+1": 0,
                "-1": 0,
                "laugh": 0,
                "hooray": 0,
                "confused": 0,
                "heart": 0,
                "rocket": 0,
                "eyes": 0,
            },
            "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None,
            "state_reason": reason,
        }

    def repository(self) -> dict[str, Any]:
        full = f"{self.owner}/{self.repo}"
        url = self.repo_url
        return {
            "id": REPO_ID,
            "node_id": _node_id("Repository", REPO_ID),
            "name": self.repo,
            "full_name": full,
            "private": False,
            "owner": user_object(self.owner),
            "html_url": f"{WEB}/{full}",
            "description": None,
            "fork": False,
            "url": url,
            "issues_url": f"{url}/issues{{/number}}",
            "hooks_url": f"{url}/hooks",
            "created_at": "2019-05-15T15:19:25Z",
            "updated_at": "2019-05-15T15:21:03Z",
            "pushed_at": "2019-05-15T15:20:57Z",
            "default_branch": "main",
            "has_issues": True,
            "open_issues_count": 0,
            "visibility": "public",
        }

    def wire(self, secret: str | None, *, heartbeat_s: float) -> GithubWire:
        return GithubWire(self, secret)


class GithubWire:
    """`issues` webhooks, one request each, and pings."""

    batched = False

    def __init__(self, profile: GithubProfile, secret: str | None) -> None:
        self.profile = profile
        self.secret = secret
        self.breaks: Sequence[Breaker] = ISSUE_WEBHOOK_BREAKS
        self._last_ping = float("-inf")
        self._pings = 0
        self._repository = profile.repository()

    def render(self, event: Event, meta: ChangeMeta) -> Item:
        profile = self.profile
        prior: Record | None = meta.prior
        if event["type"] == "delete":
            # A deleted issue as it last was, stamped with the deletion: a
            # receiver that versions by updated_at sees the delete as newest.
            data: Mapping[str, Any] = prior.data if prior is not None else {}
            issue = profile.issue(event["key"], data, meta.created_s, meta.updated_s)
            action = "deleted"
            payload: dict[str, Any] = {"action": action, "issue": issue}
        else:
            issue = profile.issue(event["key"], event["data"], meta.created_s, meta.updated_s)
            payload = {"action": "opened", "issue": issue}
            if prior is not None:
                before = profile.issue(prior.key, prior.data, prior.created_s, prior.updated_s)
                if before["state"] != issue["state"]:
                    payload["action"] = "closed" if issue["state"] == "closed" else "reopened"
                else:
                    payload["action"] = "edited"
                    payload["changes"] = {
                        name: {"from": before[name]} for name in ("title", "body") if before[name] != issue[name]
                    }
        payload["repository"] = self._repository
        payload["sender"] = issue["user"] if payload["action"] == "opened" else user_object(profile.owner)
        # A UUID per change; a duplicate (a redelivery) carries the same one.
        delivery = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{profile.sim.run_id}/{event['id']}"))
        return {"event": "issues", "delivery": delivery, "payload": payload}

    def keepalive(self, now: float) -> Item | None:
        # GitHub pings once when a hook is created; the simulator also every ping_every_s.
        every = self.profile.ping_every_s
        if self._pings and (every <= 0 or now - self._last_ping < every):
            return None
        self._last_ping = now
        self._pings += 1
        hook = {
            "type": "Repository",
            "id": HOOK_ID,
            "name": "web",
            "active": True,
            "events": ["issues"],
            "config": {"content_type": "json", "insecure_ssl": "0", "url": "(the ingest URL)"},
            "updated_at": "2019-05-15T15:20:49Z",
            "created_at": "2019-05-15T15:20:49Z",
        }
        payload = {
            "zen": _ZEN[self._pings % len(_ZEN)],
            "hook_id": HOOK_ID,
            "hook": hook,
            "repository": self._repository,
            "sender": user_object(self.profile.owner),
        }
        delivery = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.profile.sim.run_id}/ping/{self._pings}"))
        return {"event": "ping", "delivery": delivery, "payload": payload}

    def encode(self, items: list[Item]) -> tuple[dict[str, str], bytes]:
        (item,) = items
        body = msgspec.json.encode(item["payload"])
        headers = {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/7f8e4a1",
            "x-github-event": item["event"],
            "x-github-delivery": item["delivery"],
            "x-github-hook-id": str(HOOK_ID),
            "x-github-hook-installation-target-type": "repository",
            "x-github-hook-installation-target-id": str(REPO_ID),
        }
        if self.secret:
            key = self.secret.encode()
            headers["x-hub-signature"] = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
            headers["x-hub-signature-256"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        return headers, body

    def is_record(self, item: Item) -> bool:
        return bool(item.get("event") == "issues")


# -- schema breaks: each makes the issue unreadable by a mapping of §8.4 ----------------


def _issue_without_id(issue: Event) -> Event:
    return {k: v for k, v in issue.items() if k != "id"}


def _issue_bad_time(issue: Event) -> Event:
    return {**issue, "updated_at": "yesterday"}


def _issue_null_time(issue: Event) -> Event:
    return {**issue, "updated_at": None}


ISSUE_BREAKS: tuple[Breaker, ...] = (_issue_without_id, _issue_bad_time, _issue_null_time)


def _in_payload(breaker: Breaker) -> Breaker:
    def broken(item: Event) -> Event:
        payload = item["payload"]
        if "issue" not in payload:
            return item
        return {**item, "payload": {**payload, "issue": breaker(payload["issue"])}}

    return broken


ISSUE_WEBHOOK_BREAKS: tuple[Breaker, ...] = tuple(_in_payload(b) for b in ISSUE_BREAKS)


# -- helpers ---------------------------------------------------------------------


def _status_for_limit(value: object) -> int:
    if value not in (403, 429):
        raise ValueError("rate_limit_status must be 403 or 429")
    return int(value)


def _positive(request: Request, name: str, default: int) -> int:
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return default  # GitHub ignores a page or per_page it cannot read
    return max(value, 1)


def _since(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ApiError(422, "Validation Failed", "since") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _links(request: Request, page: int, last: int) -> str:
    def url(number: int) -> str:
        query = [(k, v) for k, v in request.query if k != "page"] + [("page", str(number))]
        return f"{request.base_url}{request.path}?{urlencode(query)}"

    links = []
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(1)}>; rel="first"', f'<{url(min(page - 1, last))}>; rel="prev"']
    return ", ".join(links)
