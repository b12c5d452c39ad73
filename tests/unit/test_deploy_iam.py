"""The IAM policies against reality: every AWS call the code makes must be allowed, and nothing unused granted.

A representative workload runs through the core on moto with each stage's names while botocore
event hooks record every S3 and DynamoDB operation with its parameters (presigned GETs too: the
client's GET is signed with the function's role). Each call is mapped to the IAM actions and
resource ARNs AWS authorises it by (tests/unit/iam_model.py) and checked against the policy file
of the function that makes it: the API handler for requests and rebuild-index, the GC function
for garbage collection. A static pass finds the calls in the Lambda's code that the workload did
not reach.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.api.service import Service, build_service
from chalicelib.deploy.provision import API_FUNCTION, GC_FUNCTION, PROJECT, function_names, stage_config, stage_environment, stage_names
from chalicelib.deploy.templates import policy_file, rendered_files
from chalicelib.storage.aws import make_clients
from tests.conftest import LAYER, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Client, sha256
from tests.unit import iam_model
from tests.unit.iam_model import Need

pytestmark = pytest.mark.slow  # the recorded workload pushes, rebuilds and collects through every path, per stage

MiB = 1 << 20
# Granted without a call that needs it: without s3:ListBucket, S3 answers 403 instead of 404 for a
# missing key, which the store would report as an error rather than "not found".
JUSTIFIED_EXTRAS = {"s3:ListBucket"}
LOG_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}


class Recorder:
    """botocore `before-parameter-build` hooks: each operation's API parameters, before any retry or signing."""

    def __init__(self) -> None:
        self.phase = API_FUNCTION
        self.calls: dict[str, list[tuple[str, str, dict[str, Any]]]] = {API_FUNCTION: [], GC_FUNCTION: []}

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}", self._hook(service))

    def _hook(self, service: str):
        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls[self.phase].append((service, model.name, json.loads(json.dumps(params, default=str))))

        return record

    def needs(self, phase: str) -> list[Need]:
        return [n for service, operation, params in self.calls[phase] for n in iam_model.needs_for(service, operation, params)]


def _service(config, recorder: Recorder, **storage: Any) -> Service:
    from chalicelib.storage.aws import ensure_resources

    config = config.model_copy(deep=True)
    for key, value in storage.items():
        setattr(config.storage, key, value)
    clients = make_clients(config)
    ensure_resources(config, clients)  # init-aws's job in a deployment: not recorded
    recorder.attach(clients.s3)
    recorder.attach(clients.dynamodb)
    return build_service(config, clients)


