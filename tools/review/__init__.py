"""Reviewable synthesized CloudFormation: ``python -m tools.review --cdk-out DIR``.

analysis (pure, template dicts in, review dict out), rules (the data it judges by),
assembly (reads cdk.out, builds a baseline from a git ref), report (Markdown, summary).
"""
