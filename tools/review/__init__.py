"""Reviewable synthesized CloudFormation: ``python -m tools.review --cdk-out DIR``.

analysis (pure, template dicts in, review dict out), rules (the data it judges by),
assembly (reads cdk.out, builds a baseline from a git ref), report (Markdown, summary).
"""

from __future__ import annotations

import sys
from pathlib import Path

# mwaa_common (lambda/) holds facts the review shares with the stacks and Lambdas (contracts §1).
_LAMBDA = str(Path(__file__).resolve().parents[2] / "lambda")
if _LAMBDA not in sys.path:
    sys.path.append(_LAMBDA)
