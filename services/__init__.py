"""fraudradar services: ingest, scorer, api and simulator, with shared plumbing in ``common``."""
