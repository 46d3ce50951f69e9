"""Loaded by pytest before any test module, so before aws_cdk starts its jsii runtime."""

import os

# This machine has Node 20, past its end of life for jsii: without these every process that
# imports aws_cdk prints a banner (the Makefile and app.py set the same for their runs).
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
