"""The ingest bench's verdicts and its printed table (bench/ingest.py measures, this says)."""

from __future__ import annotations

from typing import Any

TARGET_BATCH_PER_TENANT = 10_000
TARGET_SINGLE_RATIO = 3.0
TARGET_WS_P99_MS = 10.0


def say(message: str) -> None:
    print(message, flush=True)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def build_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    batch2 = report["batch_2_tenants"]["min_per_tenant_events_per_s"]
    single_ratio = report["ratios"]["single_vs_naive"]
    paced_figures = report["paced_1000_events_per_s"]
    ws_p99 = [paced_figures[shape]["websocket"].get("p99_ms") for shape in ("batches_of_10", "single_events")]
    ws_known = [value for value in ws_p99 if value is not None]
    return [
        {
            "target": "batch ingest >= 10,000 events/s per tenant, 2 tenants at once",
            "measured": batch2,
            "pass": batch2 >= TARGET_BATCH_PER_TENANT,
        },
        {
            "target": "single-event webhooks >= 3x the naive baseline",
            "measured": single_ratio,
            "pass": None if single_ratio is None else single_ratio >= TARGET_SINGLE_RATIO,
        },
        {
            "target": "commit-to-websocket p99 <= 10 ms at 1,000 events/s",
            "measured": max(ws_known) if len(ws_known) == len(ws_p99) else None,
            "detail": " / ".join(
                f"{shape}: {fmt(value, ' ms')}" for shape, value in zip(("100 x 10", "1,000 x 1"), ws_p99, strict=True)
            ),
            "pass": all(value <= TARGET_WS_P99_MS for value in ws_known) if len(ws_known) == len(ws_p99) else None,
        },
    ]


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float | int):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
        return f"{text}{unit}"
    return str(value)


def split(figure: dict[str, Any]) -> str:
    """events/s, with the CPU of each worker: a worker left idle shows here."""
    workers = figure.get("cpu_cores", {}).get("server_processes", [])
    if len(workers) < 2:
        return "events/s (one worker got every connection: a 1-worker figure)"
    return "events/s (workers' CPU: " + " + ".join(f"{value * 100:.0f}%" for value in workers) + ")"


def percent(value: float | None) -> float | None:
    return None if value is None else value * 100


def print_table(report: dict[str, Any]) -> None:
    ceiling = report["client_ceiling"]
    b1, b2 = report["batch_1_tenant"], report["batch_2_tenants"]
    single, naive, copy = report["single_event"], report["naive_baseline"], report["raw_copy"]
    ratios = report["ratios"]
    paced_figures = report["paced_1000_events_per_s"]
    rows: list[tuple[str, str, str]] = [
        (
            "load generator ceiling, raw client (trivial ASGI app)",
            fmt(ceiling["raw_client"]["requests_per_s"]),
            "req/s",
        ),
        ("load generator ceiling, httpx (trivial ASGI app)", fmt(ceiling["httpx"]["requests_per_s"]), "req/s"),
        ("(1) batch ingest, 1 tenant", fmt(b1["min_per_tenant_events_per_s"]), "events/s"),
    ]
    for slug, figure in b2["per_tenant"].items():
        rows.append((f"(2) batch ingest, 2 tenants at once: {slug}", fmt(figure["events_per_s"]), "events/s"))
    rows += [
        ("(2) batch ingest, 2 tenants at once: total", fmt(b2["total_events_per_s"]), "events/s"),
        ("(3) single-event webhooks (HMAC), 32 concurrent", fmt(single["events_per_s"]), "events/s"),
        *native_rows(report),
        ("(4) naive DRF + ORM save, 32 concurrent", fmt(naive["events_per_s"]), "events/s"),
        ("    ratio (3)/(4)", fmt(ratios["single_vs_naive"], "x"), "target >= 3x"),
        (
            "    for scale: Django floor, GET /healthz on the naive server",
            fmt(naive["django_floor_healthz"]["requests_per_s"]),
            "req/s",
        ),
        ("(5) raw COPY into a copy of engines_event", fmt(copy["logged_table"]["rows_per_s"]), "rows/s"),
        ("    (temp table, no WAL, for context)", fmt(copy["temp_table"]["rows_per_s"]), "rows/s"),
        ("    ratio (1)/(5)", fmt(percent(ratios["batch_1_tenant_vs_copy"]), "%"), "of raw COPY"),
        ("    ratio (2) total/(5)", fmt(percent(ratios["batch_2_tenants_vs_copy"]), "%"), "of raw COPY"),
    ]
    for shape, label in (("batches_of_10", "100 req/s x 10 events"), ("single_events", "1,000 req/s x 1 event")):
        figure = paced_figures[shape]
        ws = figure["websocket"]
        rows += [
            (
                f"(6) ingest latency p50 / p99 ({label})",
                f"{fmt(figure['latency_p50_ms'])} / {fmt(figure['latency_p99_ms'])}",
                "ms",
            ),
            (
                f"(6) commit-to-websocket p50 / p99 ({label})",
                f"{fmt(ws.get('p50_ms'))} / {fmt(ws.get('p99_ms'))}" if ws.get("p99_ms") is not None else ws["status"],
                "ms" if ws.get("p99_ms") is not None else "",
            ),
        ]
        if ws.get("after_http_answer_p99_ms") is not None:
            rows.append(
                (
                    "    of which after the HTTP 202 arrived, p50 / p99",
                    f"{fmt(ws['after_http_answer_p50_ms'])} / {fmt(ws['after_http_answer_p99_ms'])}",
                    "ms (the publish path alone)",
                )
            )
        if figure.get("client_loop_lag_p99_ms") is not None:
            rows.append(
                (
                    "    the load generator's own loop lag, p50 / p99",
                    f"{fmt(figure['client_loop_lag_p50_ms'])} / {fmt(figure['client_loop_lag_p99_ms'])}",
                    "ms (included in both figures above)",
                )
            )
    two = report.get("two_workers")
    if two:
        batch_min = two["batch_2_tenants"]["min_per_tenant_events_per_s"]
        rows += [
            ("2 workers: batch, 2 tenants at once, min per tenant", fmt(batch_min), split(two["batch_2_tenants"])),
            ("2 workers: single-event webhooks", fmt(two["single_event"]["events_per_s"]), split(two["single_event"])),
            ("2 workers: naive baseline", fmt(two["naive_baseline"]["events_per_s"]), split(two["naive_baseline"])),
            ("2 workers: ratio single/naive", fmt(two["single_vs_naive"], "x"), ""),
        ]
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    say("")
    say(f"BeastFlow ingest bench ({report['machine']['cpus']} CPUs, {report['machine']['python']}, 1 uvicorn worker)")
    say("-" * (width + value_width + 16))
    for name, value, unit in rows:
        say(f"{name:<{width}}  {value:>{value_width}}  {unit}")
    say("-" * (width + value_width + 16))
    for target in report["targets"]:
        measured = target.get("detail") or fmt(target["measured"])
        say(f"{verdict(target['pass']):<4}  {target['target']}  (measured {measured})")
    say("")
    say(
        f"other processes on the machine used {report['noise_other_cpu'] * 100:.0f}% of a core on average "
        "during the measured phases (shared machine: figures move with it)"
    )
    checks = report["integrity"]
    say(f"stored == acknowledged in every phase: {'yes' if checks['ok'] else 'NO: ' + ', '.join(checks['failed'])}")
    order = paced_figures.get("websocket_order")
    if order is not None:
        say(f"websocket order (docs/contract.md §5): {order}")


