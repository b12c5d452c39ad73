"""What IAM checks for each boto3 operation, and a small evaluator for identity policies (Allow/Deny, wildcards).

The action names follow the S3 and DynamoDB authorization references: multipart steps are s3:PutObject,
HeadObject is s3:GetObject, ListParts is s3:ListMultipartUploadParts, ListObjectsV2 and HeadBucket are
s3:ListBucket, DeleteObjects is s3:DeleteObject on each key, and a DynamoDB transaction is authorised
item by item as PutItem/UpdateItem/DeleteItem/ConditionCheckItem on that item's table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Need:
    """One authorisation IAM performs: an action on a resource ARN, and the call that caused it."""

    action: str
    resource: str
    operation: str


class UnmappedOperation(Exception):
    """A boto3 operation this model does not know: add it with its IAM action(s)."""


# S3 operations on one object -> actions; copies also read their source.
_S3_OBJECT = {
    "GetObject": ["s3:GetObject"],
    "HeadObject": ["s3:GetObject"],
    "PutObject": ["s3:PutObject"],
    "CreateMultipartUpload": ["s3:PutObject"],
    "UploadPart": ["s3:PutObject"],
    "UploadPartCopy": ["s3:PutObject"],
    "CopyObject": ["s3:PutObject"],
    "CompleteMultipartUpload": ["s3:PutObject"],
    "AbortMultipartUpload": ["s3:AbortMultipartUpload"],
    "ListParts": ["s3:ListMultipartUploadParts"],
    "DeleteObject": ["s3:DeleteObject"],
    "GetObjectTagging": ["s3:GetObjectTagging"],
}
_S3_BUCKET = {
    "ListObjectsV2": ["s3:ListBucket"],
    "ListObjects": ["s3:ListBucket"],
    "HeadBucket": ["s3:ListBucket"],
    "ListMultipartUploads": ["s3:ListBucketMultipartUploads"],
}
_DYNAMODB_TABLE = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable"}
_TRANSACT_WRITE = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
# Managed transfer methods are not API operations; these are the operations they may call.
TRANSFER_METHODS = {
    "copy": ["HeadObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload"],
    "upload_file": ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"],
    "upload_fileobj": ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"],
    "download_file": ["HeadObject", "GetObject"],
    "download_fileobj": ["HeadObject", "GetObject"],
}


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def table_arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"


def _copy_source(source: Any) -> tuple[str, str]:
    if isinstance(source, dict):
        return str(source["Bucket"]), str(source["Key"])
    bucket, _, key = str(source).lstrip("/").partition("/")
    return bucket, key.split("?versionId=")[0]


def s3_needs(operation: str, params: dict[str, Any]) -> list[Need]:
    bucket = str(params.get("Bucket", ""))
    if operation in _S3_BUCKET:
        return [Need(a, f"arn:aws:s3:::{bucket}", operation) for a in _S3_BUCKET[operation]]
    if operation == "DeleteObjects":
        return [Need("s3:DeleteObject", object_arn(bucket, o["Key"]), operation) for o in params["Delete"]["Objects"]]
    if operation not in _S3_OBJECT:
        raise UnmappedOperation(f"s3 {operation}: add its IAM action to tests/unit/iam_model.py")
    needs = [Need(a, object_arn(bucket, str(params["Key"])), operation) for a in _S3_OBJECT[operation]]
    if "CopySource" in params:
        needs.append(Need("s3:GetObject", object_arn(*_copy_source(params["CopySource"])), operation))
    return needs


def dynamodb_needs(operation: str, params: dict[str, Any]) -> list[Need]:
    if operation in _DYNAMODB_TABLE:
        resource = table_arn(params["TableName"])
        if params.get("IndexName"):
            resource += f"/index/{params['IndexName']}"
        return [Need(f"dynamodb:{operation}", resource, operation)]
    if operation in {"BatchGetItem", "BatchWriteItem"}:
        return [Need(f"dynamodb:{operation}", table_arn(t), operation) for t in params["RequestItems"]]
    if operation == "TransactWriteItems":
        items = [(kind, body) for item in params["TransactItems"] for kind, body in item.items()]
        return [Need(f"dynamodb:{_TRANSACT_WRITE[kind]}", table_arn(body["TableName"]), operation) for kind, body in items]
    if operation == "TransactGetItems":
        return [Need("dynamodb:GetItem", table_arn(item["Get"]["TableName"]), operation) for item in params["TransactItems"]]
    raise UnmappedOperation(f"dynamodb {operation}: add its IAM action to tests/unit/iam_model.py")


def needs_for(service: str, operation: str, params: dict[str, Any]) -> list[Need]:
    return s3_needs(operation, params) if service == "s3" else dynamodb_needs(operation, params)


def actions_for_operation(service: str, operation: str) -> set[str]:
    """The actions an operation may need whatever its parameters (for calls found in the source, not run)."""
    if service == "s3":
        found = set(_S3_OBJECT.get(operation, [])) | set(_S3_BUCKET.get(operation, []))
        if operation == "DeleteObjects":
            found = {"s3:DeleteObject"}
        if operation in {"CopyObject", "UploadPartCopy"}:
            found.add("s3:GetObject")
    elif operation in _DYNAMODB_TABLE or operation in {"BatchGetItem", "BatchWriteItem"}:
        found = {f"dynamodb:{operation}"}
    elif operation == "TransactWriteItems":
        found = {f"dynamodb:{a}" for a in _TRANSACT_WRITE.values()} - {"dynamodb:ConditionCheckItem"}  # what our transactions contain
    elif operation == "TransactGetItems":
        found = {"dynamodb:GetItem"}
    else:
        found = set()
    if not found:
        raise UnmappedOperation(f"{service} {operation}: add its IAM action to tests/unit/iam_model.py")
    return found


# Policy evaluation (identity policies only: no conditions, principals or permission boundaries are used)


@cache
def _pattern(glob: str, case_sensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{regex}$", 0 if case_sensitive else re.IGNORECASE)


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Condition" in statement or "NotAction" in statement or "NotResource" in statement:
        raise ValueError(f"the evaluator does not model {sorted(statement)}; extend tests/unit/iam_model.py")
    actions = _listed(statement["Action"])
    resources = _listed(statement["Resource"])
    return any(_pattern(a, False).match(action) for a in actions) and any(_pattern(r, True).match(resource) for r in resources)


def allowed(policy: dict[str, Any], action: str, resource: str) -> bool:
    """IAM's rule for one identity policy: an explicit Deny wins, else some Allow must match."""
    statements = _listed_statements(policy)
    if any(s["Effect"] == "Deny" and _matches(s, action, resource) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, action, resource) for s in statements)


def allowed_anywhere(policy: dict[str, Any], action: str) -> bool:
    return any(s["Effect"] == "Allow" and any(_pattern(a, False).match(action) for a in _listed(s["Action"])) for s in _listed_statements(policy))


def granted_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in _listed_statements(policy) if s["Effect"] == "Allow" for a in _listed(s["Action"])}


def _listed_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statement = policy["Statement"]
    return [statement] if isinstance(statement, dict) else list(statement)


def denied(policy: dict[str, Any], needs: Iterable[Need]) -> list[Need]:
    return sorted({n for n in needs if not allowed(policy, n.action, n.resource)}, key=lambda n: (n.action, n.resource))
