"""EMR shapes (pure): EmrCluster -> RunJobFlow overrides, EMR activities -> steps, and the
DynamoDB export template (an EmrActivity running the DynamoDB export tool from a DynamoDB data
node into an S3 data node) recognised so it becomes DynamoDBToS3Operator."""

from __future__ import annotations

from typing import Any

from tools.datapipeline.definition import Pipeline, PipelineObject

DEFAULT_INSTANCE_TYPE = "m5.xlarge"
STEP_ON_FAILURE = "CANCEL_AND_WAIT"  # later steps of the activity are cancelled, the sensor sees it


def split_step(step: str) -> list[str]:
    """Data Pipeline's "jar,arg1,arg2": ``\\,`` is a literal comma, and commas inside ``#{...}``
    expressions do not split."""
    parts: list[str] = []
    current: list[str] = []
    depth, i = 0, 0
    while i < len(step):
        ch = step[i]
        if ch == "\\" and step[i + 1 : i + 2] == ",":
            current.append(",")
            i += 2
            continue
        if step.startswith("#{", i):
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        if ch == "," and not depth:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _variables(obj: PipelineObject, flag: str) -> list[str]:
    out: list[str] = []
    for var in obj.all("scriptVariable"):
        out += [flag, var]
    return out


def _step(name: str, jar: str, args: list[str], main_class: str | None = None) -> dict[str, Any]:
    hadoop: dict[str, Any] = {"Jar": jar}
    if main_class:
        hadoop["MainClass"] = main_class
    hadoop["Args"] = args
    return {"Name": name, "ActionOnFailure": STEP_ON_FAILURE, "HadoopJarStep": hadoop}


def steps_of(obj: PipelineObject) -> tuple[list[dict[str, Any]], list[str]]:
    """EMR steps of an EMR activity and the TODOs of what they leave out."""
    todos = [
        f"{key} is not converted"
        for key in (
            "preStepCommand",
            "postStepCommand",
            "hadoopQueue",
            "preActivityTaskConfig",
            "postActivityTaskConfig",
        )
        if obj.get(key) or obj.ref(key)
    ]
    steps: list[dict[str, Any]] = []
    if obj.type == "EmrActivity":
        for i, step in enumerate(obj.all("step"), 1):
            jar, *args = split_step(step)
            steps.append(_step(f"{obj.id}-{i}", jar, args))
    elif obj.type in ("HiveActivity", "HiveCopyActivity"):
        script, uri = obj.get("hiveScript"), obj.get("scriptUri")
        if obj.type == "HiveCopyActivity":
            todos.append(
                "HiveCopyActivity (filterSql between DynamoDB/S3 nodes) is not converted; write the Hive query"
            )
        elif uri:
            steps.append(
                _step(
                    obj.id,
                    "command-runner.jar",
                    ["hive-script", "--run-hive-script", "--args", "-f", uri, *_variables(obj, "-d")],
                )
            )
        elif script:
            steps.append(_step(obj.id, "command-runner.jar", ["hive", *_variables(obj, "-d"), "-e", script]))
            if "${input" in script or "${output" in script:
                todos.append("the Hive script reads the staged ${input1}/${output1} tables; create them in the script")
    elif obj.type == "PigActivity":
        uri = obj.get("scriptUri")
        if uri:
            steps.append(
                _step(
                    obj.id,
                    "command-runner.jar",
                    ["pig-script", "--run-pig-script", "--args", "-f", uri, *_variables(obj, "-p")],
                )
            )
        elif obj.get("script"):
            todos.append("inline Pig script: upload it to S3 and run it with pig-script -f")
    elif obj.type == "HadoopActivity" and obj.get("jarUri"):
        steps.append(_step(obj.id, obj.get("jarUri") or "", obj.all("argument"), obj.get("mainClass")))
    return steps, todos


