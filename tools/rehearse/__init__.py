"""Local rehearsal of an MWAA metadata migration (see docs/rehearsal.md)."""
