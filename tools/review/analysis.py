"""Pure analysis of synthesized CloudFormation: plain dicts in, plain dicts out.

A *stack* here is ``{"name": str, "file": str, "template": dict, "metadata": dict}`` where
``metadata`` maps construct paths to the CDK metadata entries of that stack (what
``<stack>.metadata.json`` holds). ``review(stacks, baseline)`` returns every section of the
review plus a flat list of flags; nothing here reads files or calls AWS. Each flag says
whether a cdk-nag acknowledgement covers it (``acknowledged``, ``reason``, ``acknowledged_by``;
see link_acknowledgements): accepted by design versus new.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tools.review.rules import (
    ALLOW_REPLACEMENT_METADATA,
    CLONE_RESOURCE,
    DELETE_REPLACED_METADATA,
    MIN_ACK_REASON_CHARS,
    MWAA_ENVIRONMENT,
    PUBLIC_ACCESS_BLOCK_KEYS,
    PUBLIC_ACLS,
    REFUSED,
    REPLACEMENT_PROPERTIES,
    STATEFUL_TYPES,
    WORLD_CIDRS,
)

ACK_METADATA_TYPE = "aws:cdk:acknowledged-rules"
# cdk-nag's granular rule for wildcard permissions: one finding per wildcard action or
# resource of a policy, named ``AwsSolutions-IAM5[Action::<action>]`` or
# ``AwsSolutions-IAM5[Resource::<resource>]`` (see nag_resource_name).
IAM_WILDCARD_RULE = "AwsSolutions-IAM5"
# An Allow with NotAction/NotResource has no cdk-nag rule; the review flags it and honours an
# acknowledgement named the same way: ``Review-IAMNot[NotResource::<resource>]`` or
# ``Review-IAMNot[NotAction::<action>]`` (recorded with cdk.Validations like any other).
IAM_NOT_RULE = "Review-IAMNot"


# --------------------------------------------------------------------------- names and values


def _short_path(path: str, stack_name: str) -> str:
    path = path.lstrip("/")
    if stack_name and path.startswith(stack_name + "/"):
        path = path[len(stack_name) + 1 :]
    for tail in ("/Resource", "/Default"):
        if path.endswith(tail):
            path = path[: -len(tail)]
    return path


def display_names(stack: dict) -> dict[str, str]:
    """Logical ID -> readable name: the construct path inside the stack when CDK recorded one
    (``aws:cdk:path`` in the template, or an ``aws:cdk:logicalId`` entry of the stack's
    metadata), without the stack prefix and the ``/Resource`` tail; else the logical ID."""
    template, stack_name = stack["template"], stack.get("name", "")
    from_metadata: dict[str, str] = {}
    for path, entries in (stack.get("metadata") or {}).items():
        for entry in _as_list(entries):
            if (
                isinstance(entry, dict)
                and entry.get("type") == "aws:cdk:logicalId"
                and isinstance(entry.get("data"), str)
            ):
                from_metadata[entry["data"]] = path
    names: dict[str, str] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        path = ((resource or {}).get("Metadata") or {}).get("aws:cdk:path") or from_metadata.get(logical_id)
        names[logical_id] = (_short_path(path, stack_name) if isinstance(path, str) else "") or logical_id
    return names


def construct_paths(stack: dict) -> dict[str, str]:
    """Logical ID -> full construct path (``/Stack/Role/DefaultPolicy/Resource``) where CDK
    recorded one (``aws:cdk:path`` in the template or an ``aws:cdk:logicalId`` metadata entry)."""
    paths: dict[str, str] = {}
    for path, entries in (stack.get("metadata") or {}).items():
        for entry in _as_list(entries):
            if (
                isinstance(entry, dict)
                and entry.get("type") == "aws:cdk:logicalId"
                and isinstance(entry.get("data"), str)
            ):
                paths[entry["data"]] = "/" + path.lstrip("/")
    for logical_id, resource in (stack["template"].get("Resources") or {}).items():
        path = ((resource or {}).get("Metadata") or {}).get("aws:cdk:path")
        if isinstance(path, str) and path:
            paths[logical_id] = "/" + path.lstrip("/")
    return paths


def nag_resource_name(value: Any) -> str:
    """A policy resource the way cdk-nag 3 names it in an IAM5 finding (its
    ``flattenCfnReference``): ``Ref X`` -> ``<X>``, ``GetAtt X.Attr`` -> ``<X.Attr>`` (logical
    IDs, not construct names), ``Join`` joined, ``Sub``/literal ``${...}`` -> ``<...>``,
    ``ImportValue`` -> its name, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if value.get("Fn::Join"):
            sep, items = value["Fn::Join"]
            return str(sep).join(nag_resource_name(v) for v in _as_list(items))
        if value.get("Fn::Sub"):
            return nag_resource_name(value["Fn::Sub"])
        if value.get("Fn::GetAtt"):
            arg = value["Fn::GetAtt"]
            target, attr = arg.split(".", 1) if isinstance(arg, str) else (arg[0], arg[1])
            return f"<{nag_resource_name(target)}.{nag_resource_name(attr)}>"
        if value.get("Fn::ImportValue"):
            return nag_resource_name(value["Fn::ImportValue"])
        if value.get("Ref"):
            return f"<{nag_resource_name(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def _render_ref(arg: Any, names: dict[str, str]) -> str:
    return "${" + (arg if str(arg).startswith("AWS::") else names.get(arg, str(arg))) + "}"