def _configuration(pipeline: Pipeline, conf: PipelineObject) -> dict[str, Any]:
    out: dict[str, Any] = {"Classification": conf.get("classification") or ""}
    props = {}
    for ref in conf.refs("property"):
        prop = pipeline.objects[ref]
        props[prop.get("key") or ""] = prop.get("value") or ""
    if props:
        out["Properties"] = props
    nested = [_configuration(pipeline, pipeline.objects[r]) for r in conf.refs("configuration")]
    if nested:
        out["Configurations"] = nested
    return out


def _instance_groups(cluster: PipelineObject) -> list[dict[str, Any]]:
    groups = [
        {
            "Name": "Master",
            "Market": "ON_DEMAND",
            "InstanceRole": "MASTER",
            "InstanceType": cluster.get("masterInstanceType") or DEFAULT_INSTANCE_TYPE,
            "InstanceCount": 1,
        }
    ]
    for role in ("core", "task"):
        count = int(cluster.get(f"{role}InstanceCount") or (1 if role == "core" else 0))
        if count:
            groups.append(
                {
                    "Name": role.capitalize(),
                    "Market": "ON_DEMAND",
                    "InstanceRole": role.upper(),
                    "InstanceType": cluster.get(f"{role}InstanceType") or DEFAULT_INSTANCE_TYPE,
                    "InstanceCount": count,
                }
            )
    return groups


def cluster_overrides(pipeline: Pipeline, cluster: PipelineObject) -> tuple[dict[str, Any], list[str]]:
    """``job_flow_overrides`` of EmrCreateJobFlowOperator and the TODOs of what is left out."""
    todos: list[str] = []
    out: dict[str, Any] = {"Name": cluster.id}
    if cluster.get("releaseLabel"):
        out["ReleaseLabel"] = cluster.get("releaseLabel")
    else:
        todos.append(f"amiVersion {cluster.get('amiVersion')}: set a ReleaseLabel (EMR 5.x/6.x/7.x)")
    apps = cluster.all("applications")
    if apps:
        out["Applications"] = [{"Name": a} for a in apps]
    instances: dict[str, Any] = {
        "InstanceGroups": _instance_groups(cluster),
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    }
    for key, arg in (("subnetId", "Ec2SubnetId"), ("keyPair", "Ec2KeyName")):
        if cluster.get(key):
            instances[arg] = cluster.get(key)
    out["Instances"] = instances
    if cluster.get("resourceRole"):
        out["JobFlowRole"] = cluster.get("resourceRole")
    if cluster.get("role"):
        out["ServiceRole"] = cluster.get("role")
        todos.append(
            f"ServiceRole/JobFlowRole are the Data Pipeline roles ({cluster.get('role')}, "
            f"{cluster.get('resourceRole')}); EMR needs its own (EMR_DefaultRole, EMR_EC2_DefaultRole)"
        )
    actions = []
    for i, action in enumerate(cluster.all("bootstrapAction"), 1):
        path, *args = split_step(action)
        actions.append({"Name": f"bootstrap-{i}", "ScriptBootstrapAction": {"Path": path, "Args": args}})
    if actions:
        out["BootstrapActions"] = actions
    confs = [_configuration(pipeline, pipeline.objects[r]) for r in cluster.refs("configuration")]
    if confs:
        out["Configurations"] = confs
    if cluster.get("pipelineLogUri"):
        out["LogUri"] = cluster.get("pipelineLogUri")
    out["VisibleToAllUsers"] = True
    if not cluster.get("masterInstanceType"):
        todos.append(f"no masterInstanceType: {DEFAULT_INSTANCE_TYPE} assumed")
    return out, todos


def dynamodb_export(pipeline: Pipeline, obj: PipelineObject) -> tuple[PipelineObject, PipelineObject] | None:
    """(table node, S3 node) when ``obj`` is the DynamoDB export template's activity."""
    if obj.type != "EmrActivity" or not any("DynamoDBExport" in s for s in obj.all("step")):
        return None
    src = pipeline.objects.get(obj.ref("input") or "")
    dst = pipeline.objects.get(obj.ref("output") or "")
    if src is None or dst is None or src.type != "DynamoDBDataNode" or dst.type != "S3DataNode":
        return None
    return src, dst
