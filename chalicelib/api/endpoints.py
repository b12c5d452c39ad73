"""The distribution-spec's HTTP surface: headers, status codes and bodies around the registry model."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

from chalicelib.api.limits import chunk_headers
from chalicelib.api.router import Context, Router
from chalicelib.auth.authn import TOKEN_PATH, Authenticator
from chalicelib.auth.callers import PolicyCaller
from chalicelib.auth.sessions import LOGOUT_PATH
from chalicelib.config.schema import Config
from chalicelib.model.access import ANONYMOUS, Action, Caller
from chalicelib.model.locations import RoutedRegistry
from chalicelib.spec.errors import BlobRangeInvalid, DigestInvalid, PayloadTooLarge, RangeInvalid, ReadOnly, RegistryError, SizeInvalid
from chalicelib.spec.http import Headers, Request, Response
from chalicelib.spec.manifests import MAX_MANIFEST_SIZE, OCI_INDEX
from chalicelib.spec.numbers import ascii_int
from chalicelib.spec.references import Digest, is_tag, validate_name
from chalicelib.storage.blobs import BlobLocation
from chalicelib.storage.uploads import UploadSession, progress_headers

log = logging.getLogger("zotless.api")

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
MAX_PAGE = 1000
WRITE_ACTIONS = {"create", "update", "delete"}
PRESIGN_SECONDS = 900
# The web page lives in zot's extension namespace, which no repository name can enter, and under /v2 so the
# deployed API's stage-root routing (stage "v2") reaches it without a route of its own.
WEB_PATH = "/v2/_zot/ui/"
# Shapes only: the numbers in them go through ascii_int, which accepts ASCII digits alone.
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?([^-/\s]+)-([^-/\s]+)(?:/([^-/\s]+))?$")
_RANGE = re.compile(r"^bytes=([^-\s]*)-([^-\s]*)$")


class PaginationInvalid(RegistryError):
    code = "PAGINATION_NUMBER_INVALID"
    status = 400
    default_message = "invalid number of results requested"


def _response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Response:
    return Response(status, Headers({**API_VERSION, **(headers or {})}), body)


def _json(document: Any, status: int = 200, headers: dict[str, str] | None = None, content_type: str = "application/json") -> Response:
    body = json.dumps(document).encode()
    return _response(status, {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}, body)


def _blob_headers(location: BlobLocation) -> dict[str, str]:
    return {"Docker-Content-Digest": str(location.digest), "Content-Type": "application/octet-stream"}


def _page_size(request: Request) -> int | None:
    raw = request.arg("n")
    if raw is None or raw == "":
        return None
    value = ascii_int(raw)
    if value is None:
        raise PaginationInvalid(detail={"n": raw[:20]})
    return min(value, MAX_PAGE)


def _content_length(request: Request) -> int | None:
    """The declared body length; one that is present but not ASCII digits is the client's error."""
    raw = request.headers.get("Content-Length")
    length = request.content_length
    if raw is not None and length is None:
        raise SizeInvalid("invalid Content-Length", detail={"Content-Length": raw[:30]})
    return length