def native_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Phase 3b: native GitHub webhooks beside BeastFlow single events, measured alternately."""
    native = report.get("native_push")
    if not native:
        return []
    sizes = native["body_bytes"]
    return [
        (
            f"(3b) BeastFlow single events, alternated with (3c) ({sizes['beastflow_single']} B)",
            fmt(native["beastflow_single"]["events_per_s"]),
            "events/s",
        ),
        (
            f"(3b') BeastFlow single events carrying the issue as data ({sizes['beastflow_single_issue']} B)",
            fmt(native["beastflow_single_issue"]["events_per_s"]),
            "events/s",
        ),
        (
            f"(3c) native GitHub issues webhooks, mapped ({sizes['github_native_single']} B)",
            fmt(native["github_native_single"]["events_per_s"]),
            "events/s",
        ),
        ("    ratio (3c)/(3b)", fmt(native["ratio_native_vs_beastflow"], "x"), native["payload"]),
        ("    ratio (3c)/(3b'): the same records, mapped", fmt(native["ratio_native_vs_beastflow_issue"], "x"), ""),
    ]


def print_native(report: dict[str, Any]) -> None:
    """The table of a `--native-only` run."""
    rows = native_rows(report)
    width = max(len(name) for name, _, _ in rows)
    say("")
    for name, value, unit in rows:
        say(f"{name:<{width}}  {value:>10}  {unit}")
    for label in ("beastflow_single", "beastflow_single_issue", "github_native_single"):
        figure = report["native_push"][label]
        say(f"{label}: p50 {fmt(figure['latency_p50_ms'])} ms, p99 {fmt(figure['latency_p99_ms'])} ms, "
            f"runs {figure['runs_events_per_s']} ev/s, stored {figure['stored']}")  # fmt: skip
    say(f"other processes used {report['noise_other_cpu'] * 100:.0f}% of a core on average (shared machine)")
    checks = report["integrity"]
    say(f"stored == acknowledged: {'yes' if checks['ok'] else 'NO: ' + ', '.join(checks['failed'])}")


def integrity(report: dict[str, Any]) -> dict[str, Any]:
    failed = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "stored" in node and isinstance(node["stored"], dict) and not node["stored"].get("ok", True):
                failed.append(where)
            if node.get("errors") or any(not 200 <= int(code) < 300 for code in node.get("statuses", {})):
                failed.append(f"{where} (non-2xx answers)")
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else key)

    walk({k: v for k, v in report.items() if k != "client_ceiling"}, "")
    return {"ok": not failed, "failed": failed}


def other_cpu(report: dict[str, Any]) -> float:
    """Mean share of a core used by processes outside the bench, over the phases measured."""
    found: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            cores = node.get("cpu_cores")
            if isinstance(cores, dict) and "other" in cores:
                found.append(float(cores["other"]))
            for value in node.values():
                walk(value)

    walk(report)
    return round(sum(found) / len(found), 2) if found else 0.0
