"""The ReconciliationEngine (docs/reconciliation.md).

- `diff`, `policy`: pure decisions (what differs, when to hold, when due);
- `store`: the local side in SQL (digests, seen keys, corrections);
- `upstream`: the snapshot side (pages, prefetch, checks);
- `engine`: one run from claim to record (`reconcile_execute`);
- `runs`: starting runs (API, schedule, approval) and the full_reconcile strategy.
"""
