"""Markdown and the printed summary of a review (pure: review dict in, text out)."""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

CATEGORY_TITLES = {
    "iam": "IAM wildcards", "bucket": "bucket posture", "network": "network exposure",
    "replacement": "replacements vs baseline", "nag": "cdk-nag",
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


def _mark(items: list, flagged: list) -> list:
    return [f"**{i}** :warning:" if i in flagged else i for i in items]


def to_markdown(review: dict, *, title: str, baseline_label: str = "") -> str:
    flags = review["flags"]
    out = [f"# Review: {title}", ""]
    out += [summary(review, title=title, baseline_label=baseline_label).replace("\n", "  \n"), ""]

    out += ["## Flags", ""]
    out += _table(["severity", "category", "stack", "resource", "finding"],
                  ([f["severity"], f["category"], f["stack"], f["resource"], f["message"]] for f in flags))

    out += ["## Stacks", ""]
    out += _table(["stack", "template", "resources"],
                  ([s["name"], s["file"], s["resources"]] for s in review["stacks"]))
    out += ["## Resources by type", ""]
    out += _table(["type", "count"], review["resources_by_type"].items())

    out += ["## IAM", "", "Identity policies, one row per statement. Wildcards are in bold and flagged "
            "(Allow statements only; a Deny with a wildcard narrows access).", ""]
    out += _table(["stack", "role", "policy", "effect", "actions", "resources", "conditions"],
                  ([r["stack"], r["role"], r["policy"], r["effect"],
                    _mark(r["actions"], r["wildcard_actions"]),
                    _mark(r["resources"], r["wildcard_resources"]), r["conditions"]]
                   for r in review["iam"]["statements"]))
    out += ["### Roles", ""]
    out += _table(["stack", "role", "role name", "trusted principals", "managed policies"],
                  ([r["stack"], r["role"], r["role_name"], r["trusted"], r["managed_policies"]]
                   for r in review["iam"]["roles"]))

    out += ["## Buckets", ""]
    out += _table(["stack", "bucket", "name", "encryption", "public access", "TLS only", "versioning",
                   "access logs", "problems"],
                  ([b["stack"], b["bucket"], b["bucket_name"], b["encryption"], b["public_access"],
                    ("yes" + (f" (min TLS {b['min_tls']})" if b["min_tls"] else "")) if b["tls_enforced"] else "**NO**",
                    b["versioning"], b["access_logs"], b["problems"]] for b in review["buckets"]))

    net = review["network"]
    out += ["## Network exposure", "", "### Security group rules", ""]
    out += _table(["stack", "group", "direction", "protocol", "ports", "peer", "description"],
                  ([r["stack"], r["group"], r["direction"], r["protocol"], r["ports"], r["peer"],
                    r["description"]] for r in net["security_group_rules"]))
    out += ["### VPC endpoints", ""]
    out += _table(["stack", "endpoint", "service", "type", "private DNS", "security groups", "policy"],
                  ([e["stack"], e["endpoint"], e["service"], e["type"], e["private_dns"],
                    e["security_groups"], e["policy"]] for e in net["vpc_endpoints"]))
    out += ["### MWAA environments", ""]
    out += _table(["stack", "environment", "name", "Airflow", "class", "webserver access",
                   "endpoint management", "KMS key"],
                  ([e["stack"], e["environment"], e["name"], e["airflow_version"], e["environment_class"],
                    e["webserver_access_mode"], e["endpoint_management"], e["kms_key"]]
                   for e in net["mwaa_environments"]))

    out += ["## Replacement-causing properties", "",
            "Changing any of these values makes CloudFormation replace the resource "
            "(a new one is created and the old one deleted).", ""]
    changes = review["replacement_changes"]
    if changes is None:
        out += ["_No baseline given (`--baseline`): changes were not checked._", ""]
    else:
        out += [f"### Changes compared with the baseline {baseline_label}".rstrip(), ""]
        out += _table(["stack", "resource", "type", "property", "before", "after"],
                      ([c["stack"], c["resource"], c["type"], c["property"], c["before"], c["after"]]
                       for c in changes))
        missing = sorted({s["name"] for s in review["stacks"]} - set(review["baseline_stacks"] or []))
        if missing:
            out += ["Stacks new since the baseline (nothing to compare): " + ", ".join(missing), ""]
    out += ["### Current values", ""]
    out += _table(["stack", "resource", "type", "property", "value"],
                  ([r["stack"], r["resource"], r["type"], r["property"], r["value"]]
                   for r in review["replacement_properties"]))

    out += ["## cdk-nag acknowledgements", ""]
    out += _table(["stack", "construct", "rule", "reason"],
                  ([a["stack"], a["construct"], a["rule"], a["reason"]] for a in review["acknowledgements"]))
    if review["lint_ignores"]:
        out += ["### cfn-lint checks ignored in the templates", ""]
        out += _table(["stack", "resource", "ignored checks"],
                      ([r["stack"], r["resource"], r["checks"]] for r in review["lint_ignores"]))
    if review["validation_violations"]:
        out += ["### Unacknowledged findings (validation-report.json)", ""]
        out += _table(["plugin", "rule", "construct", "description"],
                      ([v["plugin"], v["rule"], v["construct"], v["description"]]
                       for v in review["validation_violations"]))
    return "\n".join(out).rstrip() + "\n"


def summary(review: dict, *, title: str, baseline_label: str = "") -> str:
    flags = review["flags"]
    by_category = Counter(f["category"] for f in flags)
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
    if flags:
        lines.append(f"FLAGS: {len(flags)} (" + ", ".join(
            f"{CATEGORY_TITLES.get(c, c)} {n}" for c, n in sorted(by_category.items())) + ")")
    else:
        lines.append("flags: none")
    return "\n".join(lines)
