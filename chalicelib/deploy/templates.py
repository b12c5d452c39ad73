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
from chalicelib.deploy.provision import (
    API_FUNCTION,
    CHALICE_DIR,
    GC_FUNCTION,
    OWNERSHIP_CONTROLS,
    PROJECT,
    PUBLIC_ACCESS_BLOCK,
    TTL_ATTRIBUTE,
    ProvisionError,
    chalice_config,
    encryption_configuration,
    function_names,
    lifecycle_rule,
    stage_config,
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


def cloudformation_template(stage: str, chalice_dir: Path = CHALICE_DIR) -> dict[str, Any]:
    """Resources to merge into chalice's SAM template: bucket, tables, the 413 gateway response, pinned function names,
    and the function URL where the stage asks for one."""
    config = stage_config(stage, chalice_dir)
    names = function_names(stage, chalice_dir)
    resources: dict[str, Any] = {"RegistryBucket": _cfn_bucket(config)}
    logical = table_logical_ids(config)
    for definition in table_definitions(config):
        resources[logical[definition["TableName"]]] = _cfn_table(definition, definition["TableName"] == ttl_table(config))
    resources["RestAPI"] = {"Properties": {"GatewayResponses": {"REQUEST_TOO_LARGE": too_large_response()}}}
    resources["APIHandler"] = {"Properties": {"FunctionName": names[API_FUNCTION]}}
    resources["GarbageCollect"] = {"Properties": {"FunctionName": names[GC_FUNCTION]}}
    outputs = {"RegistryBucketName": {"Value": {"Ref": "RegistryBucket"}}}
    outputs |= {f"{logical_id}Name": {"Value": {"Ref": logical_id}} for logical_id in logical.values()}
    if function_url_enabled(stage, chalice_dir):
        resources |= function_url_resources()
        outputs["FunctionUrl"] = {"Value": {"Fn::GetAtt": ["APIHandlerUrl", "FunctionUrl"]}}
    return {"Resources": resources, "Outputs": outputs}


# The IAM policies: one role per function (chalice makes one per function when autogen_policy is false)


def _arns(config: Config) -> dict[str, Any]:
    storage = config.storage
    bucket = storage.storageDriver.bucket
    cache = storage.cacheDriver
    table = "arn:aws:dynamodb:*:*:table/{}".format
    blob_indexes = [i["IndexName"] for d in table_definitions(config) if d["TableName"] == cache.cacheTablename for i in d.get("GlobalSecondaryIndexes", [])]
    return {
        "bucket": f"arn:aws:s3:::{bucket}",
        "objects": f"arn:aws:s3:::{bucket}/{storage.storageDriver.rootdirectory}*",
        "tables": [table(cache.cacheTablename), table(cache.repoMetaTablename), table(cache.uploadsTablename)],
        "uploads_table": table(cache.uploadsTablename),
        "blob_indexes": [f"{table(cache.cacheTablename)}/index/{name}" for name in blob_indexes],
    }


def iam_policy(stage: str, function: str, chalice_dir: Path = CHALICE_DIR) -> dict[str, Any]:
    """Least privilege for one function; tests/unit/test_deploy.py checks every action against what the code calls."""
    arns = _arns(stage_config(stage, chalice_dir))
    log_group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{function_names(stage, chalice_dir)[function]}"
    gc = function == GC_FUNCTION
    statements = [
        {
            # Get/Head (and presigned GETs, signed with this role), Put incl. every multipart step, DeleteObjects,
            # aborting a cancelled upload, listing an upload's parts before completing it.
            "Sid": "RegistryObjects",
            "Effect": "Allow",
            "Action": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
            "Resource": [arns["objects"]],
        },
        {
            # ListBucket also makes a missing key answer 404 rather than 403; GC lists stale uploads and pieces.
            "Sid": "RegistryBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"] if gc else ["s3:ListBucket"],
            "Resource": [arns["bucket"]],
        },
        {
            # Transactions are authorised item by item as PutItem/UpdateItem/DeleteItem (no ConditionCheck items are used).
            "Sid": "RegistryTables",
            "Effect": "Allow",
            "Action": ["dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
            "Resource": arns["tables"],
        },
    ]
    if gc:
        statements += [
            {"Sid": "GcOrphanIndex", "Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": arns["blob_indexes"]},
            {"Sid": "GcExpiredSessions", "Effect": "Allow", "Action": ["dynamodb:Scan"], "Resource": [arns["uploads_table"]]},
        ]
    statements.append(
        {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group, f"{log_group}:*"],
        }
    )
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
        for function in (API_FUNCTION, GC_FUNCTION):
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
