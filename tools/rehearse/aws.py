"""S3, KMS and CloudWatch Logs on a moto server bound to 127.0.0.1 (a free port).

It holds what the CDK app creates for one migration: a KMS key, the migration bucket
encrypted with it (public access blocked), and the MWAA log groups of the source and the
target environment (``airflow-{env}-{Task,DAGProcessing,Scheduler,WebServer,Worker}``).
Child processes reach it through ``env()`` (AWS_ENDPOINT_URL and dummy credentials).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

REGION = "us-east-1"
LOG_KINDS = ("DAGProcessing", "Scheduler", "Task", "WebServer", "Worker")
# removed from a child's environment: a named profile would win over the dummy credentials
UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "rehearsal",
    "AWS_SECRET_ACCESS_KEY": "rehearsal",
    "AWS_SESSION_TOKEN": "rehearsal",
}


def log_groups(environment: str) -> list[str]:
    return [f"airflow-{environment}-{kind}" for kind in LOG_KINDS]


class MotoStack:
    def __init__(self, *, source_env: str, target_env: str, bucket: str | None = None):
        self.source_env, self.target_env = source_env, target_env
        self.bucket = bucket or f"mwaa-migration-{uuid.uuid4()}"
        self.kms_key_arn = ""
        self.endpoint = ""
        self._server: Any = None

    # the server ---------------------------------------------------------------------
    def start(self) -> MotoStack:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._wait_ready(host, port)
        self._reset()
        self._create_resources()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @staticmethod
    def _wait_ready(host: str, port: int) -> None:
        with socket.create_connection((host, port), timeout=5):
            pass

    def _reset(self) -> None:
        """moto keeps its state per process: start from nothing, as a new account would."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 in a child process at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **DUMMY_CREDENTIALS,
            # never pick up a user's real profile or instance credentials
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str):
        import boto3

        return boto3.session.Session(
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=REGION,
        ).client(service, endpoint_url=self.endpoint)

    # what the CDK app would create ---------------------------------------------------
    def _create_resources(self) -> None:
        kms = self.client("kms")
        key = kms.create_key(Description="mwaa migration bucket (rehearsal)", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
        self.kms_key_arn = key["Arn"]
        kms.create_alias(AliasName="alias/mwaa-migration-rehearsal", TargetKeyId=key["KeyId"])
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        s3.put_bucket_encryption(
            Bucket=self.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": self.kms_key_arn,
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        s3.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        logs = self.client("logs")
        for env in dict.fromkeys((self.source_env, self.target_env)):
            for group in log_groups(env):
                logs.create_log_group(logGroupName=group)

    # helpers for the rehearsal ---------------------------------------------------------
    def upload_files(self, folder: str, keys: list[str], prefix: str) -> int:
        """Upload ``folder/key`` to ``prefix + key`` for each key (relative, "/"-separated)."""
        s3 = self.client("s3")
        for key in keys:
            s3.upload_file(os.path.join(folder, *key.split("/")), self.bucket, prefix + key)
        return len(keys)

    def get_json(self, key: str) -> dict | None:
        import json

        s3 = self.client("s3")
        try:
            body = s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def list_keys(self, prefix: str) -> list[str]:
        s3 = self.client("s3")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def put_task_log(self, stream: str, messages: list[str], timestamps_ms: list[int]) -> None:
        """One source stream; ``timestamps_ms``: one per message (inside the task's run)."""
        logs = self.client("logs")
        group = f"airflow-{self.source_env}-Task"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": t, "message": m} for t, m in zip(timestamps_ms, messages, strict=True)],
        )

    def read_task_log(self, environment: str, stream: str) -> list[dict]:
        """Every event of one stream of ``airflow-{environment}-Task`` (timestamp, message)."""
        logs = self.client("logs")
        out: list[dict] = []
        kw = {"logGroupName": f"airflow-{environment}-Task", "logStreamName": stream, "startFromHead": True}
        while True:
            page = logs.get_log_events(**kw)
            out += [{"timestamp": e["timestamp"], "message": e["message"]} for e in page.get("events", [])]
            if not page.get("events") or page.get("nextForwardToken") == kw.get("nextToken"):
                return out
            kw["nextToken"] = page["nextForwardToken"]

    def count_log_streams(self, environment: str) -> int:
        logs = self.client("logs")
        n = 0
        for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=f"airflow-{environment}-Task"):
            n += len(page.get("logStreams", []))
        return n
