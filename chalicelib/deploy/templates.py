"""Generated deployment files: the CloudFormation resources merged into `chalice package`, and the IAM policies.

Both come from the stage's names in `.chalice/config.json` and from `aws.table_definitions`, like
`zotless init-aws`. After changing either, run `python -m chalicelib.deploy.templates`; a test fails
while the committed files differ from what this module renders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib.api.limits import TOO_LARGE_BODY
from chalicelib.config.schema import Config
from chalicelib.cve.database import PARTITION as CVE_PARTITION
from chalicelib.cve.database import PREFIX as DB_PREFIX
from chalicelib.cve.results import RESULTS_PREFIX
from chalicelib.deploy.provision import (
    API_FUNCTION,
    CHALICE_DIR,
    DB_UPDATE_FUNCTION,
    FUNCTIONS,
    GC_FUNCTION,
    OWNERSHIP_CONTROLS,
    PROJECT,
    PUBLIC_ACCESS_BLOCK,
    SCAN_FUNCTION,
    TTL_ATTRIBUTE,
    ProvisionError,
    ScanQueues,
    chalice_config,
    encryption_configuration,
    function_names,
    lifecycle_rule,
    scan_queues,
    stage_config,
    stage_environment,
    stage_names,
    ttl_table,
)
from chalicelib.storage.aws import table_definitions

DEPLOY_DIR = PROJECT / "deploy"

# The CloudFormation template merged into `chalice package`

_CFN_TABLE_KEYS = {"TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "GlobalSecondaryIndexes"}
_RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}  # deleting the stack never deletes images


def table_logical_ids(config: Config) -> dict[str, str]:
    cache = config.storage.cacheDriver
    return {cache.cacheTablename: "BlobTable", cache.repoMetaTablename: "RepoMetaTable", cache.uploadsTablename: "UploadsTable"}


def _cfn_table(definition: dict[str, Any], ttl: bool) -> dict[str, Any]:
    unknown = set(definition) - _CFN_TABLE_KEYS
    if unknown:
        raise ProvisionError(f"table_definitions uses {sorted(unknown)}: teach chalicelib.deploy.provision how CloudFormation spells them")
    properties = dict(definition)
    if ttl:
        properties["TimeToLiveSpecification"] = {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    return {"Type": "AWS::DynamoDB::Table", **_RETAIN, "Properties": properties}


def _cfn_bucket(config: Config) -> dict[str, Any]:
    rule = lifecycle_rule(config)
    lifecycle = {"Id": rule["ID"], "Status": rule["Status"], "AbortIncompleteMultipartUpload": rule["AbortIncompleteMultipartUpload"]}
    if rule["Filter"]["Prefix"]:
        lifecycle["Prefix"] = rule["Filter"]["Prefix"]
    sse = [{"ServerSideEncryptionByDefault": r["ApplyServerSideEncryptionByDefault"]} for r in encryption_configuration()["Rules"]]
    properties = {
        "BucketName": config.storage.storageDriver.bucket,
        "PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK,
        "BucketEncryption": {"ServerSideEncryptionConfiguration": sse},
        "OwnershipControls": OWNERSHIP_CONTROLS,
        "LifecycleConfiguration": {"Rules": [lifecycle]},
    }
    return {"Type": "AWS::S3::Bucket", **_RETAIN, "Properties": properties}


def too_large_response() -> dict[str, Any]:
    """API Gateway's own 413 (a body over its 10 MB limit never reaches Lambda): the same OCI error the function gives."""
    return {
        "StatusCode": "413",
        "ResponseParameters": {"Headers": {"Content-Type": "'application/json'", "Docker-Distribution-API-Version": "'registry/2.0'"}},
        "ResponseTemplates": {"application/json": TOO_LARGE_BODY},
    }


# A second front door, chosen per stage: `"zotless_function_url": true` in the stage's part of .chalice/config.json.
# chalice has no setting for it, and ignores keys it does not know. The REST API stays (unused, it costs nothing).
FUNCTION_URL_SETTING = "zotless_function_url"


