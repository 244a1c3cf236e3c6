"""The ingest path (DESIGN.md): validate a batch, commit it durably, then publish."""
