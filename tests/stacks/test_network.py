"""Network: explicit AZs and subnets (no lookups), endpoints, flow logs, endpoint ingress."""

from __future__ import annotations

import json
from pathlib import Path

from tests.templatehelpers import as_list, resources

BASE = {"sqs", "logs", "monitoring", "kms", "ecr.api", "ecr.dkr", "airflow.api", "airflow.env", "airflow.ops"}


def _service(ep: dict) -> str:
    """ "com.amazonaws.<region>.<service>" (a literal, or joined with AWS::Region) -> <service>."""
    name = ep["Properties"]["ServiceName"]
    if isinstance(name, dict):
        name = "".join(p if isinstance(p, str) else "REGION" for p in name["Fn::Join"][1])
    return name.split(".", 3)[-1]


def _endpoints(stage) -> dict[str, dict]:
    eps = resources(stage.json("network"), "AWS::EC2::VPCEndpoint")
    return {_service(e): e for e in eps.values()}


def test_endpoint_sets(dev, prod, example):
    # cloudformation: the migration runner runs in the VPC (PRIVATE_ONLY webservers) and calls DescribeStacks
    assert set(_endpoints(dev)) == BASE | {"s3", "cloudformation"}
    assert set(_endpoints(prod)) == BASE | {
        "s3",
        "secretsmanager",
        "sts",
        "cloudformation",
    }  # secrets backend on, sts on
    assert set(_endpoints(example)) == BASE | {"s3", "cloudformation"}


def test_interface_endpoints_private_dns_and_our_security_group(stage):
    sg_id = next(
        k for k in resources(stage.json("network"), "AWS::EC2::SecurityGroup") if k.startswith("EndpointSecurityGroup")
    )
    for svc, ep in _endpoints(stage).items():
        p = ep["Properties"]
        if svc == "s3":
            assert p["VpcEndpointType"] == "Gateway"
            continue
        assert p["VpcEndpointType"] == "Interface"
        assert p["PrivateDnsEnabled"] is True
        assert len(p["SubnetIds"]) == 2
        assert p["SecurityGroupIds"] == [{"Fn::GetAtt": [sg_id, "GroupId"]}]


def test_endpoint_security_group_admits_443_only_from_security_groups(stage):
    """No CIDR ingress anywhere on the endpoint SG: only the Lambda SG (here) and the
    environments' SGs (rules in their own stacks) on 443."""
    templates = [stage.json(w) for w in ("network", "source", "target")]
    net = templates[0]
    sg_id = next(
        k for k, r in resources(net, "AWS::EC2::SecurityGroup").items() if k.startswith("EndpointSecurityGroup")
    )
    sg = net["Resources"][sg_id]["Properties"]
    assert "SecurityGroupIngress" not in sg
    rules = []
    for t in templates:
        for r in resources(t, "AWS::EC2::SecurityGroupIngress").values():
            gid = json.dumps(r["Properties"]["GroupId"])
            if sg_id in gid:
                rules.append(r["Properties"])
    expected = 1 + (1 if stage.cfg.source.mode == "create" else 0) + 1  # lambda + source + target
    assert len(rules) == expected
    for p in rules:
        assert (p["IpProtocol"], p["FromPort"], p["ToPort"]) == ("tcp", 443, 443)
        assert "SourceSecurityGroupId" in p and "CidrIp" not in p


def test_created_vpc_has_configured_azs_and_cidrs(dev, prod):
    for b in (dev, prod):
        net = b.cfg.network
        t = b.json("network")
        vpc = next(iter(resources(t, "AWS::EC2::VPC").values()))
        assert vpc["Properties"]["CidrBlock"] == net.vpc_cidr
        subnets = resources(t, "AWS::EC2::Subnet")
        private = sorted(
            (s["Properties"]["AvailabilityZone"], s["Properties"]["CidrBlock"])
            for k, s in subnets.items()
            if "Private" in k
        )
        assert private == sorted(zip(net.availability_zones, net.private_subnet_cidrs, strict=True))
        public = sorted(s["Properties"]["CidrBlock"] for k, s in subnets.items() if "Public" in k)
        assert public == sorted(net.public_subnet_cidrs)
        assert len(resources(t, "AWS::EC2::NatGateway")) == (2 if net.nat_gateway else 0)


def test_existing_vpc_is_used_by_id_not_created(example):
    t = example.json("network")
    assert resources(t, "AWS::EC2::VPC") == {}
    assert resources(t, "AWS::EC2::Subnet") == {}
    net = example.cfg.network
    for svc, ep in _endpoints(example).items():
        assert ep["Properties"]["VpcId"] == net.vpc_id
        if svc == "s3":
            assert sorted(ep["Properties"]["RouteTableIds"]) == sorted(net.route_table_ids)
        else:
            assert sorted(ep["Properties"]["SubnetIds"]) == sorted(net.private_subnet_ids)
    env = next(iter(resources(example.json("target"), "AWS::MWAA::Environment").values()))
    assert sorted(env["Properties"]["NetworkConfiguration"]["SubnetIds"]) == sorted(net.private_subnet_ids)


def test_flow_logs_on(stage):
    t = stage.json("network")
    flow = next(iter(resources(t, "AWS::EC2::FlowLog").values()))["Properties"]
    assert flow["ResourceType"] == "VPC" and flow["TrafficType"] == "ALL"
    group = next(iter(resources(t, "AWS::Logs::LogGroup").values()))
    assert group["Properties"]["RetentionInDays"] == stage.cfg.network.flow_log_retention_days


def test_flow_log_role_trusts_only_this_accounts_flow_logs(stage):
    """Issue 12 item 12: the trust had no aws:SourceAccount (confused deputy)."""
    t = stage.json("network")
    (role,) = [r for k, r in resources(t, "AWS::IAM::Role").items() if k.startswith("FlowLogRole")]
    (st,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert st["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert st["Condition"]["StringEquals"] == {"aws:SourceAccount": stage.cfg.account}
    assert st["Condition"]["ArnLike"] == {
        "aws:SourceArn": f"arn:aws:ec2:{stage.cfg.region}:{stage.cfg.account}:vpc-flow-log/*"
    }


def test_synth_needs_no_lookups(stage):
    """No context lookup (AZs, VPCs) is pending: `cdk synth --no-lookups` cannot fail on one."""
    manifest = json.loads((Path(stage.assembly().directory) / "manifest.json").read_text())
    assert manifest.get("missing", []) == []
    assert any(a["type"] == "aws:cloudformation:stack" for a in manifest["artifacts"].values())


def test_lambda_security_group_only_https_out(stage):
    t = stage.json("network")
    sg = next(r for k, r in resources(t, "AWS::EC2::SecurityGroup").items() if k.startswith("LambdaSecurityGroup"))
    egress = as_list(sg["Properties"]["SecurityGroupEgress"])
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in egress] == [("tcp", 443, 443)]
