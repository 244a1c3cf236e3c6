"""The admin's Source form: the definition as JSON fields, validated like the API validates it.

Staff edit what a preset fills (connector, config, push scheme and mapping,
poll, ...) as JSON. The form never stores what the API would refuse: its
clean() runs the API's own parse (preset expansion included) and puts each
error on the field it names. The push secret is write-only: a field to set
a new one, never filled in from the stored one.
"""

from __future__ import annotations

from typing import Any

from django import forms

from engines.connectors.presets import registry
from engines.models import Source
from engines.schemas import Connector, PushScheme
from engines.sources import EDITABLE, SourceError, parse_spec

# JSON-valued definition fields, edited as JSON text.
JSON_FIELDS = ("config", "push", "poll", "hysteresis", "reconcile", "health", "data_schema")


def _preset_choices(current: str) -> list[tuple[str, str]]:
    choices = [("", "(none)")] + [(name, f"{name}: {preset.title}") for name, preset in registry().items()]
    if current and current not in registry():  # a preset file removed since: keep the source's own value visible
        choices.append((current, f"{current} (no longer installed)"))
    return choices


class SourceAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    preset = forms.ChoiceField(
        required=False,
        help_text="Its fields go under what you give here (see docs/presets.md); any of them can be overridden.",
    )
    connector = forms.ChoiceField(choices=[(c.value, c.value) for c in Connector])
    config = forms.JSONField(help_text="The connector's config (with a preset: at least what its config_schema asks).")
    push = forms.JSONField(
        required=False,
        help_text='{"expected", "scheme", "tolerance_s", "mapping": {"filter", "id", "key", "version", "op", "data", '
        '...}}; "expected": false for an upstream without webhooks (polled only); the secret goes in the field below.',
    )
    push_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="New push secret",
        help_text="Write-only: leave empty to keep the secret set now. Never shown.",
    )
    poll = forms.JSONField(required=False)
    hysteresis = forms.JSONField(required=False)
    reconcile = forms.JSONField(required=False)
    health = forms.JSONField(required=False)
    data_schema = forms.JSONField(required=False)

    class Meta:
        model = Source
        fields = ("name", "paused")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        source: Source | None = self.instance if self.instance.pk else None
        preset_field = self.fields["preset"]
        assert isinstance(preset_field, forms.ChoiceField)
        preset_field.choices = _preset_choices(source.preset if source else "")
        if source is not None:
            for name in ("preset", "connector", *JSON_FIELDS):
                self.initial.setdefault(name, getattr(source, name))

    def definition(self) -> dict[str, Any]:
        """The source body the form stands for (what the API would be sent)."""
        data = self.cleaned_data
        body: dict[str, Any] = {"name": data.get("name"), "connector": data.get("connector")}
        body["preset"] = data.get("preset") or None
        for name in JSON_FIELDS:
            value = data.get(name)
            if value is not None and value != "":
                body[name] = value
        body.setdefault("config", {})
        if data.get("push_secret"):
            push = body.get("push")
            body["push"] = {**(push if isinstance(push, dict) else {}), "secret": data["push_secret"]}
        return {name: value for name, value in body.items() if name in EDITABLE}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            spec = parse_spec(self.definition())
        except SourceError as exc:
            self._add_spec_errors(exc)
            return cleaned
        # The service checks these too; said here, they are form errors rather than a failed save.
        if Source.objects.filter(name=spec.name).exclude(pk=self.instance.pk).exists():
            self.add_error("name", f"A source named {spec.name!r} exists.")
        native = spec.push.scheme is not PushScheme.BEASTFLOW
        if native and spec.push.secret is None and not self.instance.push_secret_encrypted:
            self.add_error("push_secret", f"Push scheme {spec.push.scheme.value} needs the upstream's webhook secret.")
        return cleaned

    def _add_spec_errors(self, exc: SourceError) -> None:
        if not exc.errors:
            self.add_error(None, exc.detail)
        for error in exc.errors:
            path = str(error.get("field", ""))
            head = path.split(".", 1)[0]
            target = "push_secret" if path == "push.secret" else head
            message = f"{path}: {error.get('message', '')}" if path != target else str(error.get("message", ""))
            self.add_error(target if target in self.fields else None, message)
