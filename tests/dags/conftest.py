"""Fixtures of the metadata migration tests live in mig_harness (a uniquely named module, so
``from mig_harness import ...`` cannot collide with another folder's conftest)."""

from mig_harness import aws_env, cli, make_db, moto_server, pg, s3  # noqa: F401
