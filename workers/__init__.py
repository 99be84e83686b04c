"""RQ jobs: importable functions over plain, JSON-serialisable data."""
