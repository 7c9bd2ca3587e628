"""Low-level helpers every part may use: CPU and I/O priority (``cpus``), connections to Redis and
PostgreSQL (``connect``), JSON over HTTP (``web``). This package imports no part of the system and
reads no environment; an import-linter contract in pyproject.toml holds it to that."""