def function_url_enabled(stage: str, chalice_dir: Path = CHALICE_DIR) -> bool:
    return bool(chalice_config(chalice_dir)["stages"][stage].get(FUNCTION_URL_SETTING, False))


def function_url_resources() -> dict[str, Any]:
    """A public function URL on the API function: the registry authenticates requests itself, as behind API Gateway.

    Since October 2025 a new URL needs both permissions; the second is limited to invocations through the URL.
    """
    function = {"Fn::GetAtt": ["APIHandler", "Arn"]}
    url_permission = {"Action": "lambda:InvokeFunctionUrl", "FunctionName": function, "Principal": "*", "FunctionUrlAuthType": "NONE"}
    invoke_permission = {"Action": "lambda:InvokeFunction", "FunctionName": function, "Principal": "*", "InvokedViaFunctionUrl": True}
    return {
        "APIHandlerUrl": {"Type": "AWS::Lambda::Url", "Properties": {"TargetFunctionArn": function, "AuthType": "NONE", "InvokeMode": "BUFFERED"}},
        "APIHandlerUrlPermission": {"Type": "AWS::Lambda::Permission", "Properties": url_permission},
        "APIHandlerUrlInvokePermission": {"Type": "AWS::Lambda::Permission", "Properties": invoke_permission},
    }


# chalice's logical ids: the function's name in CamelCase.
FUNCTION_LOGICAL_IDS = {API_FUNCTION: "APIHandler", GC_FUNCTION: "GarbageCollect", SCAN_FUNCTION: "CveScan", DB_UPDATE_FUNCTION: "CveDbUpdate"}
QUEUE_URL_VARIABLE = "ZOTLESS_CVE_QUEUE_URL"  # chalicelib.adapters.cvejobs reads it in the API function


def queue_resources(queues: ScanQueues) -> dict[str, Any]:
    """The scan queue, and the queue a scan goes to after failing MAX_RECEIVES times (SQS moves it: no function needs a permission)."""
    dead = {"QueueName": queues.dead_letter, "SqsManagedSseEnabled": True, **queues.dead_letter_attributes()}
    redrive = queues.redrive_policy({"Fn::GetAtt": ["CveScanDeadLetterQueue", "Arn"]})
    scans = {"QueueName": queues.name, "SqsManagedSseEnabled": True, **queues.attributes(), "RedrivePolicy": redrive}
    return {"CveScanDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": dead}, "CveScanQueue": {"Type": "AWS::SQS::Queue", "Properties": scans}}


def _function_overrides(stage: str, chalice_dir: Path) -> dict[str, Any]:
    """Pinned names (the policies' log groups name them), and the queue's URL for the API.

    chalice gives the scan function's event source the queue's ARN built from its name, which CloudFormation cannot
    order after the queue (and the merge cannot replace: it would merge the two intrinsics); DependsOn does, as the
    event source mapping follows its function.
    """
    names = function_names(stage, chalice_dir)
    overrides: dict[str, Any] = {FUNCTION_LOGICAL_IDS[f]: {"Properties": {"FunctionName": names[f]}} for f in FUNCTIONS}
    overrides["APIHandler"]["Properties"]["Environment"] = {"Variables": {QUEUE_URL_VARIABLE: {"Ref": "CveScanQueue"}}}
    overrides["CveScan"]["DependsOn"] = ["CveScanQueue"]
    return overrides


