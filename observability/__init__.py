"""Observability above the engines, healing and callbacks: scrape-time gauges, diagnostics (docs/observability.md)."""
