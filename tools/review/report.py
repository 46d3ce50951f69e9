"""Markdown and the printed summary of a review (pure: review dict in, text out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

CATEGORY_TITLES = {
    "iam": "IAM wildcards",
    "bucket": "bucket posture",
    "network": "network exposure",
    "replacement": "replacements vs baseline",
    "nag": "cdk-nag",
}


def _cell(value) -> str:
    if isinstance(value, (list, tuple)):
        value = "<br>".join(str(v) for v in value) if value else "-"
    text = str(value) if value not in (None, "") else "-"
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    rows = list(rows)
    if not rows:
        return ["_none_", ""]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _mark(items: list, flagged: list, acknowledged: list) -> list:
    return [
        (f"{i} (acknowledged)" if i in acknowledged else f"**{i}** :warning:") if i in flagged else i for i in items
    ]


def ordered_flags(flags: list[dict]) -> list[dict]:
    """Unacknowledged flags first (what a reviewer must decide on), then acknowledged ones."""
    return [f for f in flags if not f.get("acknowledged")] + [f for f in flags if f.get("acknowledged")]


def status(flag: dict) -> str:
    return "acknowledged" if flag.get("acknowledged") else flag["severity"]


def flag_line(flag: dict, *, reason_chars: int = 0) -> str:
    """``[high] iam: stack resource: message`` or ``[acknowledged] ... — reason: why``
    (the reason cut to ``reason_chars`` when given)."""
    line = f"[{status(flag)}] {flag['category']}: {flag['stack']} {flag['resource']}: {flag['message']}"
    if flag.get("acknowledged"):
        reason = " ".join(flag["reason"].split())
        if reason_chars and len(reason) > reason_chars:
            reason = reason[: reason_chars - 3].rstrip() + "..."
        line += f" \u2014 reason: {reason}"
    return line


def _flags_section(review: dict) -> list[str]:
    out = [
        "## Flags",
        "",
        "Unacknowledged flags first. A flag is *acknowledged* when a cdk-nag acknowledgement "
        "with a reason covers its exact finding (same stack, on the construct the finding is "
        "reported on or a parent): accepted by design, the reason says why. A *refused* flag "
        "cannot be acknowledged: it fails the review.",
        "",
    ]
    return out + _table(
        ["status", "category", "stack", "resource", "finding", "acknowledgement"],
        (
            [status(f), f["category"], f["stack"], f["resource"], f["message"], _ack_cell(f)]
            for f in ordered_flags(review["flags"])
        ),
    )


def _ack_cell(flag: dict) -> str:
    if flag.get("acknowledged"):
        return f"{flag['reason']} ({flag['acknowledged_by']})"
    return f"not acknowledged: {flag['rule']}" if flag.get("rule") else "-"


def _stacks_section(review: dict) -> list[str]:
    out = ["## Stacks", ""]
    out += _table(
        ["stack", "template", "resources"], ([s["name"], s["file"], s["resources"]] for s in review["stacks"])
    )
    out += ["## Resources by type", ""]
    return out + _table(["type", "count"], review["resources_by_type"].items())


def _iam_row(r: dict) -> list:
    acknowledged = r.get("acknowledged_wildcards", [])
    return [
        r["stack"],
        r["role"],
        r["policy"],
        r["effect"],
        _mark(r["actions"], r["wildcard_actions"], acknowledged),
        _mark(r["resources"], r["wildcard_resources"], acknowledged),
        r["conditions"],
    ]


def _iam_section(review: dict) -> list[str]:
    out = [
        "## IAM",
        "",
        "Identity policies, one row per statement. Unacknowledged wildcards are in bold "
        "and flagged, acknowledged ones marked (acknowledged) (Allow statements only; a Deny with a "
        "wildcard narrows access).",
        "",
    ]
    out += _table(
        ["stack", "role", "policy", "effect", "actions", "resources", "conditions"],
        (_iam_row(r) for r in review["iam"]["statements"]),
    )
    out += ["### Roles", ""]
    return out + _table(
        ["stack", "role", "role name", "trusted principals", "managed policies"],
        ([r["stack"], r["role"], r["role_name"], r["trusted"], r["managed_policies"]] for r in review["iam"]["roles"]),
    )


def _tls_cell(bucket: dict) -> str:
    if not bucket["tls_enforced"]:
        return "**NO**"
    return "yes" + (f" (min TLS {bucket['min_tls']})" if bucket["min_tls"] else "")


def _buckets_section(review: dict) -> list[str]:
    out = ["## Buckets", ""]
    return out + _table(
        ["stack", "bucket", "name", "encryption", "public access", "TLS only", "versioning", "access logs", "problems"],
        (
            [
                b["stack"],
                b["bucket"],
                b["bucket_name"],
                b["encryption"],
                b["public_access"],
                _tls_cell(b),
                b["versioning"],
                b["access_logs"],
                b["problems"],
            ]
            for b in review["buckets"]
        ),
    )


def _network_section(review: dict) -> list[str]:
    net = review["network"]
    out = ["## Network exposure", "", "### Security group rules", ""]
    out += _table(
        ["stack", "group", "direction", "protocol", "ports", "peer", "description"],
        (
            [r["stack"], r["group"], r["direction"], r["protocol"], r["ports"], r["peer"], r["description"]]
            for r in net["security_group_rules"]
        ),
    )
    out += ["### VPC endpoints", ""]
    out += _table(
        ["stack", "endpoint", "service", "type", "private DNS", "security groups", "policy"],
        (
            [e["stack"], e["endpoint"], e["service"], e["type"], e["private_dns"], e["security_groups"], e["policy"]]
            for e in net["vpc_endpoints"]
        ),
    )
    out += ["### MWAA environments", ""]
    return out + _table(
        ["stack", "environment", "name", "Airflow", "class", "webserver access", "endpoint management", "KMS key"],
        (
            [
                e["stack"],
                e["environment"],
                e["name"],
                e["airflow_version"],
                e["environment_class"],
                e["webserver_access_mode"],
                e["endpoint_management"],
                e["kms_key"],
            ]
            for e in net["mwaa_environments"]
        ),
    )


def _replacements_section(review: dict, baseline_label: str) -> list[str]:
    out = [
        "## Replacement-causing properties",
        "",
        "Changing any of these values makes CloudFormation replace the resource (a new one is created and "
        "the old one deleted, or kept when it is retained: MWAA environments are).",
        "",
    ]
    changes = review["replacement_changes"]
    if changes is None:
        out += ["_No baseline given (`--baseline`): changes were not checked._", ""]
    else:
        out += [f"### Changes compared with the baseline {baseline_label}".rstrip(), ""]
        out += _table(
            ["stack", "resource", "type", "property", "before", "after", "severity"],
            (
                [
                    c["stack"],
                    c["resource"],
                    c["type"],
                    c["property"],
                    c["before"],
                    c["after"],
                    c.get("severity", "high"),
                ]
                for c in changes
            ),
        )
        missing = sorted({s["name"] for s in review["stacks"]} - set(review["baseline_stacks"] or []))
        if missing:
            out += ["Stacks new since the baseline (nothing to compare): " + ", ".join(missing), ""]
    out += ["### Current values", ""]
    return out + _table(
        ["stack", "resource", "type", "property", "value"],
        ([r["stack"], r["resource"], r["type"], r["property"], r["value"]] for r in review["replacement_properties"]),
    )


def _acknowledgements_section(review: dict) -> list[str]:
    out = [
        "## cdk-nag acknowledgements",
        "",
        "`flags`: how many flags of this review each acknowledgement accounts for (the review "
        "links IAM wildcards and NotAction/NotResource; other rules are cdk-nag's alone: -). "
        "0 means it matches no finding of these templates any more.",
        "",
    ]
    out += _table(
        ["stack", "construct", "rule", "flags", "reason"],
        (
            [a["stack"], a["construct"], a["rule"], a.get("covers", 0) if a.get("linked_rule") else "-", a["reason"]]
            for a in review["acknowledgements"]
        ),
    )
    if review["lint_ignores"]:
        out += ["### cfn-lint checks ignored in the templates", ""]
        out += _table(
            ["stack", "resource", "ignored checks"],
            ([r["stack"], r["resource"], r["checks"]] for r in review["lint_ignores"]),
        )
    if review["validation_violations"]:
        out += ["### Unacknowledged findings (validation-report.json)", ""]
        out += _table(
            ["plugin", "rule", "construct", "description"],
            ([v["plugin"], v["rule"], v["construct"], v["description"]] for v in review["validation_violations"]),
        )
    return out


def to_markdown(review: dict, *, title: str, baseline_label: str = "") -> str:
    """The whole review as Markdown: summary, flags, then one section per concern."""
    out = [f"# Review: {title}", ""]
    out += [summary(review, title=title, baseline_label=baseline_label).replace("\n", "  \n"), ""]
    out += _flags_section(review)
    out += _stacks_section(review)
    out += _iam_section(review)
    out += _buckets_section(review)
    out += _network_section(review)
    out += _replacements_section(review, baseline_label)
    out += _acknowledgements_section(review)
    return "\n".join(out).rstrip() + "\n"


def _by_category(flags: list[dict]) -> str:
    counts = Counter(f["category"] for f in flags)
    if not counts:
        return ""
    return " (" + ", ".join(f"{CATEGORY_TITLES.get(c, c)} {n}" for c, n in sorted(counts.items())) + ")"


def summary(review: dict, *, title: str, baseline_label: str = "") -> str:
    flags = review["flags"]
    open_flags = [f for f in flags if not f.get("acknowledged")]
    accepted = [f for f in flags if f.get("acknowledged")]
    resources = sum(s["resources"] for s in review["stacks"])
    lines = [
        f"{title}: {len(review['stacks'])} stacks, {resources} resources, "
        f"{len(review['iam']['roles'])} roles, {len(review['buckets'])} buckets, "
        f"{len(review['acknowledgements'])} nag acknowledgements",
    ]
    changes = review["replacement_changes"]
    if changes is None:
        lines.append("replacements: not checked (no baseline)")
    else:
        lines.append(f"replacements vs baseline {baseline_label}: {len(changes)}".replace("  ", " "))
        refused = review.get("refused") or []
        if refused:
            lines.append(f"REFUSED: {len(refused)} change(s) would replace a live MWAA environment")
    if flags:
        lines.append(
            f"FLAGS: {len(open_flags)} unacknowledged{_by_category(open_flags)}, "
            f"{len(accepted)} acknowledged with a reason{_by_category(accepted)}"
        )
    else:
        lines.append("flags: none")
    return "\n".join(lines)