def cloudformation_template(stage: str, chalice_dir: Path = CHALICE_DIR) -> dict[str, Any]:
    """Resources to merge into chalice's SAM template: bucket, tables, scan queues, the 413 gateway response, pinned
    function names, and the function URL where the stage asks for one."""
    config = stage_config(stage, chalice_dir)
    resources: dict[str, Any] = {"RegistryBucket": _cfn_bucket(config)}
    logical = table_logical_ids(config)
    for definition in table_definitions(config):
        resources[logical[definition["TableName"]]] = _cfn_table(definition, definition["TableName"] == ttl_table(config))
    resources |= queue_resources(scan_queues(stage, chalice_dir))
    resources["RestAPI"] = {"Properties": {"GatewayResponses": {"REQUEST_TOO_LARGE": too_large_response()}}}
    resources |= _function_overrides(stage, chalice_dir)
    outputs = {"RegistryBucketName": {"Value": {"Ref": "RegistryBucket"}}}
    outputs |= {f"{logical_id}Name": {"Value": {"Ref": logical_id}} for logical_id in logical.values()}
    outputs |= {"CveScanQueueUrl": {"Value": {"Ref": "CveScanQueue"}}, "CveScanDeadLetterQueueUrl": {"Value": {"Ref": "CveScanDeadLetterQueue"}}}
    if function_url_enabled(stage, chalice_dir):
        resources |= function_url_resources()
        outputs["FunctionUrl"] = {"Value": {"Fn::GetAtt": ["APIHandlerUrl", "FunctionUrl"]}}
    return {"Resources": resources, "Outputs": outputs}


# The IAM policies: one role per function (chalice makes one per function when autogen_policy is false)


def _arns(stage: str, chalice_dir: Path) -> dict[str, Any]:
    config = stage_config(stage, chalice_dir)
    storage = config.storage
    bucket = storage.storageDriver.bucket
    root = f"arn:aws:s3:::{bucket}/{storage.storageDriver.rootdirectory}"
    cache = storage.cacheDriver
    table = "arn:aws:dynamodb:*:*:table/{}".format
    blob_indexes = [i["IndexName"] for d in table_definitions(config) if d["TableName"] == cache.cacheTablename for i in d.get("GlobalSecondaryIndexes", [])]
    return {
        "bucket": f"arn:aws:s3:::{bucket}",
        "objects": f"{root}*",
        "cve_db": f"{root}{DB_PREFIX}*",
        "cve_results": f"{root}{RESULTS_PREFIX}*",
        "tables": [table(cache.cacheTablename), table(cache.repoMetaTablename), table(cache.uploadsTablename)],
        "blob_table": table(cache.cacheTablename),
        "meta_table": table(cache.repoMetaTablename),
        "uploads_table": table(cache.uploadsTablename),
        "blob_indexes": [f"{table(cache.cacheTablename)}/index/{name}" for name in blob_indexes],
        "queue": f"arn:aws:sqs:*:*:{scan_queues(stage, chalice_dir).name}",
        "source": _source_object(stage_environment(stage, chalice_dir).get("ZOTLESS_CVE_SOURCE", ""), root),
    }


def _source_object(source: str, root: str) -> str | None:
    """An s3:// advisory source outside the registry's objects: the update function reads that one object (inside, it reads anyway)."""
    source_bucket, _, key = source.removeprefix("s3://").partition("/") if source.startswith("s3://") else ("", "", "")
    arn = f"arn:aws:s3:::{source_bucket}/{key}"
    return arn if key and not arn.startswith(root) else None


def _statement(sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources} | ({"Condition": condition} if condition else {})


def only_cve_items() -> dict[str, Any]:
    """Items of the `_cve` partition alone: scan results and the database pointer, never a repository's items."""
    return {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [CVE_PARTITION]}}


