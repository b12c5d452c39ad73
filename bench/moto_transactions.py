"""Make moto's TransactWriteItems cost what DynamoDB's does, for benchmarks over large tables.

moto backs up every table a transaction touches with a deep copy, once per item, so each
transaction costs O(table size) and a 10,000-manifest registry takes hours to build. This backs
up only the items the transaction names and restores them on failure: the same outcome for a
transaction, at the cost of the items it touches. Benchmarks only; tests use moto as it is.
"""

from __future__ import annotations

import copy
from typing import Any
from unittest import mock

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType

_original = DynamoDBBackend.transact_write_items


def _touched(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    saved = []
    for entry in transact_items:
        op = next(iter(entry.values()))
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = op.get("Key") or op["Item"]
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
    return saved


def _restore(saved: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_value, range_value, item in reversed(saved):
        bucket = table.items[hash_value] if range_value is not None else table.items
        slot = range_value if range_value is not None else hash_value
        if item is None:
            bucket.pop(slot, None)
        else:
            bucket[slot] = item


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    saved = _touched(self, transact_items)
    tables = dict(self.tables)
    with mock.patch("moto.dynamodb.models.copy.deepcopy", lambda value: value):
        try:
            _original(self, transact_items)
        except Exception:
            self.tables.update(tables)
            _restore(saved)
            raise


def install() -> None:
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
