"""The ingest path (docs/ingest.md): validate a batch, commit it durably, then publish."""