def _registry_statements(arns: dict[str, Any], gc: bool) -> list[dict[str, Any]]:
    """The API's and GC's: every object and table of the stage (both run the registry's code that writes and deletes)."""
    statements = [
        # Get/Head (and presigned GETs, signed with this role), Put incl. every multipart step, DeleteObjects,
        # aborting a cancelled upload, listing an upload's parts before completing it.
        _statement(
            "RegistryObjects", ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"], [arns["objects"]]
        ),
        # ListBucket also makes a missing key answer 404 rather than 403; GC lists stale uploads and pieces.
        _statement("RegistryBucket", ["s3:ListBucket", "s3:ListBucketMultipartUploads"] if gc else ["s3:ListBucket"], [arns["bucket"]]),
        # Transactions are authorised item by item as PutItem/UpdateItem/DeleteItem (no ConditionCheck items are used).
        _statement(
            "RegistryTables",
            ["dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
            arns["tables"],
        ),
    ]
    if gc:
        statements += [
            _statement("GcOrphanIndex", ["dynamodb:Query"], arns["blob_indexes"]),
            _statement("GcExpiredSessions", ["dynamodb:Scan"], [arns["uploads_table"]]),
        ]
    else:
        statements.append(_statement("QueueScans", ["sqs:SendMessage"], [arns["queue"]]))  # a push queues its manifest's scan
    return statements


def _scan_statements(arns: dict[str, Any], update: bool) -> list[dict[str, Any]]:
    """The CVE functions read anything (manifests, layers, advisories) but write only under _cve/ and in the repository table."""
    statements = [
        _statement("ReadImages", ["s3:GetObject"], [arns["objects"]]),
        _statement("RegistryBucket", ["s3:ListBucket"], [arns["bucket"]]),
        _statement("WriteResults", ["s3:PutObject"], [arns["cve_results"]]),  # findings too large for their item
        _statement("ReadIndex", ["dynamodb:GetItem"], [arns["blob_table"]]),
        _statement("ReadRepositories", ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"], [arns["meta_table"]]),
        # PutItem always names its item, so ForAllValues cannot hold vacuously.
        _statement("WriteResultsAndPointer", ["dynamodb:PutItem"], [arns["meta_table"]], only_cve_items()),
    ]
    if update:
        statements.append(_statement("WriteAdvisories", ["s3:DeleteObject", "s3:PutObject"], [arns["cve_db"]]))  # a version, and dropping old ones
        if arns["source"]:
            statements.append(_statement("ReadSource", ["s3:GetObject"], [arns["source"]]))
    else:
        # What Lambda's event source mapping does with this function's role.
        statements.append(_statement("ScanQueue", ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], [arns["queue"]]))
    return statements


def iam_policy(stage: str, function: str, chalice_dir: Path = CHALICE_DIR) -> dict[str, Any]:
    """Least privilege for one function; tests/unit/test_deploy_iam.py checks every action against what the code calls."""
    arns = _arns(stage, chalice_dir)
    log_group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{function_names(stage, chalice_dir)[function]}"
    if function in (SCAN_FUNCTION, DB_UPDATE_FUNCTION):
        statements = _scan_statements(arns, function == DB_UPDATE_FUNCTION)
    else:
        statements = _registry_statements(arns, function == GC_FUNCTION)
    statements.append(_statement("OwnLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [log_group, f"{log_group}:*"]))
    return {"Version": "2012-10-17", "Statement": [s for s in statements if s["Resource"]]}  # no GSI: no index statement


def policy_file(stage: str, function: str, chalice_dir: Path = CHALICE_DIR) -> Path:
    """The file the stage's config.json names for this function."""
    raw = chalice_config(chalice_dir)["stages"][stage]
    name = raw.get("lambda_functions", {}).get(function, {}).get("iam_policy_file") or raw.get("iam_policy_file") or f"policy-{stage}.json"
    return chalice_dir / name


def template_file(stage: str, deploy_dir: Path = DEPLOY_DIR) -> Path:
    return deploy_dir / f"resources-{stage}.json"


def rendered_files(chalice_dir: Path = CHALICE_DIR, deploy_dir: Path = DEPLOY_DIR) -> dict[Path, str]:
    """Every generated deployment file and its content, for each stage in config.json."""
    files = {}
    for stage in stage_names(chalice_dir):
        files[template_file(stage, deploy_dir)] = _json(cloudformation_template(stage, chalice_dir))
        for function in FUNCTIONS:
            files[policy_file(stage, function, chalice_dir)] = _json(iam_policy(stage, function, chalice_dir))
    return files


def render(chalice_dir: Path = CHALICE_DIR, deploy_dir: Path = DEPLOY_DIR) -> list[Path]:
    """Rewrite the generated files; returns those whose content changed."""
    changed = []
    for path, text in rendered_files(chalice_dir, deploy_dir).items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


if __name__ == "__main__":
    for written in render():
        print(f"wrote {written.relative_to(PROJECT)}")
