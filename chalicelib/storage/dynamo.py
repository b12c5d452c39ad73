"""Thin helpers over the DynamoDB client: plain Python values in and out, conditional failures as booleans.

DynamoDB cancels a transaction that touches an item another transaction is writing
(`TransactionConflict`) and refuses single writes to such an item (`TransactionConflictException`);
neither says anything about the data, so both are retried with backoff here, as are throttled
transactions. A caller only ever sees a condition that really failed, or `TOOMANYREQUESTS` once
the retries run out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.spec.errors import TooManyRequests
from chalicelib.storage.retries import ATTEMPTS, backoff

# Cancellation reasons and error codes that say "try again", never "the condition is false".
RETRYABLE_REASONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
RETRYABLE_ERRORS = {"TransactionConflictException"}  # botocore's standard retries already take throttling

# How a read may see the table: every call site names one, and why. An eventually consistent read costs half.
STRONG = "strong"  # a decision follows (a write, a 404 that ends a push), or a race needs the latest item
EVENTUAL = "eventual"  # listings and reports: a write of the last second may be missing, as the spec allows
FRESH_MISS = "eventual, strong on a miss"  # pulls: a hit may be a second old (a tag just moved); a miss is re-read so a 201 is never followed by a 404

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, list):
        return [_dynamo_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _dynamo_value(v) for k, v in value.items()}
    return value


def encode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_dynamo_value(v)) for k, v in item.items() if v is not None}


def decode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_conditional_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def busy() -> TooManyRequests:
    return TooManyRequests("the index is busy with concurrent writes; retry", headers={"Retry-After": "1"})


def retrying(call: Callable[[], Any]) -> Any:
    """Run one DynamoDB call, retrying what DynamoDB says is contention rather than a false condition."""
    for attempt in range(ATTEMPTS):
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) not in RETRYABLE_ERRORS:
                raise
            backoff(attempt)
    raise busy()


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-item reasons of a cancelled transaction, so callers can tell which condition failed."""
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code", "None")) for r in reasons]