def _upload(client: Client, repo: str, chunks: list[bytes], ranged: bool = True) -> str:
    blob = b"".join(chunks)
    location = client("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    offset = 0
    for chunk in chunks:
        headers = {"Content-Type": "application/octet-stream"}
        if ranged:
            headers["Content-Range"] = f"{offset}-{offset + len(chunk) - 1}"
        assert client("PATCH", location, chunk, headers).status == 202
        offset += len(chunk)
    assert client("GET", location).status == 204
    assert client("PUT", f"{location}?digest={sha256(blob)}").status == 201
    return sha256(blob)


def _manifest(client: Client, repo: str, reference: str, document: dict[str, Any], media_type: str = OCI_MANIFEST) -> str:
    body = json.dumps(document).encode()
    response = client("PUT", f"/v2/{repo}/manifests/{reference}", body, {"Content-Type": media_type})
    assert response.status == 201, response.body_bytes()
    return sha256(body)


def exercise_api(client: Client) -> None:
    """Every kind of request a registry serves, through the core both adapters call."""
    repo, other = "team/app", "team/other"
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    config_digest = client.push_blob(repo, config)  # monolithic POST ?digest=
    chunked = _upload(client, repo, [os.urandom(3 * MiB) for _ in range(3)])  # pieces joined into a part
    streamed = _upload(client, repo, [os.urandom(6 * MiB)], ranged=False)  # one streamed PATCH
    tiny = b"tiny"
    location = client("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert client("PUT", f"{location}?digest=sha512:{hashlib.sha512(tiny).hexdigest()}", tiny).status == 201  # re-read check
    cancelled = client("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert client("PATCH", cancelled, os.urandom(6 * MiB), {"Content-Range": f"0-{6 * MiB - 1}"}).status == 202
    assert client("DELETE", cancelled).status == 204
    assert client("POST", f"/v2/{other}/blobs/uploads/?mount={chunked}&from={repo}").status == 201
    client("HEAD", f"/v2/team/third/blobs/{streamed}")  # implicit link with dedupe on
    assert client("GET", f"/v2/{repo}/blobs/{chunked}").body_bytes() is not None  # 307 to a presigned URL, or streamed
    client("GET", f"/v2/{repo}/blobs/{chunked}", headers={"Range": "bytes=0-9"})
    layers = [{"mediaType": LAYER, "digest": d, "size": s} for d, s in ((chunked, 9 * MiB), (streamed, 6 * MiB))]
    image = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)}, "layers": layers}
    image_digest = _manifest(client, repo, "1.0", image)
    _manifest(client, repo, "big", {**image, "annotations": {"padding": "x" * (400 << 10)}})  # stored in S3, not inline
    image_size = len(json.dumps(image).encode())
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": image_digest, "size": image_size}]}
    _manifest(client, repo, "multi", index, OCI_INDEX)
    empty = client.push_blob(repo, b"{}")
    referrer = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image_digest, "size": image_size},
    }
    referrer_digest = _manifest(client, repo, sha256(json.dumps(referrer).encode()), referrer)
    reads = ("manifests/1.0", f"manifests/{image_digest}", "manifests/big", "tags/list?n=1", f"referrers/{image_digest}?artifactType=application/spdx%2Bjson")
    for target in reads:
        assert client("GET", f"/v2/{repo}/{target}").status == 200, target
    assert client("HEAD", f"/v2/{repo}/manifests/multi").status == 200
    assert client("GET", "/v2/_catalog?n=1").status == 200
    assert client("DELETE", f"/v2/{repo}/manifests/{referrer_digest}").status == 202
    assert client("DELETE", f"/v2/{repo}/manifests/multi").status == 202
    assert client("DELETE", f"/v2/{repo}/manifests/{image_digest}").status == 202
    assert client("DELETE", f"/v2/{other}/blobs/{chunked}").status == 202
    client.push_image("team/kept", "1.0", [b"kept layer"])
    abandoned = client("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]  # for GC: a session never finished
    assert client("PATCH", abandoned, os.urandom(6 * MiB)).status == 202


def exercise_gc(service: Service) -> None:
    """One collection far in the future, so every deleted blob, link and abandoned upload is eligible."""
    from chalicelib.lifecycle.gc import GarbageCollector

    report = GarbageCollector(service, clock=lambda: time.time() + 30 * 86400).run()
    assert report.deleted, report.line()


@pytest.fixture(scope="module", params=stage_names())
def recorded(request: pytest.FixtureRequest) -> Iterator[tuple[str, Recorder]]:
    from moto import mock_aws

    from chalicelib.lifecycle.rebuild import rebuild_index

    stage = request.param
    recorder = Recorder()
    with mock_aws():
        for storage in ({"dedupe": True, "redirect": True}, {"dedupe": False, "redirect": False}):
            recorder.phase = API_FUNCTION
            service = _service(stage_config(stage), recorder, **storage)
            exercise_api(Client(service))
            rebuild_index(service)
            recorder.phase = GC_FUNCTION
            exercise_gc(service)
    yield stage, recorder


def _policy(stage: str, function: str) -> dict[str, Any]:
    return json.loads(policy_file(stage, function).read_text())


def _explain(denied: list[Need], stage: str, function: str) -> str:
    lines = [f"  {n.action} on {n.resource} (by {n.operation})" for n in denied[:20]]
    return f"{policy_file(stage, function).name} does not allow:\n" + "\n".join(lines)


def test_the_api_policy_allows_every_call_the_api_makes(recorded):
    stage, recorder = recorded
    needs = recorder.needs(API_FUNCTION)
    operations = {n.operation for n in needs}
    assert {"PutObject", "CreateMultipartUpload", "UploadPart", "ListParts", "CompleteMultipartUpload", "AbortMultipartUpload"} <= operations
    assert {"DeleteObjects", "HeadObject", "GetObject", "ListObjectsV2"} <= operations
    assert operations & {"CopyObject", "UploadPartCopy"}, "a mount without dedupe copies the blob"
    assert {"TransactWriteItems", "BatchGetItem", "Query", "GetItem", "PutItem", "UpdateItem", "DeleteItem"} <= operations
    denied = iam_model.denied(_policy(stage, API_FUNCTION), needs)
    assert not denied, _explain(denied, stage, API_FUNCTION)


def test_the_gc_policy_allows_every_call_gc_makes(recorded):
    stage, recorder = recorded
    needs = recorder.needs(GC_FUNCTION)
    assert {"ListMultipartUploads", "Scan", "Query"} <= {n.operation for n in needs}
    denied = iam_model.denied(_policy(stage, GC_FUNCTION), needs)
    assert not denied, _explain(denied, stage, GC_FUNCTION)


def test_the_policies_grant_nothing_unused(recorded):
    stage, recorder = recorded
    api_used = {n.action for n in recorder.needs(API_FUNCTION)}
    unused = iam_model.granted_actions(_policy(stage, API_FUNCTION)) - api_used - JUSTIFIED_EXTRAS - LOG_ACTIONS
    assert not unused, f"policy grants actions the API never needs: {sorted(unused)}"
    gc_used = {n.action for n in recorder.needs(GC_FUNCTION)}
    # GC deletes through the same registry code as the API, so its policy holds the API's plus its own.
    unused = iam_model.granted_actions(_policy(stage, GC_FUNCTION)) - gc_used - api_used - JUSTIFIED_EXTRAS - LOG_ACTIONS
    assert not unused, f"GC policy grants actions GC never needs: {sorted(unused)}"


def test_api_calls_on_gc_only_resources_are_refused(recorded):
    """The API role cannot scan sessions or query the orphan index: those belong to the GC role alone."""
    stage, recorder = recorded
    gc_only = [n for n in recorder.needs(GC_FUNCTION) if n.operation in {"Scan", "ListMultipartUploads"} or "/index/" in n.resource]
    assert gc_only and all(not iam_model.allowed(_policy(stage, API_FUNCTION), n.action, n.resource) for n in gc_only)


# Static pass: calls anywhere in the code the Lambda imports, including paths the workload missed


def _lambda_modules() -> list[Path]:
    """app.py and every chalicelib module it imports, directly or lazily inside functions."""
    seen: set[Path] = set()
    pending = [PROJECT / "app.py"]
    while pending:
        path = pending.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            pending += [PROJECT / (name.replace(".", "/") + ".py") for name in names if name.startswith("chalicelib.")]
    return sorted(seen)


# Code the Lambda imports but never runs in Lambda: creating tables for local runs (init-aws does it in AWS).
NOT_RUN_IN_LAMBDA = {("chalicelib/storage/aws.py", "ensure_resources"), ("chalicelib/storage/aws.py", "_ensure_bucket")}


def _static_operations() -> dict[tuple[str, str], set[str]]:
    """(service, operation) -> where: calls on *.client / *.s3 / *.dynamodb, paginators and presigned URLs."""
    import boto3

    session = boto3.Session(region_name="us-east-1")
    methods = {s: session.client(s).meta.method_to_api_mapping for s in ("s3", "dynamodb")}
    found: dict[tuple[str, str], set[str]] = {}
    for path in _lambda_modules():
        relative = str(path.relative_to(PROJECT))
        tree = ast.parse(path.read_text())
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            if (relative, function.name) in NOT_RUN_IN_LAMBDA:
                continue
            for call in [n for n in ast.walk(function) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]:
                for service, operation in _operations_of(call, methods):
                    found.setdefault((service, operation), set()).add(f"{relative}:{call.lineno}")
    return found


def _operations_of(call: ast.Call, methods: dict[str, dict[str, str]]) -> Iterator[tuple[str, str]]:
    method = call.func.attr  # type: ignore[attr-defined]
    receiver = call.func.value  # type: ignore[attr-defined]
    owner = receiver.attr if isinstance(receiver, ast.Attribute) else receiver.id if isinstance(receiver, ast.Name) else ""
    if owner not in {"client", "s3", "dynamodb"}:
        return
    literal = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
    for service, mapping in methods.items():
        if method in {"get_paginator", "generate_presigned_url"} and literal in mapping:
            yield service, mapping[literal]
        elif method in mapping:
            yield service, mapping[method]
        elif method in iam_model.TRANSFER_METHODS and service == "s3":
            yield from ((service, op) for op in iam_model.TRANSFER_METHODS[method])


def test_every_call_in_the_lambda_code_is_mapped_and_granted():
    operations = _static_operations()
    assert ("s3", "PutObject") in operations and ("dynamodb", "TransactWriteItems") in operations, "the static pass found nothing"
    for stage in stage_names():
        policies = [_policy(stage, API_FUNCTION), _policy(stage, GC_FUNCTION)]
        missing = []
        for (service, operation), where in sorted(operations.items()):
            for action in iam_model.actions_for_operation(service, operation):
                if not any(iam_model.allowed_anywhere(p, action) for p in policies):
                    missing.append(f"{action} for {service} {operation} at {', '.join(sorted(where))}")
        assert not missing, f"stage {stage}: no policy grants\n" + "\n".join(missing)


# The files themselves


def test_the_generated_files_are_up_to_date():
    stale = [str(path.relative_to(PROJECT)) for path, text in rendered_files().items() if not path.exists() or path.read_text() != text]
    assert not stale, f"run `python -m chalicelib.deploy.templates` to update {stale}"


@pytest.mark.parametrize("stage", stage_names())
def test_each_policy_names_only_its_own_stage(stage: str):
    config = stage_config(stage)
    own = {config.storage.storageDriver.bucket, *(getattr(config.storage.cacheDriver, f) for f in ("cacheTablename", "repoMetaTablename", "uploadsTablename"))}
    for function in (API_FUNCTION, GC_FUNCTION):
        own_log = f"/aws/lambda/{function_names(stage)[function]}"
        for statement in _policy(stage, function)["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement
            for resource in statement["Resource"]:
                assert resource != "*" and "*:*:*" not in resource
                name = resource.split(":::")[-1].split("/")[0] if resource.startswith("arn:aws:s3") else resource.split("table/")[-1].split("/")[0]
                assert name in own or resource.split("log-group:")[-1].split(":")[0] == own_log, resource


@pytest.mark.parametrize("stage", stage_names())
def test_stage_settings_suit_lambda(stage: str):
    raw = json.loads((PROJECT / ".chalice" / "config.json").read_text())
    settings = raw["stages"][stage]
    environment = stage_environment(stage)
    assert raw["autogen_policy"] is False
    assert {"ZOTLESS_BUCKET", "ZOTLESS_BLOB_TABLE", "ZOTLESS_META_TABLE", "ZOTLESS_UPLOADS_TABLE"} <= set(environment)
    assert stage_config(stage).storage.redirect, "blob GETs must redirect: a Lambda response carries at most 6 MB"
    functions = settings["lambda_functions"]
    assert functions[API_FUNCTION]["lambda_timeout"] <= 30, "API Gateway gives up after 29 s"
    assert functions[GC_FUNCTION]["lambda_timeout"] == 900
    for function in (API_FUNCTION, GC_FUNCTION):
        assert functions[function]["lambda_memory_size"] >= 256
        assert policy_file(stage, function).exists()
