"""The IAM policies against reality: every AWS call the code makes must be allowed, and nothing unused granted.

A representative workload runs through the core on moto with each stage's names while botocore
event hooks record every S3 and DynamoDB operation with its parameters (presigned GETs too: the
client's GET is signed with the function's role). Each call is mapped to the IAM actions and
resource ARNs AWS authorises it by (tests/unit/iam_model.py) and checked against the policy file
of the function that makes it: the API handler for requests and rebuild-index (and the SQS message
a push sends), the GC function for garbage collection, the CVE scan function for the queue's
messages (with the calls Lambda's event source mapping makes with its role: receive, delete), the
database function for scheduled updates. A static pass finds the calls in the Lambda's code that
the workload did not reach.
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
from chalicelib.deploy.provision import (
    API_FUNCTION,
    DB_UPDATE_FUNCTION,
    FUNCTIONS,
    GC_FUNCTION,
    PROJECT,
    SCAN_FUNCTION,
    function_names,
    scan_queues,
    stage_config,
    stage_environment,
    stage_names,
)
from chalicelib.deploy.templates import only_cve_items, policy_file, rendered_files
from chalicelib.storage.aws import make_clients, table_definitions
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

    def __init__(self, hash_keys: dict[str, str] | None = None) -> None:
        self.hash_keys = hash_keys or {}  # table -> partition key attribute, for dynamodb:LeadingKeys
        self.phase = API_FUNCTION
        self.calls: dict[str, list[tuple[str, str, dict[str, Any]]]] = {function: [] for function in FUNCTIONS}

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}", self._hook(service))

    def _hook(self, service: str):
        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls[self.phase].append((service, model.name, json.loads(json.dumps(params, default=str))))

        return record

    def needs(self, phase: str) -> list[Need]:
        return [n for service, operation, params in self.calls[phase] for n in iam_model.needs_for(service, operation, params, self.hash_keys)]


def _service(config, recorder: Recorder, **storage: Any) -> Service:
    from chalicelib.config.schema import Cve, SearchExtension
    from chalicelib.storage.aws import ensure_resources

    config = config.model_copy(deep=True)
    for key, value in storage.items():
        setattr(config.storage, key, value)
    config.extensions.search = SearchExtension(enable=True, cve=Cve(source=f"s3://{config.storage.storageDriver.bucket}/{SOURCE_KEY}"))
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
    for query in ("{RepoListWithNewestImage{Page{TotalCount}}}", '{ImageListForDigest(id:"' + chunked + '"){Page{TotalCount}}}'):  # search
        assert client("POST", "/v2/_zot/ext/search", json.dumps({"query": query}).encode()).status == 200, query
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


# CVE scanning: an advisory source in S3 (read with the registry's client, as the schedule does), Debian images.
SOURCE_KEY = "osv/all.zip"


def _put_source(service: Service, ecosystem: str = "Debian:12") -> None:
    """A zip of OSV records, in the stage's bucket outside the registry's prefix (as an operator would upload it)."""
    import io
    import zipfile

    from tests.cve_images import standard_records

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        for record in standard_records():
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    service.store.client.put_object(Bucket=service.config.storage.storageDriver.bucket, Key=SOURCE_KEY, Body=raw.getvalue())


def _queue_pushes(service: Service, recorder: Recorder, queue_url: str) -> None:
    """What app.py does for the API function: pushes send their manifests to the scan queue."""
    from chalicelib.adapters.cvejobs import QUEUE_URL_VARIABLE, with_scan_queue
    from chalicelib.cve.worker import QueueNotifier

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(QUEUE_URL_VARIABLE, queue_url)
        with_scan_queue(service)
    for notifier in {id(n): n for loc in service.locations for n in loc.registry.listeners if isinstance(n, QueueNotifier)}.values():
        recorder.attach(notifier.sqs)


def _fresh_cve(service: Service) -> None:
    """Each function is its own Lambda instance: no advisory cache carries over from another phase."""
    from chalicelib.adapters import cvejobs

    cvejobs._built.clear()


def exercise_update(service: Service) -> None:
    """The schedule: load the source as a new version, re-match stored results, scan what no queue saw."""
    from chalicelib.adapters.cvejobs import scheduled_update

    _fresh_cve(service)
    summary = scheduled_update(service)
    assert "database" in summary, summary


def exercise_scans(service: Service, sqs: Any, queue_url: str) -> int:
    """Lambda's event source mapping (with the scan function's role) receives, the function scans, the mapping deletes.

    A message whose manifest was deleted since fails, and stays for SQS to redeliver (and, in the end, dead-letter).
    """
    from chalicelib.adapters.cvejobs import handle_queue
    from chalicelib.spec.errors import RegistryError

    _fresh_cve(service)
    sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
    scanned = 0
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=3600).get("Messages", []):
        for message in messages:
            try:
                handle_queue(service, [message["Body"]])
            except RegistryError:  # the manifest was deleted after its push
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            scanned += 1
    return scanned


def push_cve_images(client: Client) -> None:
    """A Debian image with an advisory, and an index of it (scanned per platform)."""
    from tests.cve_images import DEBIAN_RELEASE, dpkg_entry, dpkg_status, gzip_layer

    status = dpkg_status(dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl"), dpkg_entry("zlib1g", "1:1.2.13.dfsg-1", "zlib"))
    digest, body = client.push_image("cve/app", "1.0", [gzip_layer({"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": status})])
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body)}]}
    _manifest(client, "cve/app", "multi", index, OCI_INDEX)


@pytest.fixture(scope="module", params=stage_names())
def recorded(request: pytest.FixtureRequest) -> Iterator[tuple[str, Recorder]]:
    """Per storage setting: API requests (queueing scans), GC, a database update, the queue's scans, two more updates.

    With redirect off, results are forced out of their item into S3 (as findings over 300 KB are).
    """
    import boto3
    from moto import mock_aws

    from chalicelib.cve import results
    from chalicelib.lifecycle.rebuild import rebuild_index

    stage = request.param
    recorder = Recorder({d["TableName"]: d["KeySchema"][0]["AttributeName"] for d in table_definitions(stage_config(stage))})
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        sqs = boto3.client("sqs", region_name=iam_model.REGION)
        queue_url = sqs.create_queue(QueueName=scan_queues(stage).name)["QueueUrl"]  # init-aws's job: not recorded
        recorder.attach(sqs)
        for storage in ({"dedupe": True, "redirect": True}, {"dedupe": False, "redirect": False}):
            if not storage["redirect"]:
                patch.setattr(results, "INLINE_LIMIT", 0)
            recorder.phase = API_FUNCTION
            service = _service(stage_config(stage), recorder, **storage)
            _put_source(service)
            _queue_pushes(service, recorder, queue_url)
            client = Client(service)
            exercise_api(client)
            rebuild_index(service)
            recorder.phase = GC_FUNCTION
            exercise_gc(service)
            recorder.phase = DB_UPDATE_FUNCTION
            exercise_update(service)  # scans what GC kept, which no queue saw
            recorder.phase = API_FUNCTION
            push_cve_images(client)
            operator = boto3.client("sqs", region_name=iam_model.REGION)  # not recorded: a person with their own credentials
            operator.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"rematch": True}))  # the message handle_messages also takes
            recorder.phase = SCAN_FUNCTION
            assert exercise_scans(service, sqs, queue_url) >= 2
            recorder.phase = DB_UPDATE_FUNCTION
            for _ in range(2):  # the third version drops the first
                exercise_update(service)
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


def test_the_cve_scan_policy_allows_every_call_a_scan_makes(recorded):
    stage, recorder = recorded
    needs = recorder.needs(SCAN_FUNCTION)
    assert {"ReceiveMessage", "DeleteMessage", "GetObject", "GetItem", "PutItem"} <= {n.operation for n in needs}
    assert any(n.action == "s3:PutObject" and "/_cve/results/" in n.resource for n in needs), "findings too large for their item"
    denied = iam_model.denied(_policy(stage, SCAN_FUNCTION), needs)
    assert not denied, _explain(denied, stage, SCAN_FUNCTION)


def test_the_cve_database_policy_allows_every_call_an_update_makes(recorded):
    stage, recorder = recorded
    needs = recorder.needs(DB_UPDATE_FUNCTION)
    operations = {n.operation for n in needs}
    assert {"HeadObject", "GetObject", "PutObject", "DeleteObjects", "ListObjectsV2", "Query", "PutItem"} <= operations
    denied = iam_model.denied(_policy(stage, DB_UPDATE_FUNCTION), needs)
    assert not denied, _explain(denied, stage, DB_UPDATE_FUNCTION)


def test_the_cve_policies_grant_nothing_unused(recorded):
    stage, recorder = recorded
    for function in (SCAN_FUNCTION, DB_UPDATE_FUNCTION):
        used = {n.action for n in recorder.needs(function)}
        unused = iam_model.granted_actions(_policy(stage, function)) - used - JUSTIFIED_EXTRAS - LOG_ACTIONS
        assert not unused, f"{function}'s policy grants actions it never needs: {sorted(unused)}"


def test_the_cve_functions_write_only_under_cve_and_the_repository_table(recorded):
    """They read the whole registry but may change nothing of it: no blob, manifest, tag or session can be written or deleted."""
    stage, recorder = recorded
    config = stage_config(stage)
    root = f"arn:aws:s3:::{config.storage.storageDriver.bucket}/{config.storage.storageDriver.rootdirectory}"
    writes = {"s3:PutObject", "s3:DeleteObject", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    api_writes = [n for n in recorder.needs(API_FUNCTION) if n.action in writes]
    assert api_writes
    for function in (SCAN_FUNCTION, DB_UPDATE_FUNCTION):
        policy = _policy(stage, function)
        assert not [n for n in api_writes if iam_model.allowed(policy, n.action, n.resource, n.keys)], f"{function} may write the registry's data"
        assert not iam_model.allowed(policy, "s3:PutObject", f"{root}_blobs/sha256/0") and not iam_model.allowed(policy, "dynamodb:UpdateItem", "*")
        own = [n for n in recorder.needs(function) if n.action in writes]
        assert own and all(f"{root}_cve/" in n.resource or n.resource.endswith(f"table/{config.storage.cacheDriver.repoMetaTablename}") for n in own)
    assert not iam_model.allowed(_policy(stage, SCAN_FUNCTION), "s3:PutObject", f"{root}_cve/db/x"), "only the update writes advisories"


def test_the_api_only_sends_to_the_scan_queue(recorded):
    stage, recorder = recorded
    queue_needs = [n for n in recorder.needs(API_FUNCTION) if n.action.startswith("sqs:")]
    assert {n.action for n in queue_needs} == {"sqs:SendMessage"}
    assert {n.resource.split(":")[-1] for n in queue_needs} == {scan_queues(stage).name}
    denied = iam_model.denied(_policy(stage, API_FUNCTION), queue_needs)
    assert not denied, _explain(denied, stage, API_FUNCTION)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert not iam_model.allowed(_policy(stage, API_FUNCTION), action, queue_needs[0].resource)
    for function in (GC_FUNCTION, DB_UPDATE_FUNCTION):
        assert not iam_model.allowed_anywhere(_policy(stage, function), "sqs:SendMessage")


def test_an_s3_source_outside_the_bucket_is_granted_to_the_update_alone(tmp_path: Path):
    """ZOTLESS_CVE_SOURCE=s3://mirror/key: the update function reads that one object; nothing else may."""
    from chalicelib.deploy.templates import iam_policy

    raw = json.loads((PROJECT / ".chalice" / "config.json").read_text())
    raw["stages"]["prod"]["environment_variables"]["ZOTLESS_CVE_SOURCE"] = "s3://osv-mirror/Debian/all.zip"
    (tmp_path / "config.json").write_text(json.dumps(raw))
    needs = iam_model.needs_for("s3", "HeadObject", {"Bucket": "osv-mirror", "Key": "Debian/all.zip"})
    needs += iam_model.needs_for("s3", "GetObject", {"Bucket": "osv-mirror", "Key": "Debian/all.zip"})
    assert not iam_model.denied(iam_policy("prod", DB_UPDATE_FUNCTION, tmp_path), needs)
    assert not iam_model.allowed(iam_policy("prod", DB_UPDATE_FUNCTION, tmp_path), "s3:GetObject", "arn:aws:s3:::osv-mirror/other.zip")
    for function in (API_FUNCTION, GC_FUNCTION, SCAN_FUNCTION):
        assert iam_model.denied(iam_policy("prod", function, tmp_path), needs)


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
    methods = {s: session.client(s).meta.method_to_api_mapping for s in ("s3", "dynamodb", "sqs")}
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
    if owner not in {"client", "s3", "dynamodb", "sqs", "s3_client"}:
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
    assert ("sqs", "SendMessage") in operations and ("s3", "HeadObject") in operations, "the CVE code's calls were not found"
    for stage in stage_names():
        policies = [_policy(stage, function) for function in FUNCTIONS]
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
    own.add(scan_queues(stage).name)
    for function in FUNCTIONS:
        own_log = f"/aws/lambda/{function_names(stage)[function]}"
        for statement in _policy(stage, function)["Statement"]:
            assert statement["Effect"] == "Allow" and statement.get("Condition", only_cve_items()) == only_cve_items()
            for resource in statement["Resource"]:
                assert resource != "*" and "*:*:*" not in resource
                if resource.startswith("arn:aws:s3"):
                    name = resource.split(":::")[-1].split("/")[0]
                elif resource.startswith("arn:aws:sqs"):
                    name = resource.split(":")[-1]
                else:
                    name = resource.split("table/")[-1].split("/")[0]
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
    assert functions[DB_UPDATE_FUNCTION]["lambda_timeout"] == 900 and functions[DB_UPDATE_FUNCTION]["lambda_memory_size"] >= 1024, "all.zip loads in memory"
    assert scan_queues(stage).visibility_timeout >= functions[SCAN_FUNCTION]["lambda_timeout"], "SQS would redeliver a scan still running"
    assert environment["ZOTLESS_CVE_QUEUE"] == scan_queues(stage).name
    for function in FUNCTIONS:
        assert functions[function]["lambda_memory_size"] >= 256
        assert policy_file(stage, function).exists()
