"""Matches /v2 paths to handlers; repository names may hold any number of slashes.

API Gateway hands everything under /v2 to one greedy route, so routing is ours. Each route states
the action it needs on its repository, so access control is declared, not scattered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.model.access import Action, Caller
from chalicelib.spec.errors import MethodNotAllowed, NameInvalid, NotFound
from chalicelib.spec.http import Request, Response
from chalicelib.spec.references import validate_name


@dataclass
class Context:
    """One routed request: path parameters, the validated repository and the caller."""

    request: Request
    params: dict[str, str]
    caller: Caller
    repo: str = ""


Handler = Callable[[Context], Response]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, tuple[Handler, Action | None]] = field(default_factory=dict)


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, path: str, method: str, handler: Handler, action: Action | None) -> None:
        """path uses {name} for the repository and {x} for one path segment."""
        regex = "^" + re.sub(r"\{(\w+)\}", lambda m: "(?P<name>.+)" if m.group(1) == "name" else f"(?P<{m.group(1)}>[^/]+)", path) + "$"
        for route in self.routes:
            if route.pattern.pattern == regex:
                route.methods[method] = (handler, action)
                return
        self.routes.append(Route(re.compile(regex), {method: (handler, action)}))

    def match(self, request: Request, caller: Caller) -> tuple[Handler, Action | None, Context]:
        path = request.path
        if "%" in path or "\\" in path:
            raise NameInvalid("percent-encoded or escaped characters are not allowed in paths")
        for route in self.routes:
            found = route.pattern.match(path)
            if not found:
                continue
            method = "GET" if request.method == "HEAD" and "HEAD" not in route.methods else request.method
            if method not in route.methods:
                raise MethodNotAllowed(detail={"method": request.method})
            handler, action = route.methods[method]
            params = found.groupdict()
            repo = validate_name(params.pop("name")) if "name" in params else ""
            return handler, action, Context(request, params, caller, repo)
        raise NotFound(detail={"path": path[:200]})