def _content_range(request: Request) -> tuple[int, int] | None:
    """Content-Range of a chunk as (start, length); a malformed one is 416, as for an out-of-order chunk."""
    raw = request.headers.get("Content-Range")
    if raw is None:
        return None
    found = _CONTENT_RANGE.match(raw.strip())
    start, end = (ascii_int(found.group(1)), ascii_int(found.group(2))) if found else (None, None)
    total = found.group(3) if found else None
    if start is None or end is None or end < start or (total not in (None, "*") and ascii_int(total) is None):
        raise RangeInvalid("malformed Content-Range", detail={"Content-Range": raw[:100]})
    length = _content_length(request)
    if length is not None and length != end - start + 1:
        raise RangeInvalid("Content-Range does not match Content-Length")
    return start, end - start + 1


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single Range of a blob GET as inclusive (first, last); None means the whole blob."""
    if not header:
        return None
    refused = BlobRangeInvalid(headers={"Content-Range": f"bytes */{size}"})
    found = _RANGE.match(header.strip())
    if not found or found.groups() == ("", ""):
        raise refused
    first, last = (ascii_int(raw) if raw else None for raw in found.groups())
    if (found.group(1) and first is None) or (found.group(2) and last is None):
        raise refused
    if first is None:
        first, last = max(size - (last or 0), 0), size - 1
    else:
        last = size - 1 if last is None else min(last, size - 1)
    if first > last or first >= size:
        raise refused
    return first, last


class Api:
    """Routes requests to the registry; the only place that speaks HTTP."""

    def __init__(
        self,
        registry: RoutedRegistry,
        redirect: bool = True,
        auth: Authenticator | None = None,
        chunk_max_length: int | None = None,
        config: Config | None = None,
    ) -> None:
        """chunk_max_length: the largest request body the transport carries (Lambda), advertised to chunked clients.

        config: what zot's extension endpoints report (search on or off, logins); the defaults without it.
        """
        self.registry = registry
        self.redirect = redirect
        self.auth = auth
        self.chunk_max_length = chunk_max_length
        self.config = config or Config()
        self.router = Router()
        self._declare_routes()

    def _declare_routes(self) -> None:
        add = self.router.add
        add("/v2/", "GET", self.base, None)
        add("/v2/_oci/ext/discover", "GET", self._extension, None)
        if self.config.extensions.search.enable:
            for method in ("GET", "POST"):
                add("/v2/_zot/ext/search", method, self._extension, None)
            add("/v2/_zot/ext/mgmt", "GET", self._extension, None)
            add("/v2/_zot/ext/userprefs", "PUT", self._extension, None)
        add("/", "GET", self._web_page, None)
        for path in (WEB_PATH.rstrip("/"), WEB_PATH, WEB_PATH + "{asset}"):
            add(path, "GET", self._web_page, None)
        add("/v2/_catalog", "GET", self.catalog, None)
        add("/v2/{name}/tags/list", "GET", self.tags, "read")
        add("/v2/{name}/manifests/{reference}", "GET", self.get_manifest, "read")
        add("/v2/{name}/manifests/{reference}", "HEAD", self.head_manifest, "read")
        add("/v2/{name}/manifests/{reference}", "PUT", self.put_manifest, "create")
        add("/v2/{name}/manifests/{reference}", "DELETE", self.delete_manifest, "delete")
        add("/v2/{name}/blobs/uploads/", "POST", self.start_upload, "create")
        add("/v2/{name}/blobs/uploads/{session}", "GET", self.upload_status, "create")
        add("/v2/{name}/blobs/uploads/{session}", "PATCH", self.append_upload, "create")
        add("/v2/{name}/blobs/uploads/{session}", "PUT", self.finish_upload, "create")
        add("/v2/{name}/blobs/uploads/{session}", "DELETE", self.cancel_upload, "create")
        add("/v2/{name}/blobs/{digest}", "GET", self.get_blob, "read")
        add("/v2/{name}/blobs/{digest}", "HEAD", self.head_blob, "read")
        add("/v2/{name}/blobs/{digest}", "DELETE", self.delete_blob, "delete")
        add("/v2/{name}/referrers/{digest}", "GET", self.referrers, "read")
        if self.auth is not None and self.auth.tokens is not None:
            add(TOKEN_PATH, "GET", self._token, None)
        if self.auth is not None:
            add(LOGOUT_PATH, "POST", self._logout, None)

    def handle(self, request: Request, caller: Caller | None = None) -> Response:
        """Never raises for anything a client sends: errors become the spec's JSON bodies."""
        try:
            if caller is None:
                caller = self.auth.authenticate(request) if self.auth is not None else ANONYMOUS
            handler, action, context = self.router.match(request, caller)
            self._authorize(action, context)
            if action in WRITE_ACTIONS and self.registry.read_only(context.repo):
                raise ReadOnly()
            response = handler(context)
        except RegistryError as error:
            response = error.to_response()
            for key, value in API_VERSION.items():
                response.headers[key] = value
        if isinstance(caller, PolicyCaller) and caller.cookies:
            response.cookies.extend(caller.cookies)  # zot's UI session (chalicelib/auth/sessions.py)
        if request.method == "HEAD":
            response.body = b""
        return response

    def _authorize(self, action: Action | None, context: Context) -> None:
        """Refused before the handler runs, so no 404 tells a caller what a repository it cannot read holds."""
        if action is None:
            return
        if action == "create" and context.request.method == "PUT" and "reference" in context.params:
            action = self._tag_write(context)
        if not context.caller.may(action, context.repo):
            raise context.caller.refusal(action, context.repo)

    def _tag_write(self, context: Context) -> Action:
        """A caller with create or update may try a push; the tag write's own condition decides which it was.

        Nothing is read here: a check made before the body arrives could be stale by the time the
        manifest is written (the model makes the tag write conditional on the caller's permission).
        """
        caller, repo = context.caller, context.repo
        updates_only = caller.may("update", repo) and not caller.may("create", repo)
        return "update" if updates_only and is_tag(context.params["reference"]) else "create"

    def _token(self, context: Context) -> Response:
        """Docker's token endpoint; auth issues the token for the caller this request authenticated as."""
        assert self.auth is not None
        return self.auth.token_endpoint(context.request, context.caller)

    def _logout(self, context: Context) -> Response:
        """zot's UI logout: clears the session cookie."""
        assert self.auth is not None
        return self.auth.logout(context.request)

    def _extension(self, context: Context) -> Response:
        """zot's extensions; their module (and ariadne with it) loads with the first such request, never at cold start."""
        from chalicelib.search import http as extensions

        request = context.request
        if request.path == extensions.DISCOVER_PATH:
            return extensions.discover(self.config)
        if request.path == extensions.MGMT_PATH:
            return extensions.mgmt(self.config)
        if request.path == extensions.USERPREFS_PATH:
            return extensions.userprefs(self.registry, request, context.caller)
        return extensions.search(self.registry, request, context.caller, self.config)

    def _web_page(self, context: Context) -> Response:
        """The web page (chalicelib/web): files only, so no action is needed; its data calls are authorized as usual."""
        from chalicelib.web import assets

        path = context.request.path
        if path == "/":
            return assets.redirect(WEB_PATH)
        if path == WEB_PATH.rstrip("/"):
            return assets.redirect("ui/")
        return assets.serve(context.request, context.params.get("asset", ""))

    # Base and listings

    def base(self, context: Context) -> Response:
        if not context.caller.may_enter():
            raise context.caller.refusal(None, "")
        return _json({})

    def catalog(self, context: Context) -> Response:
        limit = _page_size(context.request)
        last = context.request.arg("last")
        names = self.registry.catalog(None if limit is None else limit + 1, last, context.caller.catalog_reader())
        return self._page({"repositories": names}, "repositories", limit, "/v2/_catalog")

    def tags(self, context: Context) -> Response:
        limit = _page_size(context.request)
        tags = self.registry.tags(context.repo, None if limit is None else limit + 1, context.request.arg("last"))
        return self._page({"name": context.repo, "tags": tags}, "tags", limit, f"/v2/{context.repo}/tags/list")

    def _page(self, document: dict[str, Any], field: str, limit: int | None, path: str) -> Response:
        """Trim to n results and add the spec's Link header when another page exists."""
        items = document[field]
        headers = {}
        if limit is not None and len(items) > limit:
            document[field] = items = items[:limit]
            if items:
                headers["Link"] = f'<{path}?n={limit}&last={quote(items[-1])}>; rel="next"'
        return _json(document, headers=headers)

    def referrers(self, context: Context) -> Response:
        subject = Digest.parse(context.params["digest"])
        artifact_type = context.request.arg("artifactType")
        manifests = self.registry.referrers(context.repo, subject, artifact_type)
        headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return _json(index, headers=headers, content_type=OCI_INDEX)

    # Manifests

    def get_manifest(self, context: Context) -> Response:
        pulled = self.registry.get_manifest(context.repo, context.params["reference"])
        headers = {"Content-Type": pulled.media_type, "Docker-Content-Digest": pulled.digest, "Content-Length": str(len(pulled.body))}
        return _response(200, headers, pulled.body)

    def head_manifest(self, context: Context) -> Response:
        stored = self.registry.head_manifest(context.repo, context.params["reference"])
        return _response(200, {"Content-Type": stored.media_type, "Docker-Content-Digest": stored.digest, "Content-Length": str(stored.size)})

    def put_manifest(self, context: Context) -> Response:
        request = context.request
        length = _content_length(request)
        if length is not None and length > MAX_MANIFEST_SIZE:
            raise PayloadTooLarge("manifest too large", detail={"limit": MAX_MANIFEST_SIZE})
        body = request.body.read(MAX_MANIFEST_SIZE + 1)
        pushed = self.registry.put_manifest(context.repo, context.params["reference"], body, request.headers.get("Content-Type"), context.caller)
        headers = {"Location": f"/v2/{context.repo}/manifests/{pushed.digest}", "Docker-Content-Digest": str(pushed.digest), "Content-Length": "0"}
        if pushed.subject:
            headers["OCI-Subject"] = str(pushed.subject)
        return _response(201, headers)

    def delete_manifest(self, context: Context) -> Response:
        self.registry.delete_manifest(context.repo, context.params["reference"])
        return _response(202, {"Content-Length": "0"})

    # Blobs

    def head_blob(self, context: Context) -> Response:
        location = self.registry.check_blob(context.repo, Digest.parse(context.params["digest"]), context.caller)
        return _response(200, {**_blob_headers(location), "Content-Length": str(location.size)})

    def get_blob(self, context: Context) -> Response:
        location = self.registry.blob(context.repo, Digest.parse(context.params["digest"]))
        byte_range = _byte_range(context.request.headers.get("Range"), location.size)
        if self.redirect and location.size > 0:
            url = self.registry.blob_url(context.repo, location, PRESIGN_SECONDS)
            return _response(307, {"Location": url, "Docker-Content-Digest": str(location.digest), "Content-Length": "0"})
        if location.size == 0:
            return _response(200, {**_blob_headers(location), "Content-Length": "0"})
        if byte_range is None:
            body = self.registry.blob_bytes(context.repo, location)
            return Response(200, Headers({**API_VERSION, **_blob_headers(location), "Content-Length": str(location.size)}), body)
        first, last = byte_range
        headers = {**API_VERSION, **_blob_headers(location), "Content-Length": str(last - first + 1), "Content-Range": f"bytes {first}-{last}/{location.size}"}
        return Response(206, Headers(headers), self.registry.blob_bytes(context.repo, location, first, last))

    def delete_blob(self, context: Context) -> Response:
        self.registry.delete_blob(context.repo, Digest.parse(context.params["digest"]))
        return _response(202, {"Content-Length": "0"})

    # Uploads

    def start_upload(self, context: Context) -> Response:
        request, repo = context.request, context.repo
        mount = request.arg("mount")
        if mount is not None:
            mounted = self._try_mount(context, Digest.parse(mount), request.arg("from"))
            if mounted is not None:
                return self._blob_created(repo, mounted)
        digest = request.arg("digest")
        if digest is not None:
            return self._blob_created(repo, self.registry.upload_monolithic(repo, Digest.parse(digest), request.body))
        algorithm = request.arg("digest-algorithm") or "sha256"
        session = self.registry.start_upload(repo, algorithm)
        return self._upload_progress(session, 202, chunk_headers(self.chunk_max_length))

    def _try_mount(self, context: Context, digest: Digest, source: str | None) -> BlobLocation | None:
        """Mount from `from`, or with dedupe on from any repository the caller can read."""
        if source is not None:
            return self.registry.mount_blob(context.repo, digest, validate_name(source), context.caller)
        try:
            return self.registry.check_blob(context.repo, digest, context.caller)
        except RegistryError:
            return None

    def upload_status(self, context: Context) -> Response:
        return self._upload_progress(self.registry.upload_status(context.repo, context.params["session"]), 204)

    def append_upload(self, context: Context) -> Response:
        chunk = _content_range(context.request)
        start, length = chunk if chunk else (None, None)
        session = self.registry.append_upload(context.repo, context.params["session"], context.request.body, start, length)
        return self._upload_progress(session, 202, chunk_headers(self.chunk_max_length) if self.chunk_max_length else None)

    def finish_upload(self, context: Context) -> Response:
        request = context.request
        raw_digest = request.arg("digest")
        if raw_digest is None:
            raise DigestInvalid("the final PUT needs ?digest=")
        chunk = _content_range(request)
        location = self.registry.finish_upload(context.repo, context.params["session"], request.body, Digest.parse(raw_digest), chunk[0] if chunk else None)
        return self._blob_created(context.repo, location)

    def cancel_upload(self, context: Context) -> Response:
        self.registry.cancel_upload(context.repo, context.params["session"])
        return _response(204)

    def _blob_created(self, repo: str, location: BlobLocation) -> Response:
        headers = {"Location": f"/v2/{repo}/blobs/{location.digest}", "Docker-Content-Digest": str(location.digest), "Content-Length": "0"}
        return _response(201, headers)

    def _upload_progress(self, session: UploadSession, status: int, extra: dict[str, str] | None = None) -> Response:
        return _response(status, {**progress_headers(session), "Content-Length": "0", **(extra or {})})