class Table:
    """One DynamoDB table with a partition key and an optional sort key."""

    def __init__(self, client: Any, name: str, hash_key: str, range_key: str | None = None) -> None:
        self.client = client
        self.name = name
        self.hash_key = hash_key
        self.range_key = range_key

    def key(self, hash_value: str, range_value: str | None = None) -> dict[str, Any]:
        key = {self.hash_key: hash_value}
        if self.range_key:
            key[self.range_key] = range_value
        return encode(key)

    def get(self, hash_value: str, range_value: str | None = None, read: str = STRONG) -> dict[str, Any] | None:
        """One item, read as `read` says (STRONG, EVENTUAL or FRESH_MISS)."""
        key = self.key(hash_value, range_value)
        response = self.client.get_item(TableName=self.name, Key=key, ConsistentRead=read == STRONG)
        if "Item" not in response and read == FRESH_MISS:
            response = self.client.get_item(TableName=self.name, Key=key, ConsistentRead=True)
        return decode(response["Item"]) if "Item" in response else None

    def batch_get(self, keys: list[tuple[str, str]], attributes: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Fetch up to any number of items, 100 per call, retrying what DynamoDB leaves unprocessed.

        `attributes` (with the keys) limits what comes back: large items then stay under the 16 MB response cap.
        """
        found: list[dict[str, Any]] = []
        projection: dict[str, Any] = {}
        if attributes:
            names = {f"#p{n}": name for n, name in enumerate(dict.fromkeys((self.hash_key, *((self.range_key,) if self.range_key else ()), *attributes)))}
            projection = {"ProjectionExpression": ",".join(names), "ExpressionAttributeNames": names}
        for start in range(0, len(keys), 100):
            request = {"Keys": [self.key(h, r) for h, r in keys[start : start + 100]], "ConsistentRead": True, **projection}
            pending: dict[str, Any] = {self.name: request}
            for attempt in range(ATTEMPTS * 2):
                response = retrying(lambda request=pending: self.client.batch_get_item(RequestItems=request))
                found.extend(decode(i) for i in response["Responses"].get(self.name, []))
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                backoff(attempt)
            else:
                raise busy()
        return found

    def put(self, item: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None) -> bool:
        """Put an item; False when the condition does not hold."""
        extra = _expression_parts(condition, values, None)
        try:
            retrying(lambda: self.client.put_item(TableName=self.name, Item=encode(item), **extra))
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def update(
        self,
        key: tuple[str, str | None],
        expression: str,
        values: dict[str, Any] | None = None,
        condition: str | None = None,
        names: dict[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Update an item and return its new attributes, or None when the condition does not hold."""
        extra = _expression_parts(condition, values, names)
        try:
            response = retrying(
                lambda: self.client.update_item(TableName=self.name, Key=self.key(*key), UpdateExpression=expression, ReturnValues="ALL_NEW", **extra)
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise
        return decode(response.get("Attributes", {}))

    def delete(
        self,
        hash_value: str,
        range_value: str | None = None,
        condition: str | None = None,
        values: dict[str, Any] | None = None,
        names: dict[str, str] | None = None,
    ) -> bool:
        extra = _expression_parts(condition, values, names)
        try:
            retrying(lambda: self.client.delete_item(TableName=self.name, Key=self.key(hash_value, range_value), **extra))
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def query(self, hash_value: str, prefix: str = "", after: str | None = None, limit: int | None = None, read: str = STRONG) -> Iterator[dict[str, Any]]:
        """Items of one partition whose sort key starts with prefix, in sort-key order, after a cursor (STRONG or EVENTUAL)."""
        condition = "#h = :h"
        values: dict[str, Any] = {":h": hash_value}
        names = {"#h": self.hash_key}
        if prefix and self.range_key:
            condition += " AND begins_with(#r, :p)"
            values[":p"] = prefix
            names["#r"] = self.range_key
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": encode(values),
            "ExpressionAttributeNames": names,
            "ConsistentRead": read != EVENTUAL,
        }
        if after is not None:
            request["ExclusiveStartKey"] = self.key(hash_value, after)
        remaining = limit
        while True:
            if remaining is not None:
                request["Limit"] = remaining
            response = self.client.query(**request)
            for item in response.get("Items", []):
                yield decode(item)
            if remaining is not None:
                remaining -= len(response.get("Items", []))
                if remaining <= 0:
                    return
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def scan(self, condition: str, values: dict[str, Any], names: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item matching a filter, page by page; only for small tables (upload sessions)."""
        request: dict[str, Any] = {"TableName": self.name, "FilterExpression": condition, "ExpressionAttributeValues": encode(values)}
        if names:
            request["ExpressionAttributeNames"] = names
        while True:
            response = self.client.scan(**request)
            for item in response.get("Items", []):
                yield decode(item)
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def query_index(self, index: str, hash_key: str, hash_value: str, range_key: str, below: int) -> Iterator[dict[str, Any]]:
        """Items of a global secondary index partition whose sort key is below a bound (eventually consistent)."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": index,
            "KeyConditionExpression": "#h = :h AND #r < :below",
            "ExpressionAttributeNames": {"#h": hash_key, "#r": range_key},
            "ExpressionAttributeValues": encode({":h": hash_value, ":below": below}),
        }
        while True:
            response = self.client.query(**request)
            for item in response.get("Items", []):
                yield decode(item)
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def transact(self, operations: list[dict[str, Any]]) -> list[str] | None:
        """Run a write transaction; None on success, else the per-item cancellation reasons.

        A cancellation whose reasons are only contention is retried; once any condition really
        failed, the reasons go back to the caller, who decides what that means.
        """
        for attempt in range(ATTEMPTS):
            try:
                retrying(lambda: self.client.transact_write_items(TransactItems=operations))
                return None
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                reasons = cancellation_codes(exc)
                if "ConditionalCheckFailed" in reasons or not set(reasons) & RETRYABLE_REASONS:
                    return reasons
            backoff(attempt)
        raise busy()

    def op_put(
        self, item: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None, names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return {"Put": {"TableName": self.name, "Item": encode(item), **_expression_parts(condition, values, names)}}

    def op_update(
        self,
        key: tuple[str, str | None],
        expression: str,
        values: dict[str, Any] | None = None,
        condition: str | None = None,
        names: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {"TableName": self.name, "Key": self.key(*key), "UpdateExpression": expression, **_expression_parts(condition, values, names)}
        return {"Update": body}

    def op_delete(
        self, key: tuple[str, str | None], condition: str | None = None, values: dict[str, Any] | None = None, names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return {"Delete": {"TableName": self.name, "Key": self.key(*key), **_expression_parts(condition, values, names)}}


def _expression_parts(condition: str | None, values: dict[str, Any] | None, names: dict[str, str] | None) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    if condition:
        parts["ConditionExpression"] = condition
    if values:
        parts["ExpressionAttributeValues"] = encode(values)
    if names:
        parts["ExpressionAttributeNames"] = names
    return parts


def seen_uses(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A condition that an item's use count is still what was read."""
    return ("uses = :seen", {":seen": item["uses"]}) if "uses" in item else ("attribute_not_exists(uses)", {})
