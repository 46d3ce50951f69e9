"""Reusable constructs: the MWAA environment and the migration guide's policies."""
