"""RCA and self-healing over the simulator's failure scenarios: two measured figures.

`make bench` (or `.venv/bin/python bench/healing.py`). Plays each scenario
(outage, flapping, drops, 429 storm, 401, schema break, silent drift)
against a fresh real source with a real web server, Celery worker, beat and
the simulator (tests/healing/test_scenarios_e2e.py with
HEALING_SCENARIOS=all, on a test database of its own), then prints per
scenario the known cause against the RCA category and whether it was
resolved without a person, and:

- the share of incidents resolved without a person (seed target: 80% of
  the common issues; 401 and a schema break must ask an operator, by design);
- the RCA accuracy against each scenario's known cause.

Writes .beastflow/bench/healing.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".beastflow" / "bench" / "healing.json"


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    raw = OUT.with_suffix(".raw.json")
    raw.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        HEALING_SCENARIOS="all",
        HEALING_BENCH_OUT=str(raw),
        BEASTFLOW_TEST_DB=env.get("BEASTFLOW_TEST_DB", "test_beastflow_bench_healing"),
        BEASTFLOW_LOG_LEVEL="WARNING",
    )
    # Failing assertions still leave their outcomes in the file: the figures are measured either way.
    subprocess.run(
        [sys.executable, "-m", "pytest", "tests/healing/test_scenarios_e2e.py", "-q", "-p", "no:logging"],
        cwd=ROOT,
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    if not raw.exists():
        print("healing bench: no scenario finished", file=sys.stderr)
        return 1
    outcomes = json.loads(raw.read_text())
    print(f"{'scenario':<14} {'known cause':<22} {'RCA category':<22} {'conf':>5}  {'ok':<3} {'no person':<9} {'s':>5}")
    for o in outcomes:
        print(
            f"{o['scenario']:<14} {o['cause']:<22} {o['category'] or '-':<22} {o['confidence'] or 0:>5.2f}  "
            f"{'yes' if o['correct'] else 'NO':<3} {'yes' if o['without_person'] else 'no':<9} {o['seconds']:>5.0f}"
        )
    n = len(outcomes)
    common = [o for o in outcomes if o["scenario"] not in ("401", "schema break")]
    healed = sum(o["without_person"] for o in outcomes)
    healed_common = sum(o["without_person"] for o in common)
    correct = sum(o["correct"] for o in outcomes)
    figures = {
        "scenarios": n,
        "resolved_without_person": healed,
        "share_resolved_without_person": round(healed / n, 3) if n else None,
        "share_common_resolved_without_person": round(healed_common / len(common), 3) if common else None,
        "rca_correct": correct,
        "rca_accuracy": round(correct / n, 3) if n else None,
        "outcomes": outcomes,
    }
    OUT.write_text(json.dumps(figures, indent=2, default=str))
    print(
        f"\nresolved without a person: {healed}/{n} = {figures['share_resolved_without_person']:.0%} of all; "
        f"{healed_common}/{len(common)} = {figures['share_common_resolved_without_person']:.0%} of the common ones "
        f"(401 and schema break ask an operator by design)"
    )
    print(f"RCA accuracy against the known cause: {correct}/{n} = {figures['rca_accuracy']:.0%}")
    print(f"written: {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
