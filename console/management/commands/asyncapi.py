"""`manage.py asyncapi --file docs/asyncapi.yaml`: the websockets' AsyncAPI document (console/asyncapi.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandParser

from console.asyncapi import asyncapi_document


def asyncapi_yaml() -> str:
    return yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=100)


class Command(BaseCommand):
    help = "Write the websockets' AsyncAPI document as YAML (stdout, or --file)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", help="Write here instead of stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        text = asyncapi_yaml()
        if options["file"]:
            Path(options["file"]).write_text(text)
        else:
            self.stdout.write(text, ending="")