def _render_get_att(arg: Any, names: dict[str, str]) -> str:
    parts = arg.split(".", 1) if isinstance(arg, str) else list(arg)
    target = names.get(parts[0], str(parts[0]))
    return "${" + target + ("." + render(parts[1], names) if len(parts) > 1 else "") + "}"


def _render_join(arg: Any, names: dict[str, str]) -> str | None:
    if not (isinstance(arg, list) and len(arg) == 2):
        return None
    sep, items = arg
    if isinstance(items, list):
        return str(sep).join(render(v, names) for v in items)
    return render(items, names)


def _render_sub(arg: Any, names: dict[str, str]) -> str:
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
    for var, sub in (variables or {}).items():
        text = text.replace("${" + var + "}", render(sub, names))
    for logical_id, name in names.items():
        text = text.replace("${" + logical_id + "}", "${" + name + "}")
        text = text.replace("${" + logical_id + ".", "${" + name + ".")
    return text


def _render_select(arg: Any, names: dict[str, str]) -> str | None:
    if not (isinstance(arg, list) and len(arg) == 2):
        return None
    index, items = arg
    if isinstance(items, list) and isinstance(index, (int, str)) and str(index).isdigit() and int(index) < len(items):
        return render(items[int(index)], names)
    return f"select({render(index, names)}, {render(items, names)})"


def _render_stack_output(arg: Any, names: dict[str, str]) -> str | None:
    # CDK's weak cross-stack reference: an output of another stack, read at deploy time
    if not isinstance(arg, dict):
        return None
    return f"output({arg.get('StackName', '?')}.{arg.get('OutputName', '?')})"


def _render_if(arg: Any, names: dict[str, str]) -> str | None:
    if not (isinstance(arg, list) and len(arg) == 3):
        return None
    return f"if({arg[0]}: {render(arg[1], names)} | {render(arg[2], names)})"


# intrinsic -> its readable form (None: not in a form we read; shown as JSON)
_INTRINSICS: dict[str, Callable[[Any, dict[str, str]], str | None]] = {
    "Ref": _render_ref,
    "Fn::GetAtt": _render_get_att,
    "Fn::Join": _render_join,
    "Fn::Sub": _render_sub,
    "Fn::Select": _render_select,
    "Fn::ImportValue": lambda arg, names: f"import({render(arg, names)})",
    "Fn::GetStackOutput": _render_stack_output,
    "Fn::If": _render_if,
    "Fn::GetAZs": lambda arg, names: "${AZs}",
}


