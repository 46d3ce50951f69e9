"""The data the review judges by: which property changes replace a resource, which
resources hold state, and what counts as world-open. One place; the analysis only reads it.

REPLACEMENT_PROPERTIES lists, per CloudFormation type, the property paths whose change makes
CloudFormation replace the resource (the registry schema's ``createOnlyProperties``; a test
checks every entry against the schemas cfn-lint ships). Paths use ``.`` between levels.
Only types this project deploys are listed: adding one is one row.
"""

from __future__ import annotations

from mwaa_common.settings import ALLOW_REPLACEMENT_METADATA, DELETE_REPLACED_METADATA, REPLACEMENT_PATHS

__all__ = ["ALLOW_REPLACEMENT_METADATA", "DELETE_REPLACED_METADATA"]

MWAA_ENVIRONMENT = "AWS::MWAA::Environment"
CLONE_RESOURCE = "Custom::MwaaEnvironmentClone"

REPLACEMENT_PROPERTIES: dict[str, tuple[str, ...]] = {
    # From the one settings table. A replacement with the same custom Name fails: renaming is the
    # only way through.
    MWAA_ENVIRONMENT: REPLACEMENT_PATHS,
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::S3::BucketPolicy": ("Bucket",),
    "AWS::KMS::Alias": ("AliasName",),
    "AWS::IAM::Role": ("RoleName", "Path"),
    "AWS::EC2::VPC": ("CidrBlock",),
    "AWS::EC2::Subnet": ("VpcId", "AvailabilityZone", "CidrBlock"),
    "AWS::EC2::SecurityGroup": ("GroupDescription", "GroupName", "VpcId"),
    "AWS::EC2::VPCEndpoint": ("ServiceName", "VpcEndpointType", "VpcId"),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::Lambda::Function": ("FunctionName",),
    "AWS::CodePipeline::Pipeline": ("Name",),
}

# Resources whose loss loses data or a running system: a logical ID that disappears between
# the baseline and this synth (a rename or a removal) deletes the old one.
STATEFUL_TYPES: frozenset[str] = frozenset(
    {
        "AWS::MWAA::Environment",
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
    }
)

WORLD_CIDRS: frozenset[str] = frozenset({"0.0.0.0/0", "::/0"})

# Bucket ACLs that grant access beyond the owner.
PUBLIC_ACLS: frozenset[str] = frozenset({"PublicRead", "PublicReadWrite", "AuthenticatedRead"})

PUBLIC_ACCESS_BLOCK_KEYS: tuple[str, ...] = (
    "BlockPublicAcls",
    "BlockPublicPolicy",
    "IgnorePublicAcls",
    "RestrictPublicBuckets",
)

# cdk-nag acknowledgements whose reason is shorter than this are flagged: a reviewer must be
# able to check the reason.
MIN_ACK_REASON_CHARS = 10
# Severity of a change the review refuses (exit status 3), never acknowledgeable.
REFUSED = "refused"
