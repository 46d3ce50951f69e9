"""The shipped stages' CDK apps (tests/cdk_stages.py), as session fixtures for the tests here."""

from tests.cdk_stages import dev, example, inplace, migrating, prod, stage  # noqa: F401
