"""`manage.py replay_failure <file>`: make the monitor's decisions again from a failure recording and compare.

The file is what `GET /api/v1/failures/{id}/recording` downloads. Prints each
switch the replay makes, the monitor's own, and whether they match; exits 0
when they do, 1 when they differ (2 for a file that is not a recording).
`--policy '{"fail_threshold": 5}'` replays with another hysteresis policy
(and evolves its own state: what that policy would have done); `--json`
prints the result as one JSON object instead; `--steps` every judgement too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from engines.hysteresis import HysteresisPolicy
from observability.replay import RecordingError, actual_switches, compare, replay


class Command(BaseCommand):
    help = "Replay a failure recording through the monitor's health and hysteresis rules; compare the switches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a recording, as GET /api/v1/failures/{id}/recording answers ('-': stdin)")
        parser.add_argument("--policy", help="hysteresis config (JSON) to replay with instead of the recorded one")
        parser.add_argument("--tolerance", type=float, default=1.0, help="seconds a switch may be off (default 1)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument("--steps", action="store_true", help="print every judgement: score, verdict, mode after")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            raw = sys.stdin.read() if options["file"] == "-" else Path(options["file"]).read_text()
            recording = json.loads(raw)
            policy = HysteresisPolicy.from_config(json.loads(options["policy"])) if options["policy"] else None
            result = replay(recording, hysteresis=policy, follow_recorded_state=policy is None)
        except (OSError, ValueError, RecordingError, TypeError, KeyError) as exc:
            raise CommandError(f"cannot replay {options['file']}: {exc}", returncode=2) from exc
        judged = [step.t for step in result.steps]
        within = (min(judged), max(judged)) if judged else (0.0, 0.0)
        comparison = compare(
            result.switches, actual_switches(recording), within=within, tolerance_s=options["tolerance"]
        )
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "matched": comparison.matched,
                        "judgements": len(result.steps),
                        "replayed": [s.as_dict() for s in comparison.replayed],
                        "actual": [s.as_dict() for s in comparison.actual],
                        "differences": list(comparison.differences),
                        "outside_changes": list(result.outside_changes),
                    }
                )
            )
        else:
            self._print(recording, result.steps, comparison, result.outside_changes, policy is not None)
            if options["steps"]:
                start = result.steps[0].t if result.steps else 0.0
                self.stdout.write("judgements:")
                for step in result.steps:
                    mark = "  <- switch" if step.switched else ""
                    self.stdout.write(
                        f"  +{step.t - start:8.3f}s  score {step.score:3d} {step.verdict:4s} -> {step.mode}{mark}"
                    )
        if not comparison.matched:
            sys.exit(1)

    def _print(self, recording: dict[str, Any], steps: Any, comparison: Any, outside: Any, what_if: bool) -> None:
        failure, source = recording.get("failure") or {}, recording.get("source") or {}
        self.stdout.write(
            f"failure {failure.get('id')} ({failure.get('kind')}) of source {source.get('id')} "
            f"{source.get('name', '')!r}: {len(steps)} judgements replayed"
            + (" with the given policy" if what_if else "")
        )
        start = steps[0].t if steps else 0.0
        self.stdout.write("replayed switches:")
        for switch in comparison.replayed:
            self.stdout.write(f"  {_line(switch, start)} {switch.reason}")
        self.stdout.write("the monitor's switches:")
        for switch in comparison.actual:
            self.stdout.write(
                f"  +{switch.t - start:8.3f}s  {switch.from_mode} -> {switch.to_mode}  ({switch.transition})"
            )
        if outside:
            self.stdout.write(
                f"state changed outside the monitor before {len(outside)} judgement(s) (taken as recorded)"
            )
        if comparison.matched:
            self.stdout.write(self.style.SUCCESS(f"same switches ({len(comparison.replayed)})"))
        else:
            self.stdout.write(self.style.ERROR("different switches:"))
            for difference in comparison.differences:
                self.stdout.write(f"  {difference}")


def _line(switch: Any, start: float) -> str:
    return f"+{switch.t - start:8.3f}s  {switch.from_mode} -> {switch.to_mode}  ({switch.transition})"
