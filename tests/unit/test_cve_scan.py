"""Scanning pushed images against small OSV records, on moto: findings, whiteouts, tags, caching, updates."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from chalicelib.cve.database import PREFIX, AdvisoryDb
from chalicelib.cve.results import NotScanned, ScanResult
from chalicelib.cve.service import CveService
from chalicelib.cve.worker import ScanWorker
from tests.conftest import OCI_INDEX, Client, sha256
from tests.cve_images import (
    ALPINE_RELEASE,
    DEBIAN_RELEASE,
    apk_installed,
    dist_info,
    dpkg_entry,
    dpkg_status,
    gzip_layer,
    npm_package,
    osv,
    standard_records,
    tag_result,
    tar_bytes,
    zstd_layer,
)

OLD_OPENSSL = dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl")
NEW_OPENSSL = dpkg_entry("libssl3", "3.0.11-1~deb12u2", "openssl")


@pytest.fixture
def cve(service) -> CveService:
    scans = CveService(service.api.registry, service.index, service.store)
    scans.db.load(standard_records(), "test")
    return scans


def debian_image(*entries: str, extra: dict[str, bytes] | None = None) -> list[bytes]:
    return [gzip_layer({"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": dpkg_status(*entries), **(extra or {})})]


def packages(result: ScanResult | NotScanned) -> dict[str, list[tuple[str, str, str]]]:
    assert isinstance(result, ScanResult), result
    return {c["Id"]: [(p["Name"], p["InstalledVersion"], p["FixedVersion"]) for p in c["PackageList"]] for c in result.cves}


def push_and_scan(client: Client, cve: CveService, repo: str, tag: str, layers: list[bytes], **extra: object) -> ScanResult | NotScanned:
    digest, _ = client.push_image(repo, tag, layers, **extra)
    return cve.scan(repo, digest)


def test_a_vulnerable_debian_package_is_reported_with_its_fix_and_its_cve_name(client: Client, cve: CveService) -> None:
    result = push_and_scan(client, cve, "deb", "old", debian_image(OLD_OPENSSL, dpkg_entry("zlib1g", "1:1.2.13.dfsg-1", "zlib")))
    assert packages(result) == {
        "CVE-2023-5363": [("libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2")],
        "CVE-2023-9999": [("zlib1g", "1:1.2.13.dfsg-1", "")],
    }
    assert isinstance(result, ScanResult)
    first = result.cves[0]
    assert (first["Severity"], first["Reference"], first["Title"]) == ("CRITICAL", "https://example.test/DSA-5532-1", "DSA-5532-1 in openssl")
    counts = {"UnknownCount": 1, "LowCount": 0, "MediumCount": 0, "HighCount": 0, "CriticalCount": 1}
    assert result.summary.as_graphql() == {"MaxSeverity": "CRITICAL", "Count": 2, **counts}


def test_the_fixed_version_is_not_reported(client: Client, cve: CveService) -> None:
    assert packages(push_and_scan(client, cve, "deb", "new", debian_image(NEW_OPENSSL))) == {}


def test_alpine_python_and_npm_packages_are_found_and_matched(client: Client, cve: CveService) -> None:
    files = {"etc/os-release": ALPINE_RELEASE, "lib/apk/db/installed": apk_installed(("musl", "1.2.4_git20230717-r4", "musl"))}
    files |= dist_info("requests", "2.30.0") | npm_package("lodash", "4.17.20") | npm_package("lodash", "4.17.21", root="other")
    result = push_and_scan(client, cve, "alp", "v1", [gzip_layer(files)])
    assert packages(result) == {
        "CVE-2024-0001": [("musl", "1.2.4_git20230717-r4", "1.2.4_git20230717-r5")],
        "CVE-2023-32681": [("requests", "2.30.0", "2.31.0")],
        "CVE-2021-23337": [("lodash", "4.17.20", "4.17.21")],
    }
    severities = {c["Id"]: c["Severity"] for c in result.cves}  # type: ignore[union-attr]
    assert severities == {"CVE-2024-0001": "MEDIUM", "CVE-2023-32681": "MEDIUM", "CVE-2021-23337": "UNKNOWN"}
    assert [p["PackagePath"] for c in result.cves for p in c["PackageList"] if p["Name"] == "requests"] == [  # type: ignore[union-attr]
        "usr/lib/python3/dist-packages/requests-2.30.0.dist-info"
    ]


def test_a_package_removed_by_a_whiteout_in_a_later_layer_is_not_reported(client: Client, cve: CveService) -> None:
    base = gzip_layer({"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": dpkg_status(OLD_OPENSSL)} | dist_info("requests", "2.30.0"))
    folder = "usr/lib/python3/dist-packages/requests-2.30.0.dist-info"
    removed = gzip_layer({"usr/lib/python3/dist-packages/.wh.requests-2.30.0.dist-info": b"", "var/lib/dpkg/.wh..wh..opq": b""})
    assert set(packages(push_and_scan(client, cve, "wh", "base", [base]))) == {"CVE-2023-5363", "CVE-2023-32681"}
    assert packages(push_and_scan(client, cve, "wh", "slim", [base, removed])) == {}
    rewritten = gzip_layer({f"{folder}/METADATA": b"Name: requests\nVersion: 2.31.0\n"})
    assert packages(push_and_scan(client, cve, "wh", "upgraded", [base, rewritten])) == {"CVE-2023-5363": [("libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2")]}


def test_zstd_and_uncompressed_layers_are_read(client: Client, cve: CveService) -> None:
    files: dict[str, bytes | None] = {"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": dpkg_status(OLD_OPENSSL)}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd"}
    digest, _ = push_raw(client, "zst", "v1", [(zstd_layer(files), layer["mediaType"])])
    assert set(packages(cve.scan("zst", digest))) == {"CVE-2023-5363"}
    digest, _ = push_raw(client, "plain", "v1", [(tar_bytes(files), "application/vnd.oci.image.layer.v1.tar")])
    assert set(packages(cve.scan("plain", digest))) == {"CVE-2023-5363"}


def push_raw(client: Client, repo: str, tag: str, layers: list[tuple[bytes, str]]) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": client.push_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": media, "digest": client.push_blob(repo, data), "size": len(data)} for data, media in layers],
    }
    body = json.dumps(manifest).encode()
    response = client("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": manifest["mediaType"]})
    assert response.status == 201, response.body_bytes()
    return sha256(body), body


def test_an_unreadable_layer_type_is_not_scanned(client: Client, cve: CveService) -> None:
    """Never clean: search lists it neither as fixed nor as affected (test_search_cve.py)."""
    digest, _ = push_raw(client, "mixed", "odd", [(b"\x00" * 64, "application/vnd.example.layer.v1.squashfs")])
    outcome = cve.scan("mixed", digest)
    assert isinstance(outcome, NotScanned) and outcome.reason == "unscannable"
    assert isinstance(tag_result(cve, "mixed", "odd"), NotScanned)
    client.push_image("mixed", "unscanned", debian_image(OLD_OPENSSL))
    pending = tag_result(cve, "mixed", "unscanned")
    assert isinstance(pending, NotScanned) and pending.reason == "pending"


def test_every_public_method_of_the_cve_service_has_a_caller_in_the_registry() -> None:
    """Query rules live in search only: a method only tests call would be a second rule that can drift from the one users get."""
    root = Path(__file__).resolve().parents[2]
    sources = [p.read_text() for p in [root / "app.py", *(root / "chalicelib").rglob("*.py")] if p.name != "service.py" or p.parent.name != "cve"]
    public = [name for name, value in vars(CveService).items() if callable(value) and not name.startswith("_")]
    uncalled = [name for name in public if not any(re.search(rf"\.{name}\(", text) for text in sources)]
    assert public and uncalled == []


def test_a_multi_platform_index_is_scanned_per_platform(client: Client, cve: CveService) -> None:
    amd, amd_body = client.push_image("multi", "amd64", debian_image(OLD_OPENSSL))
    alpine = gzip_layer({"etc/os-release": ALPINE_RELEASE, "lib/apk/db/installed": apk_installed(("musl", "1.2.4_git20230717-r4", "musl"))})
    arm, arm_body = client.push_image("multi", "arm64", [alpine], {"architecture": "arm64", "os": "linux"})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": len(amd_body), "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": len(arm_body), "platform": {"architecture": "arm64", "os": "linux"}},
    ]}  # fmt: skip
    body = json.dumps(index).encode()
    assert client("PUT", "/v2/multi/manifests/latest", body, {"Content-Type": OCI_INDEX}).status == 201
    assert set(packages(cve.scan("multi", sha256(body)))) == {"CVE-2023-5363", "CVE-2024-0001"}
    assert set(packages(tag_result(cve, "multi", "arm64"))) == {"CVE-2024-0001"}


def test_a_database_update_changes_the_answer_without_reading_layers_again(client: Client, cve: CveService, service) -> None:
    digest, _ = client.push_image("upd", "v1", debian_image(NEW_OPENSSL))
    assert packages(cve.scan("upd", digest)) == {}
    records = [*standard_records(), osv("DSA-9999-1", "Debian:12", "openssl", fixed="3.0.13-1", aliases=["CVE-2024-9999"])]
    before = cve.db.current()
    after = cve.db.load(records, "test 2")
    assert before is not None and after.previous == before.version
    calls = count_calls(service)
    assert cve.rematch_all() == 1
    assert packages(tag_result(cve, "upd", "v1")) == {"CVE-2024-9999": [("libssl3", "3.0.11-1~deb12u2", "3.0.13-1")]}
    assert not any(key.startswith("/blobs") for key in calls.s3_keys), "re-matching reads no layer"


def test_a_failed_update_leaves_the_previous_version_serving(cve: CveService) -> None:
    serving = cve.db.current()

    def broken():
        yield from standard_records()
        raise OSError("download cut")

    with pytest.raises(OSError):
        cve.db.load(broken(), "broken")
    assert cve.db.current() == serving
    assert serving is not None
    versions = {o.key.split("/")[2] for o in cve.db.store.list(PREFIX)}
    assert versions == {serving.version}


def test_three_updates_keep_two_versions(cve: CveService) -> None:
    for n in range(3):
        cve.db.load(standard_records(), f"load {n}")
    current = cve.db.current()
    assert current is not None
    assert {o.key.split("/")[2] for o in cve.db.store.list(PREFIX)} == {current.version, current.previous}


class Calls:
    def __init__(self) -> None:
        self.operations: Counter[str] = Counter()
        self.s3_keys: list[str] = []

    def __call__(self, model, params, **_: object) -> None:
        self.operations[model.name] += 1
        if "Key" in params and isinstance(params["Key"], str):
            self.s3_keys.append("/" + params["Key"].split("/", 1)[0])


def count_calls(service) -> Calls:
    calls = Calls()
    for client in (service.store.client, service.index.table.client):
        client.meta.events.register("provide-client-params", calls)
    return calls


def test_the_second_query_is_a_cache_hit(client: Client, cve: CveService, service) -> None:
    digest, _ = client.push_image("cached", "v1", debian_image(OLD_OPENSSL))
    cve.scan("cached", digest)
    calls = count_calls(service)
    first = tag_result(cve, "cached", "v1")
    first_calls = Counter(calls.operations)
    second = tag_result(cve, "cached", "v1")
    assert first == second
    assert calls.operations - first_calls == Counter({"GetItem": 2}), "a tag lookup and the cached result; no S3 read, no scan"


def test_the_worker_scans_after_a_push_and_catches_up_on_start(client: Client, cve: CveService, service) -> None:
    client.push_image("work", "early", debian_image(OLD_OPENSSL))
    worker = ScanWorker(cve)
    for registry in service.api.registry.locations.values():
        registry.listeners.append(worker.notify)
    worker.start()
    client.push_image("work", "late", debian_image(NEW_OPENSSL))
    worker.idle()
    assert set(packages(tag_result(cve, "work", "early"))) == {"CVE-2023-5363"}
    assert packages(tag_result(cve, "work", "late")) == {}
    worker.stop()


def test_an_image_scanned_before_any_database_says_so(service, client: Client) -> None:
    scans = CveService(service.api.registry, service.index, service.store)
    digest, _ = client.push_image("nodb", "v1", debian_image(OLD_OPENSSL))
    outcome = scans.scan("nodb", digest)
    assert isinstance(outcome, NotScanned) and outcome.reason == "no database"
    scans.db.load(standard_records(), "late")
    scans.rematch_all()
    assert set(packages(tag_result(scans, "nodb", "v1"))) == {"CVE-2023-5363"}


def test_loading_reads_only_the_found_packages_advisories(client: Client, cve: CveService, service) -> None:
    many = [osv(f"GHSA-{n}", "npm", f"pkg{n}", fixed="2.0.0") for n in range(50)]
    cve.db.load([*standard_records(), *many], "big")
    digest, _ = client.push_image("few", "v1", debian_image(OLD_OPENSSL))
    calls = count_calls(service)
    cve.scan("few", digest)
    advisory_reads = [k for k in calls.s3_keys if k == "/_cve"]
    assert len(advisory_reads) == 2, "the Debian:12 index and openssl's advisories"
    assert isinstance(AdvisoryDb, type)


def test_rpm_packages_are_read_from_a_sqlite_rpmdb(client: Client, cve: CveService) -> None:
    from tests.cve_images import ALMA_RELEASE, rpm_header_blob, rpmdb_sqlite

    cve.db.load([*standard_records(), osv("ALSA-2024:0001", "AlmaLinux:9", "openssl", fixed="1:3.0.7-25.el9_3", aliases=["CVE-2023-5678"])], "alma")
    database = rpmdb_sqlite(
        rpm_header_blob("openssl-libs", "3.0.7", "24.el9", 1, "openssl-3.0.7-24.el9.src.rpm"),
        rpm_header_blob("bash", "5.1.8", "6.el9", None, "bash-5.1.8-6.el9.src.rpm"),
    )
    result = push_and_scan(client, cve, "alma", "9", [gzip_layer({"etc/os-release": ALMA_RELEASE, "var/lib/rpm/rpmdb.sqlite": database})])
    assert packages(result) == {"CVE-2023-5678": [("openssl-libs", "1:3.0.7-24.el9", "1:3.0.7-25.el9_3")]}
