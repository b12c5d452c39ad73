"""zot's extension endpoints: the GraphQL search, the extension list, the UI's start-up config, user preferences.

The API's router imports this module on the first extension request, so `import app` (a Lambda cold
start) never loads it, ariadne or graphql-core.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.config.schema import Config
from chalicelib.model.access import Caller
from chalicelib.model.locations import RoutedRegistry
from chalicelib.search.catalog import Searcher
from chalicelib.spec.errors import NameUnknown, RegistryError
from chalicelib.spec.http import Headers, Request, Response
from chalicelib.spec.references import validate_name
from chalicelib.storage.userprefs import UserPrefs

SEARCH_PATH = "/v2/_zot/ext/search"
MGMT_PATH = "/v2/_zot/ext/mgmt"
USERPREFS_PATH = "/v2/_zot/ext/userprefs"
DISCOVER_PATH = "/v2/_oci/ext/discover"
MAX_BODY = 128 * 1024
ACTIONS = {"toggleStar": "stars", "toggleBookmark": "bookmarks"}


class BadParameter(RegistryError):
    code = "UNSUPPORTED"
    status = 400
    default_message = "missing or invalid parameter"


def _json(document: Any, status: int = 200) -> Response:
    body = json.dumps(document).encode()
    return Response(status, Headers({"Content-Type": "application/json", "Content-Length": str(len(body))}), body)


def _index(registry: RoutedRegistry) -> Any:
    return registry.locations[""].index  # one index for every storage location


def _cve(registry: RoutedRegistry, config: Config | None) -> Any:
    """The CVE result cache's reader when extensions.search.cve is configured (nothing is read here), else None."""
    search = config.extensions.search if config is not None else None
    if search is None or not search.enable or search.cve is None:
        return None
    from chalicelib.cve.service import CveService

    return CveService(registry, _index(registry), registry.locations[""].store)


def search(registry: RoutedRegistry, request: Request, caller: Caller, config: Config | None = None) -> Response:
    """GET ?query=&variables=&operationName= or POST {"query", "variables", "operationName"}."""
    from chalicelib.search.gql import run
    from chalicelib.search.queries import Queries

    reader = caller.catalog_reader() if caller.name is None else caller  # anonymous with nothing public: the login challenge
    try:
        text, variables, operation = _graphql_request(request)
    except ValueError as error:
        return _json({"errors": [{"message": str(error)}]}, 400)
    index = _index(registry)
    queries = Queries(Searcher(index, registry, UserPrefs(index.table), reader), _cve(registry, config))
    outcome = run(queries, text, variables, operation)
    return _json(outcome.document, outcome.status)


def _graphql_request(request: Request) -> tuple[str | None, Any, str | None]:
    if request.method in ("GET", "HEAD"):
        raw = request.arg("variables")
        try:
            variables = json.loads(raw) if raw else None
        except ValueError as error:
            raise ValueError("variables is not JSON") from error
        return request.arg("query"), variables, request.arg("operationName") or None
    body = request.body.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise ValueError(f"the request body is larger than {MAX_BODY} bytes")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise ValueError("the request body is not JSON") from error
    if not isinstance(document, dict) or not isinstance(document.get("query", ""), str | None):
        raise ValueError('the request body must be {"query": "...", "variables": {...}}')
    return document.get("query"), document.get("variables"), document.get("operationName") or None


def discover(config: Config) -> Response:
    """The distribution-spec extensions list zot's CLI reads before it sends a search."""
    endpoints = [SEARCH_PATH, USERPREFS_PATH, MGMT_PATH] if config.extensions.search.enable else []
    extensions = [{"name": "_zot", "url": "https://github.com/project-zot/zot/blob/main/pkg/extensions/_zot.md",
                   "description": "zot registry extensions", "endpoints": endpoints}] if endpoints else []  # fmt: skip
    return _json({"extensions": extensions})


def mgmt(config: Config) -> Response:
    """What zot's UI reads at start: the spec version and which logins exist (no paths, no keys)."""
    auth: dict[str, Any] = {}
    if config.http.auth is not None:
        auth["htpasswd"] = {}
        if config.http.auth.bearer is not None:
            auth["bearer"] = {"realm": config.http.auth.bearer.realm or "", "service": config.http.auth.bearer.service}
    http: dict[str, Any] = {"auth": auth} if auth else {}
    return _json({"distSpecVersion": config.distSpecVersion, "commit": "", "releaseTag": "", "binaryType": "zotless", "http": http})


def userprefs(registry: RoutedRegistry, request: Request, caller: Caller) -> Response:
    """PUT ?repo=&action=toggleStar|toggleBookmark for a logged-in user who may read the repository (zot's rules)."""
    action = request.arg("action")
    if action not in ACTIONS:
        raise BadParameter(detail={"action": (action or "")[:50]})
    repo = request.arg("repo")
    if repo is None:
        raise BadParameter(detail={"repo": None})
    if caller.name is None:
        raise caller.refusal("read", repo)
    if not repo:
        raise NameUnknown(detail={"name": repo})
    repo = validate_name(repo)
    if not caller.may_read(repo):
        raise caller.refusal("read", repo)
    UserPrefs(_index(registry).table).toggle(caller.name, repo, ACTIONS[action])  # type: ignore[arg-type]  # NameUnknown when gone
    return Response(200, Headers({"Content-Length": "0"}), b"")

