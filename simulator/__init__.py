"""A simulated upstream for BeastFlow: serves docs/contract.md §6 and pushes docs/contract.md §4.

Standalone (no Django import) so it runs in tests, in `manage.py simulate`
and on its own. See `runner.run` and `runner.start_in_thread`.
"""