def render(value: Any, names: dict[str, str] | None = None) -> str:
    """A CloudFormation value as one readable string: Ref -> ``${name}``, GetAtt ->
    ``${name.Attr}``, Join/Sub/Select resolved where the inputs are literal."""
    names = names or {}
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list):
        return ", ".join(render(v, names) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        text = _INTRINSICS[key](arg, names) if key in _INTRINSICS else None
        if text is not None:
            return text
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def get_path(properties: dict, dotted: str) -> Any:
    """Value at ``a.b.c`` inside a properties dict, or None."""
    node: Any = properties
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _resources(template: dict, type_name: str | None = None) -> Iterable[tuple[str, dict, dict]]:
    for logical_id, resource in sorted((template.get("Resources") or {}).items()):
        if not isinstance(resource, dict):
            continue
        if type_name is None or resource.get("Type") == type_name:
            yield logical_id, resource, resource.get("Properties") or {}


def _ref_target(value: Any) -> str | None:
    """Logical ID a value points at (Ref X or GetAtt X.*), else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str):
            return arg
        if key == "Fn::GetAtt":
            return arg.split(".", 1)[0] if isinstance(arg, str) else str(arg[0])
    return None


def _flag(
    flags: list,
    *,
    category: str,
    stack: str,
    resource: str,
    message: str,
    severity: str = "warning",
    rule: str = "",
    construct: str = "",
    value: str = "",
) -> None:
    """One finding. ``rule``/``construct``: the cdk-nag finding id that covers it and the
    construct path cdk-nag reports it on (IAM wildcards), so an acknowledgement can be linked
    (link_acknowledgements fills ``acknowledged``, ``reason`` and ``acknowledged_by``)."""
    flags.append(
        {
            "severity": severity,
            "category": category,
            "stack": stack,
            "resource": resource,
            "message": message,
            "rule": rule,
            "construct": construct,
            "value": value,
            "acknowledged": False,
            "reason": "",
            "acknowledged_by": "",
        }
    )


# --------------------------------------------------------------------------- sections


def resources_by_type(stacks: list[dict]) -> dict[str, int]:
    counts: Counter = Counter()
    for stack in stacks:
        for _, resource, _ in _resources(stack["template"]):
            counts[resource.get("Type", "?")] += 1
    return dict(sorted(counts.items()))


def _conditions(statement: dict) -> str:
    cond = statement.get("Condition") or {}
    parts = []
    for operator, body in sorted(cond.items()):
        for key, val in sorted((body or {}).items()):
            parts.append(f"{operator} {key}={render(val)}")
    return "; ".join(parts)


def _is_wildcard_action(action: str) -> bool:
    return "*" in action


def _is_wildcard_resource(resource: str) -> bool:
    return "*" in resource


def _statement_rows(
    *, stack: str, role: str, role_id: str, policy: str, document: dict, names: dict, flags: list, construct: str = ""
) -> list[dict]:
    """``construct``: path of the resource holding the document (the role for inline
    policies, the AWS::IAM::Policy otherwise): where cdk-nag reports its findings."""
    rows = []
    for statement in _as_list((document or {}).get("Statement")):
        if not isinstance(statement, dict):
            continue
        effect = statement.get("Effect", "Allow")
        raw_actions = _as_list(statement.get("Action"))
        raw_resources = _as_list(statement.get("Resource"))
        actions = [render(a, names) for a in raw_actions]
        raw_not_actions = _as_list(statement.get("NotAction"))
        raw_not_resources = _as_list(statement.get("NotResource"))
        not_actions = [render(a, names) for a in raw_not_actions]
        resources = [render(r, names) for r in raw_resources]
        not_resources = [render(r, names) for r in raw_not_resources]
        row = {
            "stack": stack,
            "role": role,
            "role_id": role_id,
            "policy": policy,
            "construct": construct,
            "effect": effect,
            "actions": actions + [f"NOT {a}" for a in not_actions],
            "resources": resources + [f"NOT {r}" for r in not_resources],
            "conditions": _conditions(statement),
            "wildcard_actions": [],
            "wildcard_resources": [],
            "acknowledged_wildcards": [],
        }
        if effect == "Allow":
            where = f"{role} ({policy})"
            # one flag per wildcard value: cdk-nag acknowledges them one by one
            for raw, shown in zip(raw_actions, actions, strict=True):
                if not _is_wildcard_action(shown):
                    continue
                row["wildcard_actions"].append(shown)
                full = shown == "*" or shown.endswith(":*")
                _flag(
                    flags,
                    category="iam",
                    stack=stack,
                    resource=where,
                    severity="high" if full else "warning",
                    message="wildcard action: " + shown,
                    construct=construct,
                    value=shown,
                    rule=f"{IAM_WILDCARD_RULE}[Action::{raw if isinstance(raw, str) else shown}]",
                )
            for raw, shown in zip(raw_resources, resources, strict=True):
                if not _is_wildcard_resource(shown):
                    continue
                row["wildcard_resources"].append(shown)
                full = shown == "*" and not row["conditions"]
                _flag(
                    flags,
                    category="iam",
                    stack=stack,
                    resource=where,
                    severity="high" if full else "warning",
                    message="wildcard resource: " + shown + (" (with condition)" if row["conditions"] else ""),
                    construct=construct,
                    value=shown,
                    rule=f"{IAM_WILDCARD_RULE}[Resource::{nag_resource_name(raw)}]",
                )
            negated = [("NotAction", raw, shown) for raw, shown in zip(raw_not_actions, not_actions, strict=True)]
            negated += [
                ("NotResource", raw, shown) for raw, shown in zip(raw_not_resources, not_resources, strict=True)
            ]
            for key, raw, shown in negated:
                _flag(
                    flags,
                    category="iam",
                    stack=stack,
                    resource=where,
                    construct=construct,
                    value=f"NOT {shown}",
                    rule=f"{IAM_NOT_RULE}[{key}::{nag_resource_name(raw)}]",
                    message=f"Allow with {key} {shown} grants everything not listed"
                    + (" (with condition)" if row["conditions"] else ""),
                )
        rows.append(row)
    return rows


def iam_table(stack: dict, flags: list) -> dict:
    """Role -> actions -> resources for every identity policy of the stack; roles with their
    trusted principals and managed policies."""
    template, stack_name = stack["template"], stack["name"]
    names = display_names(stack)
    paths = construct_paths(stack)
    rows: list[dict] = []
    roles: list[dict] = []
    for logical_id, _, props in _resources(template, "AWS::IAM::Role"):
        role = names[logical_id]
        principals = []
        for statement in _as_list((props.get("AssumeRolePolicyDocument") or {}).get("Statement")):
            for kind, value in (
                sorted((statement.get("Principal") or {}).items())
                if isinstance(statement.get("Principal"), dict)
                else [("", statement.get("Principal"))]
            ):
                principals += [f"{kind}:{render(v, names)}" if kind else render(v, names) for v in _as_list(value)]
        managed = [render(arn, names) for arn in _as_list(props.get("ManagedPolicyArns"))]
        roles.append(
            {
                "stack": stack_name,
                "role": role,
                "role_id": logical_id,
                "role_name": render(props.get("RoleName"), names) or "(generated)",
                "trusted": principals,
                "managed_policies": managed,
            }
        )
        for policy in _as_list(props.get("Policies")):
            rows += _statement_rows(
                stack=stack_name,
                role=role,
                role_id=logical_id,
                policy=render(policy.get("PolicyName"), names),
                document=policy.get("PolicyDocument"),
                names=names,
                flags=flags,
                construct=paths.get(logical_id, ""),
            )
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for logical_id, _, props in _resources(template, policy_type):
            holders = _as_list(props.get("Roles")) + _as_list(props.get("Users")) + _as_list(props.get("Groups"))
            for holder in holders or [None]:
                target = _ref_target(holder)
                role = names.get(target or "", render(holder, names)) if holder is not None else "(unattached)"
                rows += _statement_rows(
                    stack=stack_name,
                    role=role,
                    role_id=target or "",
                    policy=names[logical_id],
                    document=props.get("PolicyDocument") or {},
                    names=names,
                    flags=flags,
                    construct=paths.get(logical_id, ""),
                )
    return {"roles": roles, "statements": rows}


def _secure_transport_denied(statement: dict) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    value = ((statement.get("Condition") or {}).get("Bool") or {}).get("aws:SecureTransport")
    return value in ("false", False, ["false"], [False])


def _public_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any(v == "*" or v == ["*"] for v in principal.values())
    return False


def bucket_posture(stack: dict, flags: list) -> list[dict]:
    """Encryption, public access and TLS posture of every bucket of the stack."""
    template, stack_name = stack["template"], stack["name"]
    names = display_names(stack)
    policies: dict[str, list[dict]] = {}
    for _logical_id, _, props in _resources(template, "AWS::S3::BucketPolicy"):
        target = _ref_target(props.get("Bucket")) or render(props.get("Bucket"), names)
        policies.setdefault(target, []).extend(
            s for s in _as_list((props.get("PolicyDocument") or {}).get("Statement")) if isinstance(s, dict)
        )
    rows = []
    for logical_id, _, props in _resources(template, "AWS::S3::Bucket"):
        name = names[logical_id]
        bucket_name = render(props.get("BucketName"), names)
        statements = policies.get(logical_id, []) + (policies.get(bucket_name, []) if bucket_name else [])
        problems = []

        sse = [
            c.get("ServerSideEncryptionByDefault") or {}
            for c in _as_list((props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration"))
        ]
        if sse and sse[0].get("SSEAlgorithm"):
            encryption = sse[0]["SSEAlgorithm"]
            if sse[0].get("KMSMasterKeyID"):
                encryption += " " + render(sse[0]["KMSMasterKeyID"], names)
        else:
            encryption = "none configured"
            problems.append("no BucketEncryption declared (S3 applies SSE-S3 implicitly; declare SSE-KMS or SSE-S3)")

        pab = props.get("PublicAccessBlockConfiguration") or {}
        open_keys = [k for k in PUBLIC_ACCESS_BLOCK_KEYS if pab.get(k) not in (True, "true")]
        public_access = "blocked" if not open_keys else "NOT blocked: " + ", ".join(open_keys)
        if open_keys:
            problems.append("public access not fully blocked (" + ", ".join(open_keys) + " not true)")
        acl = props.get("AccessControl")
        if acl in PUBLIC_ACLS:
            problems.append(f"public ACL {acl}")
        public_grants = [
            s
            for s in statements
            if s.get("Effect") == "Allow" and _public_principal(s.get("Principal")) and not s.get("Condition")
        ]
        if public_grants:
            problems.append(
                "bucket policy allows anyone (Principal *) without a condition: "
                + "; ".join(render(_as_list(s.get("Action")), names) for s in public_grants)
            )

        tls = any(_secure_transport_denied(s) for s in statements)
        if not tls:
            problems.append("no bucket policy denying aws:SecureTransport=false (TLS not enforced)")
        min_tls = ""
        for s in statements:
            numeric = (s.get("Condition") or {}).get("NumericLessThan") or {}
            if s.get("Effect") == "Deny" and "s3:TlsVersion" in numeric:
                min_tls = render(numeric["s3:TlsVersion"])

        for problem in problems:
            exposed = "public" in problem or "anyone" in problem
            _flag(
                flags,
                category="bucket",
                stack=stack_name,
                resource=name,
                message=problem,
                severity="high" if exposed else "warning",
            )
        rows.append(
            {
                "stack": stack_name,
                "bucket": name,
                "logical_id": logical_id,
                "bucket_name": bucket_name or "(generated)",
                "encryption": encryption,
                "public_access": public_access,
                "tls_enforced": tls,
                "min_tls": min_tls,
                "versioning": render(get_path(props, "VersioningConfiguration.Status")) or "off",
                "access_logs": render(get_path(props, "LoggingConfiguration.DestinationBucketName"), names)
                or ("to self" if "LoggingConfiguration" in props else "off"),
                "problems": problems,
            }
        )
    return rows


def _rule(direction: str, group: str, rule: dict, names: dict) -> dict:
    protocol = str(rule.get("IpProtocol", "-1"))
    low, high = rule.get("FromPort"), rule.get("ToPort")
    if protocol == "-1":
        ports = "all"
    elif low is None or str(low) == str(high):
        ports = render(low, names) if low is not None else "all"
    else:
        ports = f"{render(low, names)}-{render(high, names)}"
    peer_keys = (
        "CidrIp",
        "CidrIpv6",
        "SourceSecurityGroupId",
        "SourcePrefixListId",
        "DestinationSecurityGroupId",
        "DestinationPrefixListId",
    )
    peer = next((render(rule[k], names) for k in peer_keys if k in rule), "?")
    return {
        "group": group,
        "direction": direction,
        "protocol": "all" if protocol == "-1" else protocol,
        "ports": ports,
        "peer": peer,
        "description": render(rule.get("Description"), names),
    }


def network_exposure(stack: dict, flags: list) -> dict:
    """Security-group rules, VPC endpoints and MWAA webserver access of the stack."""
    template, stack_name = stack["template"], stack["name"]
    names = display_names(stack)
    rules = []
    for logical_id, _, props in _resources(template, "AWS::EC2::SecurityGroup"):
        for rule in _as_list(props.get("SecurityGroupIngress")):
            rules.append(_rule("ingress", names[logical_id], rule, names))
        for rule in _as_list(props.get("SecurityGroupEgress")):
            rules.append(_rule("egress", names[logical_id], rule, names))
    for type_name, direction in (
        ("AWS::EC2::SecurityGroupIngress", "ingress"),
        ("AWS::EC2::SecurityGroupEgress", "egress"),
    ):
        for _logical_id, _, props in _resources(template, type_name):
            group = _ref_target(props.get("GroupId"))
            rules.append(_rule(direction, names.get(group or "", render(props.get("GroupId"), names)), props, names))
    for rule in rules:
        if rule["direction"] == "ingress" and rule["peer"] in WORLD_CIDRS:
            _flag(
                flags,
                category="network",
                stack=stack_name,
                resource=rule["group"],
                severity="high",
                message=f"ingress from {rule['peer']} on {rule['protocol']}/{rule['ports']}",
            )

    endpoints = []
    for logical_id, _, props in _resources(template, "AWS::EC2::VPCEndpoint"):
        endpoints.append(
            {
                "stack": stack_name,
                "endpoint": names[logical_id],
                "service": render(props.get("ServiceName"), names),
                "type": props.get("VpcEndpointType", "Gateway"),
                "private_dns": render(props.get("PrivateDnsEnabled")) or "-",
                "security_groups": render(props.get("SecurityGroupIds"), names) or "-",
                "policy": "custom" if props.get("PolicyDocument") else "default (full access)",
            }
        )

    environments = []
    for logical_id, _, props in _resources(template, "AWS::MWAA::Environment"):
        mode = props.get("WebserverAccessMode", "PRIVATE_ONLY")
        env = {
            "stack": stack_name,
            "environment": names[logical_id],
            "name": render(props.get("Name"), names),
            "airflow_version": render(props.get("AirflowVersion"), names) or "(service default)",
            "environment_class": render(props.get("EnvironmentClass"), names) or "(service default)",
            "webserver_access_mode": render(mode, names),
            "endpoint_management": render(props.get("EndpointManagement"), names) or "SERVICE",
            "subnets": render(get_path(props, "NetworkConfiguration.SubnetIds"), names),
            "security_groups": render(get_path(props, "NetworkConfiguration.SecurityGroupIds"), names),
            "kms_key": render(props.get("KmsKey"), names) or "AWS owned key",
        }
        if mode == "PUBLIC_ONLY":
            _flag(
                flags,
                category="network",
                stack=stack_name,
                resource=env["environment"],
                severity="high",
                message="MWAA webserver is reachable from the internet (WebserverAccessMode PUBLIC_ONLY)",
            )
        environments.append(env)
    return {
        "security_group_rules": [dict(r, stack=stack_name) for r in rules],
        "vpc_endpoints": endpoints,
        "mwaa_environments": environments,
    }


def replacement_properties(stack: dict) -> list[dict]:
    """Current values of every replacement-causing property of the stack's resources."""
    template, stack_name = stack["template"], stack["name"]
    names = display_names(stack)
    rows = []
    for logical_id, resource, props in _resources(template):
        for prop in REPLACEMENT_PROPERTIES.get(str(resource.get("Type")), ()):
            value = get_path(props, prop)
            if value is None:
                continue
            rows.append(
                {
                    "stack": stack_name,
                    "resource": names[logical_id],
                    "logical_id": logical_id,
                    "type": resource["Type"],
                    "property": prop,
                    "value": render(value, names),
                }
            )
    return rows


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _property_changes(stack: dict, before: dict) -> list[dict]:
    """Changed replacement-causing properties and types of the resources both synths have."""
    names, old_names = display_names(stack), display_names(before)
    now = stack["template"].get("Resources") or {}
    old = before["template"].get("Resources") or {}
    changes = []
    for logical_id in sorted(set(now) & set(old)):
        new_type, old_type = now[logical_id].get("Type"), old[logical_id].get("Type")
        row = {
            "stack": stack["name"],
            "resource": names[logical_id],
            "logical_id": logical_id,
            "type": new_type,
            "metadata": now[logical_id].get("Metadata") or {},
        }
        if new_type != old_type:
            changes.append({**row, "property": "Type", "before": old_type, "after": new_type})
            continue
        for prop in REPLACEMENT_PROPERTIES.get(new_type, ()):
            a = get_path(old[logical_id].get("Properties") or {}, prop)
            b = get_path(now[logical_id].get("Properties") or {}, prop)
            if _canonical(a) != _canonical(b):
                changes.append(
                    {
                        **row,
                        "property": prop,
                        "before": render(a, old_names) if a is not None else "(not set)",
                        "after": render(b, names) if b is not None else "(not set)",
                    }
                )
    for logical_id in sorted(set(old) - set(now)):
        if old[logical_id].get("Type") in STATEFUL_TYPES:
            changes.append(
                {
                    "stack": stack["name"],
                    "resource": old_names[logical_id],
                    "logical_id": logical_id,
                    "type": old[logical_id]["Type"],
                    "metadata": old[logical_id].get("Metadata") or {},
                    "property": "(logical ID)",
                    "before": "present",
                    "after": "removed: CloudFormation deletes it",
                }
            )
    return changes


def _renamed_clone_targets(stack: dict, before: dict) -> list[dict]:
    """Clone resources whose TargetName changed: a new environment is created, the old one stays."""
    names = display_names(stack)
    now = stack["template"].get("Resources") or {}
    old = before["template"].get("Resources") or {}
    out = []
    for logical_id in sorted(set(now) & set(old)):
        if now[logical_id].get("Type") != CLONE_RESOURCE or old[logical_id].get("Type") != CLONE_RESOURCE:
            continue
        a = (old[logical_id].get("Properties") or {}).get("TargetName")
        b = (now[logical_id].get("Properties") or {}).get("TargetName")
        if a != b:
            out.append(
                {
                    "stack": stack["name"],
                    "resource": names[logical_id],
                    "logical_id": logical_id,
                    "type": CLONE_RESOURCE,
                    "property": "TargetName",
                    "before": render(a),
                    "after": render(b),
                    "metadata": now[logical_id].get("Metadata") or {},
                }
            )
    return out


def _environment_message(change: dict) -> tuple[str, str]:
    """(severity, message) of a change that replaces or removes an MWAA environment."""
    what = f"{change['type']} {change['property']}: {change['before']} -> {change['after']}"
    kept = (
        "the old environment is retained (DeletionPolicy/UpdateReplacePolicy Retain): it keeps running "
        "and costing until you delete it"
    )
    if change["metadata"].get(ALLOW_REPLACEMENT_METADATA) is True:
        return "high", f"{what}: replaces the environment (allowed by the stage); {kept}"
    return REFUSED, (
        f"{what}: would replace a live MWAA environment; refused. Revert the change, or set "
        f"allow_environment_replacement: true in the stage file if a new environment is intended ({kept})"
    )


def _clone_rename_message(change: dict) -> str:
    old = change["before"]
    what = f"target.name {old} -> {change['after']}: the clone creates a new environment"
    if change["metadata"].get(DELETE_REPLACED_METADATA) == old:
        return f"{what}; {old} is deleted once the update succeeds (migration.delete_replaced_target)"
    return (
        f"{what} and keeps {old}, which runs and costs until deleted; set migration.delete_replaced_target: "
        f"{old} to delete it after the update succeeds"
    )


def replacement_changes(stacks: list[dict], baseline: list[dict], flags: list) -> list[dict]:
    """What this synth would replace compared with the baseline synth: a changed
    replacement-causing property, a changed type, or a stateful resource whose logical ID is
    gone (renamed or removed), plus a clone whose target name changed. A change that replaces
    an MWAA environment is refused (severity ``refused``) unless the stage allows it."""
    changes = []
    before_by_name = {s["name"]: s for s in baseline}
    for stack in stacks:
        before = before_by_name.get(stack["name"])
        if before is not None:
            changes += _property_changes(stack, before) + _renamed_clone_targets(stack, before)
    for change in changes:
        severity = "high"
        message = f"{change['type']} {change['property']}: {change['before']} -> {change['after']}"
        if change["type"] == MWAA_ENVIRONMENT:
            severity, message = _environment_message(change)
        elif change["type"] == CLONE_RESOURCE:
            message = _clone_rename_message(change)
        change["severity"] = severity
        _flag(
            flags,
            category="replacement",
            stack=change["stack"],
            resource=change["resource"],
            severity=severity,
            message=message,
        )
    for change in changes:
        change.pop("metadata", None)
    return changes


def acknowledgements(stack: dict, flags: list) -> list[dict]:
    """Every cdk-nag acknowledgement with its reason. cdk-nag 3 (cdk.Validations) records them
    as ``aws:cdk:acknowledged-rules`` entries in the stack's metadata file; cdk-nag 2
    suppressions live in the template's ``cdk_nag`` resource or template metadata."""
    rows = []
    for path, entries in sorted((stack.get("metadata") or {}).items()):
        for entry in _as_list(entries):
            if isinstance(entry, dict) and entry.get("type") == ACK_METADATA_TYPE:
                for rule, reason in sorted((entry.get("data") or {}).items()):
                    # aws-cdk-lib < 2.262.1 wrote 'annotation::', later 'Annotation::'
                    rule = rule[len("annotation::") :] if rule.lower().startswith("annotation::") else rule
                    rows.append(
                        {
                            "stack": stack["name"],
                            "construct": path,
                            "rule": rule,
                            "reason": str(reason or ""),
                            "source": "cdk.Validations",
                            "rule_id": _without_plugin(rule),
                            "applies_to": [],
                        }
                    )
    template = stack["template"]
    paths = construct_paths(stack)
    legacy = [(f"/{stack['name']}", template.get("Metadata") or {})]
    legacy += [
        (paths.get(logical_id, logical_id), r.get("Metadata") or {}) for logical_id, r, _ in _resources(template)
    ]
    for where, metadata in legacy:
        for item in _as_list((metadata.get("cdk_nag") or {}).get("rules_to_suppress")):
            if not isinstance(item, dict):
                continue
            rule_id = str(item.get("id", "?"))
            applies = _as_list(item.get("applies_to"))
            rule = rule_id + (" [" + render(applies) + "]" if applies else "")
            rows.append(
                {
                    "stack": stack["name"],
                    "construct": where,
                    "rule": rule,
                    "reason": str(item.get("reason") or ""),
                    "source": "cdk_nag metadata",
                    "rule_id": rule_id,
                    "applies_to": applies,
                }
            )
    for row in rows:
        if len(row["reason"].strip()) < MIN_ACK_REASON_CHARS:
            _flag(
                flags,
                category="nag",
                stack=row["stack"],
                resource=row["construct"],
                message=f"acknowledgement of {row['rule']} has no checkable reason: {row['reason']!r}",
            )
    return rows


def _without_plugin(rule: str) -> str:
    """``AwsSolutions::AwsSolutions-IAM5[...]`` (an acknowledgement naming its plugin, which
    CDK honours too) -> ``AwsSolutions-IAM5[...]``; ``::`` inside the brackets is the finding's."""
    head, sep, tail = rule.partition("::")
    return tail if sep and "[" not in head else rule


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> [``/a/b/c``, ``/a/b``, ``/a``]: cdk-nag honours an acknowledgement on the
    resource or on any construct above it."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _applies(pattern: Any, finding: str) -> bool:
    """A cdk-nag 2 ``applies_to`` entry: the finding itself, or ``{"regex": "/.../flags"}``."""
    if isinstance(pattern, str):
        return pattern == finding
    if isinstance(pattern, dict) and isinstance(pattern.get("regex"), str):
        text = pattern["regex"]
        if text.startswith("/") and text.rfind("/") > 0:
            text, flags = text[1 : text.rfind("/")], text[text.rfind("/") + 1 :]
        else:
            flags = ""
        try:
            return re.search(text, finding, re.IGNORECASE if "i" in flags else 0) is not None
        except re.error:
            return False
    return False


def _covers(ack: dict, rule: str) -> bool:
    if ack["rule_id"] == rule:
        return True
    base, bracket, rest = rule.partition("[")
    if not bracket or ack["rule_id"] != base or not ack["applies_to"]:
        return False
    finding = rest[:-1] if rest.endswith("]") else rest
    return any(_applies(p, finding) for p in ack["applies_to"])


def link_acknowledgements(flags: list[dict], acks: list[dict]) -> None:
    """Mark each flag an acknowledgement covers, the way cdk-nag decides it: same stack, an
    acknowledgement of the exact finding id (``AwsSolutions-IAM5[Resource::<Bucket.Arn>/*]``)
    on the construct the finding is reported on or any of its parents. Only an
    acknowledgement with a checkable reason counts (a reasonless one is flagged itself).
    Each acknowledgement gets ``covers``: how many flags it accounts for, and ``linked_rule``:
    whether it is a rule the review links at all (IAM wildcards, NotAction/NotResource)."""
    by_place: dict[tuple[str, str], list[dict]] = {}
    ack: dict | None
    for ack in acks:
        ack["covers"] = 0
        # only these rules are the review's to check; the others cdk-nag alone decides
        ack["linked_rule"] = ack["rule_id"].partition("[")[0] in (IAM_WILDCARD_RULE, IAM_NOT_RULE)
        by_place.setdefault((ack["stack"], "/" + ack["construct"].lstrip("/")), []).append(ack)
    for flag in flags:
        if not flag.get("rule") or not flag.get("construct"):
            continue
        for place in _ancestors(flag["construct"]):
            ack = next(
                (
                    a
                    for a in by_place.get((flag["stack"], place), [])
                    if _covers(a, flag["rule"]) and len(a["reason"].strip()) >= MIN_ACK_REASON_CHARS
                ),
                None,
            )
            if ack is not None:
                flag.update(
                    acknowledged=True, reason=ack["reason"], acknowledged_by=f"{ack['rule']} on {ack['construct']}"
                )
                ack["covers"] += 1
                break


def lint_ignores(stack: dict) -> list[dict]:
    """cfn-lint checks switched off in the template (``Metadata.cfn-lint.config.ignore_checks``
    on the template or on a resource): a reviewer should see what the linter did not check."""
    names = display_names(stack)
    template = stack["template"]
    places = [("(whole template)", template.get("Metadata") or {})]
    places += [(names[logical_id], r.get("Metadata") or {}) for logical_id, r, _ in _resources(template)]
    rows = []
    for where, metadata in places:
        checks = ((metadata.get("cfn-lint") or {}).get("config") or {}).get("ignore_checks")
        if checks:
            rows.append({"stack": stack["name"], "resource": where, "checks": [str(c) for c in _as_list(checks)]})
    return rows


def validation_violations(report: dict | None) -> list[dict]:
    """Violations listed in cdk.out/validation-report.json (present only when synth failed)."""
    rows = []
    for plugin in (report or {}).get("pluginReports") or []:
        for violation in plugin.get("violations") or []:
            for construct in violation.get("violatingConstructs") or []:
                rows.append(
                    {
                        "plugin": plugin.get("pluginName", "?"),
                        "rule": violation.get("ruleName", "?"),
                        "construct": construct.get("constructPath", "?"),
                        "description": violation.get("description", ""),
                    }
                )
    return rows


# --------------------------------------------------------------------------- the whole review


def review(stacks: list[dict], baseline: list[dict] | None = None, validation_report: dict | None = None) -> dict:
    flags: list[dict] = []
    iam: dict[str, list] = {"roles": [], "statements": []}
    buckets, acks, replacements, ignores = [], [], [], []
    network: dict[str, list] = {"security_group_rules": [], "vpc_endpoints": [], "mwaa_environments": []}
    for stack in stacks:
        part = iam_table(stack, flags)
        iam["roles"] += part["roles"]
        iam["statements"] += part["statements"]
        buckets += bucket_posture(stack, flags)
        for key, rows in network_exposure(stack, flags).items():
            network[key] += rows
        replacements += replacement_properties(stack)
        acks += acknowledgements(stack, flags)
        ignores += lint_ignores(stack)
    violations = validation_violations(validation_report)
    for v in violations:
        _flag(
            flags,
            category="nag",
            stack="-",
            resource=v["construct"],
            severity="high",
            message=f"unacknowledged finding {v['rule']} ({v['plugin']}): {v['description']}",
        )
    changes = replacement_changes(stacks, baseline, flags) if baseline is not None else None
    link_acknowledgements(flags, acks)
    acknowledged = {(f["stack"], f["construct"], f["value"]) for f in flags if f["acknowledged"] and f["value"]}
    for row in iam["statements"]:
        row["acknowledged_wildcards"] = [
            w
            for w in row["wildcard_actions"] + row["wildcard_resources"]
            if (row["stack"], row["construct"], w) in acknowledged
        ]
    return {
        "stacks": [
            {"name": s["name"], "file": s.get("file", ""), "resources": len(s["template"].get("Resources") or {})}
            for s in stacks
        ],
        "resources_by_type": resources_by_type(stacks),
        "iam": iam,
        "buckets": buckets,
        "network": network,
        "replacement_properties": replacements,
        "replacement_changes": changes,
        "baseline_stacks": [s["name"] for s in baseline] if baseline is not None else None,
        "acknowledgements": acks,
        "lint_ignores": ignores,
        "validation_violations": violations,
        "flags": flags,
        "refused": [f for f in flags if f["severity"] == REFUSED],
    }
