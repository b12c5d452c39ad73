# ruff: noqa: E501  (GraphQL texts and their expected answers stay one line each)
"""CVE scanning behind a real `zotless serve`: images pushed with skopeo are scanned by the server's worker."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.adapters.emulator import start_moto
from chalicelib.api.service import build_service
from chalicelib.config.schema import Config
from chalicelib.cve.results import NotScanned, ScanResult
from chalicelib.cve.service import CveService
from tests.cve_images import DEBIAN_RELEASE, dist_info, dpkg_entry, dpkg_status, gzip_layer, standard_records, tag_result
from tests.integration.conftest import RunningRegistry, _start, _stop, run_skopeo
from tests.integration.images import _write_blob

pytestmark = pytest.mark.integration
SCAN_DEADLINE = 60.0


def layout(path: Path, tag: str, layers: list[bytes]) -> None:
    """An OCI layout of one image whose layers are the given gzipped tars."""
    path.mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest() for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _write_blob(path, config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _write_blob(path, layer), "size": len(layer)} for layer in layers],
    }).encode()  # fmt: skip
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _write_blob(path, manifest), "size": len(manifest)}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor | {"annotations": {"org.opencontainers.image.ref.name": tag}}]}))


@pytest.fixture(scope="module")
def scanning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningRegistry, CveService]]:
    tmp = tmp_path_factory.mktemp("cve")
    advisories = tmp / "osv"
    advisories.mkdir()
    for record in standard_records():
        (advisories / f"{record['id']}.json").write_text(json.dumps(record))
    emulator = start_moto(tmp / "moto.log")
    config = {
        "storage": {"storageDriver": {"bucket": "zotless-cve", "regionendpoint": emulator.endpoint}, "cacheDriver": {"endpoint": emulator.endpoint}},
        "extensions": {"search": {"enable": True, "cve": {"updateInterval": "24h", "source": str(advisories)}}},
    }
    server = _start(tmp, config, "--no-emulator")
    service = build_service(Config.model_validate(config))
    try:
        yield server, CveService(service.api.registry, service.index, service.store)
    finally:
        server.session.close()
        _stop(server.process)
        emulator.stop()


def answer(cve: CveService, repo: str, tag: str) -> ScanResult:
    """The worker scans asynchronously: ask until the cache has the answer (the query itself never waits)."""
    deadline = time.monotonic() + SCAN_DEADLINE
    while time.monotonic() < deadline:
        outcome = tag_result(cve, repo, tag)
        if isinstance(outcome, ScanResult):
            return outcome
        assert isinstance(outcome, NotScanned) and outcome.reason in ("pending", "no database"), outcome
        time.sleep(0.5)
    raise AssertionError(f"{repo}:{tag} not scanned within {SCAN_DEADLINE:.0f}s")


def test_images_pushed_with_skopeo_are_scanned_on_push(skopeo: str, scanning: tuple[RunningRegistry, CveService], tmp_path: Path) -> None:
    server, cve = scanning
    old = dpkg_status(dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl"))
    new = dpkg_status(dpkg_entry("libssl3", "3.0.11-1~deb12u2", "openssl"))
    base = gzip_layer({"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": old} | dist_info("requests", "2.30.0"))
    whiteout = gzip_layer({"usr/lib/python3/dist-packages/.wh.requests-2.30.0.dist-info": b""})
    images = {"1.0": [base], "1.1": [base, whiteout], "2.0": [gzip_layer({"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": new})]}
    for tag, layers in images.items():
        layout(tmp_path / tag, tag, layers)
        run_skopeo(skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / tag}:{tag}", f"docker://{server.host}/web:{tag}")
    found = {tag: {c["Id"]: [p["FixedVersion"] for p in c["PackageList"]] for c in answer(cve, "web", tag).cves} for tag in images}
    assert found == {
        "1.0": {"CVE-2023-5363": ["3.0.11-1~deb12u2"], "CVE-2023-32681": ["2.31.0"]},
        "1.1": {"CVE-2023-5363": ["3.0.11-1~deb12u2"]},
        "2.0": {},
    }
    affected = search(server, '{ImageListForCVE(id: "CVE-2023-5363"){Results {RepoName Tag}}}')["ImageListForCVE"]["Results"]
    assert sorted(i["Tag"] for i in affected if i["RepoName"] == "web") == ["1.0", "1.1"]
    fixed = search(server, '{ImageListWithCVEFixed(id: "CVE-2023-5363", image: "web"){Results {Tag}}}')["ImageListWithCVEFixed"]["Results"]
    assert fixed == [{"Tag": "2.0"}]


def search(server: RunningRegistry, text: str) -> dict:
    """One GraphQL query over HTTP, as zui sends it (GET ?query=)."""
    response = server("GET", "/v2/_zot/ext/search", params={"query": text})
    document = response.json()
    assert response.status_code == 200 and "errors" not in document, document
    return document["data"]


def test_graphql_answers_cve_queries_from_the_scans(skopeo: str, scanning: tuple[RunningRegistry, CveService], tmp_path: Path) -> None:
    server, cve = scanning
    old = dpkg_status(dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl"))
    new = dpkg_status(dpkg_entry("libssl3", "3.0.11-1~deb12u2", "openssl"))
    images = {"1.0": gzip_layer({"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": old}), "1.1": gzip_layer({"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": new})}
    for tag, layer in images.items():
        layout(tmp_path / tag, tag, [layer])
        run_skopeo(skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / tag}:{tag}", f"docker://{server.host}/gql/app:{tag}")
    for tag in images:
        answer(cve, "gql/app", tag)  # the worker has scanned it: the queries below read its cached result
    listed = search(server, '{CVEListForImage(image: "gql/app:1.0"){Tag CVEList {Id PackageList {Name FixedVersion}} Summary {MaxSeverity Count}}}')
    assert listed["CVEListForImage"] == {
        "Tag": "1.0",
        "CVEList": [{"Id": "CVE-2023-5363", "PackageList": [{"Name": "libssl3", "FixedVersion": "3.0.11-1~deb12u2"}]}],
        "Summary": {"MaxSeverity": "CRITICAL", "Count": 1},
    }
    fixed = search(server, '{ImageListWithCVEFixed(id: "CVE-2023-5363", image: "gql/app"){Results {Tag Vulnerabilities {MaxSeverity}}}}')
    assert fixed["ImageListWithCVEFixed"]["Results"] == [{"Tag": "1.1", "Vulnerabilities": {"MaxSeverity": "NONE"}}]
    affected = search(server, '{ImageListForCVE(id: "CVE-2023-5363"){Results {RepoName Tag}}}')["ImageListForCVE"]["Results"]
    assert {"RepoName": "gql/app", "Tag": "1.0"} in affected and {"RepoName": "gql/app", "Tag": "1.1"} not in affected
    badges = search(server, '{ImageList(repo: "gql/app"){Results {Tag Vulnerabilities {MaxSeverity Count}}}}')["ImageList"]["Results"]
    assert badges == [{"Tag": "1.0", "Vulnerabilities": {"MaxSeverity": "CRITICAL", "Count": 1}}, {"Tag": "1.1", "Vulnerabilities": {"MaxSeverity": "NONE", "Count": 0}}]
