"""Template helpers of the console: times people can read, nav entries that know where they are."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from console.formatting import relative_time

register = template.Library()


@register.simple_tag
def when(value: datetime | str | None, empty: str = "never") -> str:
    """`<time datetime=ISO title=absolute>relative</time>`; console.js keeps the relative text fresh."""
    parsed = (datetime.fromisoformat(value) if value else None) if isinstance(value, str) else value
    if parsed is None:
        return format_html('<span class="muted">{}</span>', empty)
    absolute = parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html(
        '<time datetime="{}" title="{}" data-relative>{}</time>',
        parsed.isoformat(),
        absolute,
        relative_time(parsed, timezone.now()),
    )


@register.simple_tag(takes_context=True)
def nav_link(context: dict[str, Any], url_name: str, label: str) -> str:
    request = context.get("request")
    try:
        href = reverse(url_name)
    except NoReverseMatch:
        return ""
    match = getattr(request, "resolver_match", None)
    current = bool(match and f"{match.namespace}:{match.url_name}" == url_name)
    attribute = mark_safe(' aria-current="page"') if current else ""  # a constant
    return format_html('<li><a href="{}"{}>{}</a></li>', href, attribute, label)


@register.filter
def mode_label(mode: str) -> str:
    return {"event": "Event (push)", "hybrid": "Hybrid", "polling": "Polling"}.get(mode, mode)


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
