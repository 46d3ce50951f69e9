"""cdk-nag 3 acknowledgements, each on the narrowest construct with a checkable reason.

AwsSolutions-IAM5 reports one granular finding per wildcard action or resource of a policy,
named ``AwsSolutions-IAM5[Action::x]`` or ``AwsSolutions-IAM5[Resource::y]`` where ``y`` is the
resource rendered the way cdk-nag renders intrinsics (``<LogicalId.Arn>``). Our policies are
built statement by statement, each with a Sid and a reason; :func:`acknowledge_wildcards`
acknowledges exactly the wildcards those statements contain (never more), so a wildcard
added without a reason still fails synth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import IConstruct

# The review's own rule for Allow + NotResource/NotAction (tools/review/analysis.py IAM_NOT_RULE).
REVIEW_IAM_NOT = "Review-IAMNot"


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def render(stack: cdk.Stack, value: Any) -> str:
    """A policy resource as cdk-nag names it in IAM5 findings."""
    resolved = stack.resolve(value)
    return _render(resolved)


def _render(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        if "Fn::GetAtt" in v:
            lid, attr = v["Fn::GetAtt"]
            return f"<{lid}.{attr}>"
        if "Ref" in v:
            return f"<{v['Ref']}>"
        if "Fn::Join" in v:
            sep, parts = v["Fn::Join"]
            return sep.join(_render(p) for p in parts)
        if "Fn::ImportValue" in v:  # a strong cross-stack reference: never a wildcard
            return f"<ImportValue:{_render(v['Fn::ImportValue'])}>"
    raise ValueError(f"cannot render {v!r} as a cdk-nag resource name")


def wildcard_findings(stack: cdk.Stack, statement: iam.PolicyStatement) -> list[str]:
    """The IAM5 finding ids a statement produces (Allow statements only; cdk-nag ignores Deny)."""
    if statement.effect == iam.Effect.DENY:
        return []
    out = [f"AwsSolutions-IAM5[Action::{a}]" for a in statement.actions if "*" in a]
    for r in statement.resources:
        name = render(stack, r)
        if "*" in name:
            out.append(f"AwsSolutions-IAM5[Resource::{name}]")
    # An Allow with NotResource/NotAction grants everything not listed. cdk-nag has no rule for
    # it; `make review` flags it under its own id, acknowledged here with the statement's reason.
    out += [f"{REVIEW_IAM_NOT}[NotResource::{render(stack, r)}]" for r in statement.not_resources]
    out += [f"{REVIEW_IAM_NOT}[NotAction::{a}]" for a in statement.not_actions]
    return out


def acknowledge_wildcards(
    construct: IConstruct, statements: Iterable[iam.PolicyStatement], reasons: Mapping[str, str]
) -> list[str]:
    """Acknowledge each wildcard finding of ``statements`` on ``construct``.

    ``reasons`` maps a statement Sid to why its wildcard is needed. A wildcard statement
    without a reason raises here (at build time), so no wildcard slips through unexplained.
    Returns the acknowledged ids (tests assert on them).
    """
    stack = cdk.Stack.of(construct)
    done: dict[str, str] = {}
    for st in statements:
        findings = wildcard_findings(stack, st)
        if not findings:
            continue
        if st.sid not in reasons:
            raise KeyError(f"statement {st.sid!r} has wildcards {findings} and no acknowledgement reason")
        for f in findings:
            done.setdefault(f, f"{st.sid}: {reasons[st.sid]}")
    for f, reason in done.items():
        acknowledge(construct, f, reason)
    return list(done)
