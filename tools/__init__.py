"""Command-line tools of the project (run with ``python -m tools.<name>`` from the repo root)."""
