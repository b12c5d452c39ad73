"""One registry over HTTP: Basic or docker's Bearer token flow on a 401 challenge, and errors as one line."""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import ParseResult, urljoin, urlparse

import requests
from requests.adapters import HTTPAdapter

from chalicelib.cli.client import authfiles
from chalicelib.cli.client.errors import EXIT_AUTH, EXIT_NOT_FOUND, EXIT_UNREACHABLE, ClientError

TIMEOUT = (10, 300)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
EXTENSIONS_PREFIX = "/v2/_zot/"
_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…",scope="…"` as ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


class Registry:
    """A base URL, credentials and a pooled session shared by the threads of one command."""

    def __init__(self, base_url: str, credentials: tuple[str, str] | None = None, verify: bool = True, verbose: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlparse(self.base_url).netloc
        self.credentials = credentials
        self.verbose = verbose
        self.session = requests.Session()
        self.session.verify = verify
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._tokens: dict[str, str] = {}
        self._scheme: str | None = None
        self._lock = threading.Lock()

    def credentials_for_repo(self, repo: str) -> tuple[str, str] | None:
        """-u wins; else the containers/docker auth files' entry for this host."""
        return self.credentials or authfiles.credentials_for(self.host, repo)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def request(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        """One request, authenticated on demand; a status outside expect is a ClientError naming the server's message."""
        response = self.raw(method, path, **kwargs)
        if response.status_code not in expect:
            raise self.error(response, f"{method} {urlparse(self.url(path)).path}")
        return response

    def raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The response whatever its status; a 401 is answered once with Basic credentials or a token."""
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("allow_redirects", True)
        repo = _repo_of(path)
        response = self._send(method, path, repo, kwargs)
        if response.status_code == 401 and self._answer(response, repo):
            _rewind(kwargs)
            response = self._send(method, path, repo, kwargs)
            if response.status_code == 401:
                raise ClientError(f"{self.host}: login refused ({_message(response) or 'unauthorized'})", EXIT_AUTH)
        return response

    def _send(self, method: str, path: str, repo: str, kwargs: dict[str, Any]) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.update(self._authorization(repo, urlparse(self.url(path))))
        url = self.url(path)
        try:
            response = self.session.request(method, url, headers=headers, **kwargs)
        except requests.exceptions.InvalidURL as error:
            raise ClientError(f"{url}: invalid URL") from error
        except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as error:
            raise ClientError(f"{url}: invalid URL (expected http:// or https://)") from error
        except requests.exceptions.SSLError as error:
            raise ClientError(f"{self.host}: TLS verification failed (use a trusted certificate, or verify-tls false)", EXIT_UNREACHABLE) from error
        except requests.exceptions.ConnectionError as error:
            raise ClientError(f"{self.host}: cannot reach the registry ({_reason(error)})", EXIT_UNREACHABLE) from error
        except requests.exceptions.Timeout as error:
            raise ClientError(f"{self.host}: the registry did not answer in time", EXIT_UNREACHABLE) from error
        finally:
            kwargs["headers"] = headers
        if self.verbose:
            import click

            click.echo(f"{method} {url} -> {response.status_code}", err=True)
        return response

    def _authorization(self, repo: str, url: ParseResult) -> dict[str, str]:
        """Credentials go only to the registry's own host: never to a presigned storage URL it redirects to.

        zot's extensions answer anonymous callers without a challenge (search just shows less), so, as zli does,
        they get Basic credentials up front when there are any.
        """
        if url.netloc != self.host:
            return {}
        credentials = self.credentials_for_repo(repo)
        if credentials and url.path.startswith(EXTENSIONS_PREFIX):  # a token names repositories; search needs the user
            return {"Authorization": requests.auth._basic_auth_str(*credentials)}
        with self._lock:
            token = self._tokens.get(repo) or self._tokens.get("")
            scheme = self._scheme
        if scheme == "bearer" and token:
            return {"Authorization": f"Bearer {token}"}
        if credentials and scheme == "basic":
            return {"Authorization": requests.auth._basic_auth_str(*credentials)}
        return {}

    def _answer(self, response: requests.Response, repo: str) -> bool:
        """Prepare a retry for a 401: remember Basic, or fetch a token for the challenge's scope. False: nothing to try."""
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        credentials = self.credentials_for_repo(repo)
        if scheme == "basic":
            if not credentials:
                raise ClientError(f"{self.host}: the registry wants a login (use -u USER[:PASSWORD] or an auth file)", EXIT_AUTH)
            with self._lock:
                self._scheme = "basic"
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        query = {key: params[key] for key in ("service", "scope") if key in params}
        token_response = self.session.get(params["realm"], params=query, auth=credentials, timeout=TIMEOUT)
        if token_response.status_code != 200:
            raise ClientError(f"{self.host}: login refused by the token service ({_message(token_response) or token_response.status_code})", EXIT_AUTH)
        body = token_response.json()
        with self._lock:
            self._scheme = "bearer"
            self._tokens[repo] = body.get("token") or body.get("access_token", "")
        return True

    def error(self, response: requests.Response, what: str) -> ClientError:
        message = _message(response) or response.reason or str(response.status_code)
        if response.status_code == 404:
            return ClientError(f"{what}: not found ({message})", EXIT_NOT_FOUND)
        if response.status_code in (401, 403):
            return ClientError(f"{what}: access denied ({message})", EXIT_AUTH)
        return ClientError(f"{what}: {response.status_code} {message}")

    def absolute(self, location: str) -> str:
        """A Location header made absolute (servers may send a path)."""
        return urljoin(self.base_url + "/", location)


def _repo_of(path: str) -> str:
    found = _REPO_PATH.match(urlparse(path).path)
    return found.group(1) if found else ""


def _rewind(kwargs: dict[str, Any]) -> None:
    data = kwargs.get("data")
    if hasattr(data, "seek"):
        data.seek(0)


def _message(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return ""
    except AttributeError:
        return ""
    return "; ".join(str(error.get("message") or error.get("code")) for error in errors if isinstance(error, dict))


def _reason(error: Exception) -> str:
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "timed out", "Temporary failure in name resolution"):
        if marker in text:
            return marker.lower()
    return "connection failed"
