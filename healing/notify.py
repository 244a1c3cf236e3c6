"""Telling people: an approval request and its escalations, by email and signed webhook.

Level i's recipients: `BEASTFLOW_ESCALATION_EMAILS[i]` (Django's email
backend) and `BEASTFLOW_ESCALATION_WEBHOOKS[i]` (a POST signed like the
outbound callbacks, `X-BeastFlow-Signature: t=..,v1=..`, with
`BEASTFLOW_ESCALATION_WEBHOOK_SECRET`). A level without recipients falls back
to the highest level below it that has some. Notification failures are
logged, never raised: the request stays visible in the console and the API.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import structlog
from django.conf import settings
from django.core.mail import send_mail

from beastflow.netguard import guarded_client
from beastflow.tenancy import current_schema
from callbacks.signing import signature_header
from healing.models import HealingAction

log = structlog.get_logger(__name__)


def _for_level(levels: list[list[str]], level: int) -> list[str]:
    for candidate in range(min(level, len(levels) - 1), -1, -1):
        if levels[candidate]:
            return levels[candidate]
    return []


def escalation_message(action: HealingAction, level: int) -> dict[str, Any]:
    return {
        "type": "healing.approval_requested" if level == 0 else "healing.approval_escalated",
        "tenant": current_schema(),
        "action": action.pk,
        "source": action.source_id,
        "strategy": action.strategy,
        "risk": action.risk,
        "level": level,
        "requested_at": action.requested_at.isoformat(),
        "why": (action.detail or {}).get("why", ""),
    }


def escalation_notify(*, action_id: int, level: int) -> dict[str, int]:
    """Send level `level`'s notices for an action; returns how many of each went out."""
    action = HealingAction.objects.filter(pk=action_id).first()
    if action is None:
        return {"emails": 0, "webhooks": 0}
    message = escalation_message(action, level)
    sent = {"emails": 0, "webhooks": 0}
    emails = _for_level(settings.BEASTFLOW_ESCALATION_EMAILS, level)
    if emails:
        subject = f"[BeastFlow] {'approval needed' if level == 0 else f'escalation level {level}'}: {action.strategy}"
        body = "\n".join(f"{k}: {v}" for k, v in message.items())
        try:
            sent["emails"] = send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, emails, fail_silently=False)
        except Exception as exc:  # a mail server down must not stop the tick
            log.warning("escalation_email_failed", action=action_id, level=level, error=str(exc))
    body_bytes = json.dumps(message, separators=(",", ":")).encode()
    for url in _for_level(settings.BEASTFLOW_ESCALATION_WEBHOOKS, level):
        headers = {"Content-Type": "application/json"}
        if settings.BEASTFLOW_ESCALATION_WEBHOOK_SECRET:
            headers["X-BeastFlow-Signature"] = signature_header(
                settings.BEASTFLOW_ESCALATION_WEBHOOK_SECRET, body_bytes, timestamp=int(time.time())
            )
        try:
            # Guarded like every outbound URL (beastflow/netguard.py): an internal
            # receiver is allowed with BEASTFLOW_UPSTREAM_ALLOW.
            with guarded_client() as client:
                response = client.post(url, content=body_bytes, headers=headers, timeout=5.0)
            sent["webhooks"] += int(response.is_success)
        except httpx.HTTPError as exc:
            log.warning("escalation_webhook_failed", action=action_id, level=level, url=url, error=str(exc))
    log.info("escalation_notified", action=action_id, level=level, **sent)
    return sent
