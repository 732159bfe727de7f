"""localsqs: an embedded, durable, SQS-compatible queue engine (SQS JSON protocol, SQLite)."""
