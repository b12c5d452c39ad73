"""The GraphQL layer: zot's schema made executable with ariadne, and one request run through graphql-core.

Imported on the first search request only (never by `import app`): building the schema costs a few
hundred milliseconds once per process. Statuses follow zot's gqlgen server: a query that does not
parse or validate (unknown field, too deep, too many root fields) is 422 with GraphQL errors; a
resolver's refusal is 200 with `errors` beside `data`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ariadne import QueryType, load_schema_from_path, make_executable_schema
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    execute,
    parse,
    specified_rules,
    validate,
)

from chalicelib.search.catalog import SearchError
from chalicelib.search.queries import Queries, bounds
from chalicelib.spec.errors import RegistryError

log = logging.getLogger("zotless.search")

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
MAX_QUERY_BYTES = 64 * 1024
MAX_TOKENS = 5000
MAX_DEPTH = 15  # zot's UI and CLI send at most 6 levels; the standard introspection query (graphql-core, GraphiQL) needs 15
MAX_ROOT_FIELDS = 10  # aliases could otherwise repeat a global query many times in one request
FIELDS = {
    "RepoListWithNewestImage": "repo_list_with_newest_image",
    "ImageList": "image_list",
    "ExpandedRepoInfo": "expanded_repo_info",
    "GlobalSearch": "global_search",
    "ImageListForDigest": "image_list_for_digest",
    "Image": "image",
    "Referrers": "referrers",
    "DerivedImageList": "derived_image_list",
    "BaseImageList": "base_image_list",
    "StarredRepos": "starred_repos",
    "BookmarkedRepos": "bookmarked_repos",
    "CVEListForImage": "cve_list_for_image",
    "CVEDiffListForImages": "cve_diff_list_for_images",
    "ImageListForCVE": "image_list_for_cve",
    "ImageListWithCVEFixed": "image_list_with_cve_fixed",
}


@dataclass(frozen=True)
class Outcome:
    status: int
    document: dict[str, Any]


def _resolver(method: str) -> Any:
    def resolve(_parent: Any, info: Any, **arguments: Any) -> Any:
        bounds(arguments.get("requestedPage"))  # a bad page is refused before anything is read
        answer = getattr(info.context, method)(**arguments)
        if any(_selects(node.selection_set, "Vulnerabilities", info.fragments) for node in info.field_nodes):
            return info.context.with_vulnerabilities(answer)  # one batched read of the CVE results, only when asked for
        return answer

    return resolve


def _selects(selection_set: SelectionSetNode | None, name: str, fragments: dict[str, Any]) -> bool:
    """Whether a field of this name is asked for anywhere under a selection, through fragments."""
    found = _FragmentWalk(fragments, lambda field, inner: field.name.value == name or bool(inner), any).total(selection_set)
    return bool(found)


@cache
def schema() -> GraphQLSchema:
    """zot's schema text (shipped in this package) with a resolver per query; built once per process."""
    query = QueryType()
    for field, method in FIELDS.items():
        query.set_field(field, _resolver(method))
    return make_executable_schema(load_schema_from_path(str(SCHEMA_PATH)), query)


class _FragmentWalk:
    """Folds a selection through its fragments, walking each fragment once per document.

    A query whose fragments each spread the next one twice would otherwise be walked 2^n times
    (seconds of CPU from a kilobyte of query); a fragment cycle counts as nothing here and is
    refused by the spec's own NoFragmentCycles rule.
    """

    def __init__(self, fragments: dict[str, Any], field: Callable[[FieldNode, int], int], combine: Callable[[list[int]], int]) -> None:
        self.fragments = fragments
        self.field = field
        self.combine = combine
        self.done: dict[str, int] = {}
        self.open: set[str] = set()

    def total(self, selection_set: SelectionSetNode | None) -> int:
        values = []
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                values.append(self.field(selection, self.total(selection.selection_set)))
            elif isinstance(selection, InlineFragmentNode):
                values.append(self.total(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                values.append(self._fragment(selection.name.value))
        return self.combine(values) if values else 0

    def _fragment(self, name: str) -> int:
        if name not in self.done:
            if name in self.open or name not in self.fragments:
                return 0
            self.open.add(name)
            self.done[name] = self.total(self.fragments[name].selection_set)
            self.open.discard(name)
        return self.done[name]


def _depth(selection_set: SelectionSetNode | None, fragments: dict[str, Any]) -> int:
    """How deep a selection nests, through fragments."""
    return _FragmentWalk(fragments, lambda _field, inner: 1 + inner, max).total(selection_set)


def _root_fields(selection_set: SelectionSetNode, fragments: dict[str, Any]) -> int:
    """Fields asked for at the root (fields nested under them do not count)."""
    return _FragmentWalk(fragments, lambda _field, _inner: 1, sum).total(selection_set)


class BoundedQuery(ValidationRule):
    """Refuses operations nested deeper than MAX_DEPTH or asking more than MAX_ROOT_FIELDS queries at once."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        fragments = {d.name.value: d for d in self.context.document.definitions if hasattr(d, "type_condition")}
        if _depth(node.selection_set, fragments) > MAX_DEPTH:
            self.report_error(GraphQLError(f"the query nests deeper than {MAX_DEPTH} levels", node))
        if _root_fields(node.selection_set, fragments) > MAX_ROOT_FIELDS:
            self.report_error(GraphQLError(f"the query asks for more than {MAX_ROOT_FIELDS} fields at its root", node))


def _refused(message: str, status: int = 422) -> Outcome:
    return Outcome(status, {"errors": [{"message": message}]})


def _formatted(error: GraphQLError) -> dict[str, Any]:
    """A resolver's own refusal keeps its words; anything unexpected is logged and reported without internals."""
    original = error.original_error
    if original is None or isinstance(original, SearchError | GraphQLError):
        return dict(error.formatted)
    if isinstance(original, RegistryError):
        return {**error.formatted, "message": original.message}
    log.error("search resolver failed at %s", error.path, exc_info=original)
    return {**error.formatted, "message": "internal error"}


def run(queries: Queries, text: str | None, variables: Any = None, operation_name: str | None = None) -> Outcome:
    """Parse, validate and execute one GraphQL request."""
    if not text:
        return _refused("no operation provided")
    if len(text.encode()) > MAX_QUERY_BYTES:
        return _refused(f"the query is longer than {MAX_QUERY_BYTES} bytes")
    if variables is not None and not isinstance(variables, dict):
        return _refused("variables must be a JSON object", 400)
    try:
        document = parse(text, max_tokens=MAX_TOKENS)
    except GraphQLError as error:
        return Outcome(422, {"errors": [error.formatted]})
    errors = validate(schema(), document, [*specified_rules, BoundedQuery])
    if errors:
        return Outcome(422, {"errors": [e.formatted for e in errors[:20]]})
    result = execute(schema(), document, context_value=queries, variable_values=variables, operation_name=operation_name)
    if hasattr(result, "__await__"):  # the resolvers are synchronous; this never happens
        raise TypeError("search resolvers must not be asynchronous")
    response: dict[str, Any] = {"data": result.data}
    if result.errors:
        response["errors"] = [_formatted(e) for e in result.errors]
        if result.data is None and any(e.original_error is None for e in result.errors):
            return Outcome(422, response)  # variables that do not match the operation: a request error, as in gqlgen
    return Outcome(200, response)
