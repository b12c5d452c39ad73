"""What IAM checks for each boto3 operation, and a small evaluator for identity policies (Allow/Deny, wildcards).

The action names follow the S3 and DynamoDB authorization references: multipart steps are s3:PutObject,
HeadObject is s3:GetObject, ListParts is s3:ListMultipartUploadParts, ListObjectsV2 and HeadBucket are
s3:ListBucket, DeleteObjects is s3:DeleteObject on each key, and a DynamoDB transaction is authorised
item by item as PutItem/UpdateItem/DeleteItem/ConditionCheckItem on that item's table. An SQS operation
is the action of its name on the queue its URL names.
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
    keys: tuple[str, ...] = ()  # DynamoDB: the partition key values of the items touched (dynamodb:LeadingKeys)


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


def _leading(hash_key: str | None, *items: dict[str, Any]) -> tuple[str, ...]:
    """The partition key values of typed items or keys ({"S": "..."}), as dynamodb:LeadingKeys sees them."""
    return tuple(sorted({str(next(iter(item[hash_key].values()))) for item in items if hash_key and hash_key in item}))


def _query_leading(params: dict[str, Any], hash_key: str | None) -> tuple[str, ...]:
    """`#h = :h ...` (chalicelib.storage.dynamo's queries): the value compared with the partition key."""
    names = {v: k for k, v in params.get("ExpressionAttributeNames", {}).items()}
    placeholder = names.get(hash_key or "", hash_key or "")
    match = re.match(rf"^{re.escape(placeholder)} = (:\w+)", params.get("KeyConditionExpression", ""))
    return (str(next(iter(params["ExpressionAttributeValues"][match.group(1)].values()))),) if match else ()


def dynamodb_needs(operation: str, params: dict[str, Any], hash_keys: dict[str, str] | None = None) -> list[Need]:
    """hash_keys (table -> partition key attribute) fills each Need's keys, for policies that condition on dynamodb:LeadingKeys."""
    hash_of = (hash_keys or {}).get
    if operation in _DYNAMODB_TABLE:
        table = params["TableName"]
        resource = table_arn(table)
        keys: tuple[str, ...] = ()
        if params.get("IndexName"):
            resource += f"/index/{params['IndexName']}"
        elif operation == "Query":
            keys = _query_leading(params, hash_of(table))
        else:
            keys = _leading(hash_of(table), *[params[p] for p in ("Key", "Item") if p in params])
        return [Need(f"dynamodb:{operation}", resource, operation, keys)]
    if operation == "BatchGetItem":
        return [Need(f"dynamodb:{operation}", table_arn(t), operation, _leading(hash_of(t), *r["Keys"])) for t, r in params["RequestItems"].items()]
    if operation == "BatchWriteItem":
        return [Need(f"dynamodb:{operation}", table_arn(t), operation) for t in params["RequestItems"]]
    if operation == "TransactWriteItems":
        items = [(kind, body) for item in params["TransactItems"] for kind, body in item.items()]
        return [
            Need(
                f"dynamodb:{_TRANSACT_WRITE[kind]}",
                table_arn(body["TableName"]),
                operation,
                _leading(hash_of(body["TableName"]), body.get("Key") or body.get("Item") or {}),
            )
            for kind, body in items
        ]
    if operation == "TransactGetItems":
        return [Need("dynamodb:GetItem", table_arn(item["Get"]["TableName"]), operation) for item in params["TransactItems"]]
    raise UnmappedOperation(f"dynamodb {operation}: add its IAM action to tests/unit/iam_model.py")


# SQS authorises every operation on the queue the URL names, by an action of the operation's name.
_SQS_QUEUE = {"SendMessage", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "ChangeMessageVisibility"}


def queue_arn(queue_url: str) -> str:
    """https://sqs.<region>.amazonaws.com/<account>/<name> (or moto's localhost form) -> the queue's ARN."""
    account, name = queue_url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{REGION}:{account}:{name}"


def sqs_needs(operation: str, params: dict[str, Any]) -> list[Need]:
    if operation not in _SQS_QUEUE:
        raise UnmappedOperation(f"sqs {operation}: add its IAM action to tests/unit/iam_model.py")
    return [Need(f"sqs:{operation}", queue_arn(str(params["QueueUrl"])), operation)]


def needs_for(service: str, operation: str, params: dict[str, Any], hash_keys: dict[str, str] | None = None) -> list[Need]:
    if service == "sqs":
        return sqs_needs(operation, params)
    return s3_needs(operation, params) if service == "s3" else dynamodb_needs(operation, params, hash_keys)


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
    elif service == "sqs" and operation in _SQS_QUEUE:
        found = {f"sqs:{operation}"}
    else:
        found = set()
    if not found:
        raise UnmappedOperation(f"{service} {operation}: add its IAM action to tests/unit/iam_model.py")
    return found


# Policy evaluation (identity policies only: no principals or permission boundaries are used; one kind of condition)

# The one condition the policies use: items whose partition key is one of these values. ForAllValues holds for an
# empty set too (IAM's rule), so it is only given with actions whose every request names its items.
LEADING_KEYS = ("ForAllValues:StringEquals", "dynamodb:LeadingKeys")


@cache
def _pattern(glob: str, case_sensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{regex}$", 0 if case_sensitive else re.IGNORECASE)


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(condition: dict[str, Any] | None, keys: tuple[str, ...]) -> bool:
    if condition is None:
        return True
    operator, key = LEADING_KEYS
    if set(condition) != {operator} or set(condition[operator]) != {key}:
        raise ValueError(f"the evaluator models only {operator} on {key}, not {condition}; extend tests/unit/iam_model.py")
    return all(k in _listed(condition[operator][key]) for k in keys)


def _matches(statement: dict[str, Any], action: str, resource: str, keys: tuple[str, ...] = ()) -> bool:
    if "NotAction" in statement or "NotResource" in statement:
        raise ValueError(f"the evaluator does not model {sorted(statement)}; extend tests/unit/iam_model.py")
    actions = _listed(statement["Action"])
    resources = _listed(statement["Resource"])
    matched = any(_pattern(a, False).match(action) for a in actions) and any(_pattern(r, True).match(resource) for r in resources)
    return matched and _condition_holds(statement.get("Condition"), keys)


def allowed(policy: dict[str, Any], action: str, resource: str, keys: tuple[str, ...] = ()) -> bool:
    """IAM's rule for one identity policy: an explicit Deny wins, else some Allow must match."""
    statements = _listed_statements(policy)
    if any(s["Effect"] == "Deny" and _matches(s, action, resource, keys) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, action, resource, keys) for s in statements)


def allowed_anywhere(policy: dict[str, Any], action: str) -> bool:
    return any(s["Effect"] == "Allow" and any(_pattern(a, False).match(action) for a in _listed(s["Action"])) for s in _listed_statements(policy))


def granted_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in _listed_statements(policy) if s["Effect"] == "Allow" for a in _listed(s["Action"])}


def _listed_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statement = policy["Statement"]
    return [statement] if isinstance(statement, dict) else list(statement)


def denied(policy: dict[str, Any], needs: Iterable[Need]) -> list[Need]:
    return sorted({n for n in needs if not allowed(policy, n.action, n.resource, n.keys)}, key=lambda n: (n.action, n.resource))
