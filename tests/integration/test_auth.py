"""Authentication and access control against a real `zotless serve`: skopeo, oras and raw HTTP with credentials.

Two servers share examples/htpasswd and one accessControl: `token_registry` issues its own tokens (Bearer
challenges), `basic_registry` answers Basic challenges. alice owns public/** and private/**, bob only team/**,
anonymous may read public/**.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path
from urllib.request import parse_http_list

import jwt
import pytest
import requests
from oras.client import OrasClient

from tests.integration.authconfig import KEY, PASSWORDS, creds
from tests.integration.conftest import RunningRegistry, run_skopeo, sha256
from tests.integration.images import make_layout

pytestmark = pytest.mark.integration


@pytest.fixture(params=["token_registry", "basic_registry"], ids=["bearer", "basic"])
def auth_registry(request: pytest.FixtureRequest) -> RunningRegistry:
    return request.getfixturevalue(request.param)


def name(prefix: str) -> str:
    return f"{prefix}/it-{uuid.uuid4().hex[:10]}"


def skopeo_run(skopeo: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([skopeo, "--insecure-policy", *args], capture_output=True, text=True, timeout=120, check=False)


def push(skopeo: str, registry: RunningRegistry, layout: Path, target: str, *cred_args: str) -> subprocess.CompletedProcess[str]:
    return skopeo_run(skopeo, "copy", "--dest-tls-verify=false", *cred_args, f"oci:{layout}:1.0", f"docker://{registry.host}/{target}")


def pull(skopeo: str, registry: RunningRegistry, source: str, destination: Path, *cred_args: str) -> subprocess.CompletedProcess[str]:
    return skopeo_run(skopeo, "copy", "--src-tls-verify=false", *cred_args, f"docker://{registry.host}/{source}", f"oci:{destination}:1.0")


def challenge(response: requests.Response) -> tuple[str, dict[str, str]]:
    header = response.headers.get("WWW-Authenticate")
    assert header, f"{response.request.method} {response.url}: {response.status_code} without WWW-Authenticate"
    scheme, _, rest = header.partition(" ")
    return scheme, {k.strip(): v.strip().strip('"') for k, _, v in (item.partition("=") for item in parse_http_list(rest))}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth-layout") / "image"
    make_layout(path, "1.0", [200_000, 1000])
    return path


def test_ping_without_credentials_is_401_with_a_challenge(auth_registry: RunningRegistry) -> None:
    response = auth_registry("GET", "/v2/")
    assert response.status_code == 401
    scheme, params = challenge(response)
    if scheme == "Bearer":
        assert params == {"realm": f"{auth_registry.url}/auth/token", "service": "zotless"}
    else:
        assert (scheme, params) == ("Basic", {"realm": "zotless"})
    assert auth_registry("GET", "/v2/", auth=("alice", PASSWORDS["alice"])).status_code == 200


def test_skopeo_pushes_with_creds_and_anyone_pulls_public(skopeo: str, auth_registry: RunningRegistry, layout: Path, tmp_path: Path) -> None:
    repo = name("public")
    pushed = push(skopeo, auth_registry, layout, f"{repo}:1.0", "--dest-creds", creds("alice"))
    assert pushed.returncode == 0, pushed.stderr
    anonymous = pull(skopeo, auth_registry, f"{repo}:1.0", tmp_path / "anonymous", "--src-no-creds")
    assert anonymous.returncode == 0, anonymous.stderr
    with_creds = pull(skopeo, auth_registry, f"{repo}:1.0", tmp_path / "bob", "--src-creds", creds("bob"))
    assert with_creds.returncode == 0, with_creds.stderr
    tags = run_skopeo(skopeo, "list-tags", "--tls-verify=false", "--no-creds", f"docker://{auth_registry.host}/{repo}")
    assert json.loads(tags)["Tags"] == ["1.0"]


def test_skopeo_anonymous_push_and_wrong_password_are_refused(skopeo: str, auth_registry: RunningRegistry, layout: Path) -> None:
    anonymous = push(skopeo, auth_registry, layout, f"{name('public')}:1.0", "--dest-no-creds")
    assert anonymous.returncode != 0
    assert "unauthorized" in anonymous.stderr.lower() or "authentication required" in anonymous.stderr.lower(), anonymous.stderr
    wrong = push(skopeo, auth_registry, layout, f"{name('public')}:1.0", "--dest-creds", "alice:not-her-password")
    assert wrong.returncode != 0  # at once: failDelay is not slept (tests/integration/test_auth_findings.py)
    failures = [e for e in auth_registry.log_entries("zotless.auth") if "failed login" in e["message"]]
    assert failures and "'alice'" in failures[-1]["message"] and "127.0.0.1" in failures[-1]["message"]
    log = auth_registry.log_path.read_text()
    assert "not-her-password" not in log and "Authorization" not in log and PASSWORDS["alice"] not in log


def test_user_limited_to_one_glob(skopeo: str, auth_registry: RunningRegistry, layout: Path, tmp_path: Path) -> None:
    """bob may use team/** only: he cannot read, push to, mount from or list alice's private repositories."""
    private, team = name("private"), name("team")
    assert push(skopeo, auth_registry, layout, f"{private}:1.0", "--dest-creds", creds("alice")).returncode == 0
    pushed = push(skopeo, auth_registry, layout, f"{team}:1.0", "--dest-creds", creds("bob"))
    assert pushed.returncode == 0, pushed.stderr
    assert push(skopeo, auth_registry, layout, f"{name('private')}:1.0", "--dest-creds", creds("bob")).returncode != 0
    assert pull(skopeo, auth_registry, f"{private}:1.0", tmp_path / "stolen", "--src-creds", creds("bob")).returncode != 0
    inspect = skopeo_run(skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", creds("bob"), f"docker://{auth_registry.host}/{private}:1.0")
    assert inspect.returncode != 0

    bob = ("bob", PASSWORDS["bob"])
    manifest = auth_registry("GET", f"/v2/{private}/manifests/1.0", auth=("alice", PASSWORDS["alice"])).json()
    layer = manifest["layers"][0]["digest"]
    assert auth_registry("GET", f"/v2/{private}/manifests/1.0", auth=bob).status_code == 403
    assert auth_registry("GET", f"/v2/{private}/manifests/absent", auth=bob).status_code == 403  # not 404: nothing leaks
    mounted = auth_registry("POST", f"/v2/{team}/blobs/uploads/", params={"mount": layer, "from": private}, auth=bob)
    assert mounted.status_code == 202  # an upload session, not the blob
    catalog = auth_registry("GET", "/v2/_catalog", params={"n": 1000}, auth=bob).json()["repositories"]
    assert team in catalog and not any(r.startswith("private/") for r in catalog)


def test_oras_with_creds(auth_registry: RunningRegistry, tmp_path: Path) -> None:
    """oras-py: push with Basic credentials on every request; pull anonymously (with an anonymous token on the bearer server)."""
    repo = name("public")
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello with credentials\n")
    pusher = OrasClient(hostname=auth_registry.host, insecure=True, tls_verify=False, auth_backend="basic")
    pusher.auth.set_basic_auth("alice", PASSWORDS["alice"])
    assert pusher.push(target=f"{auth_registry.host}/{repo}:v1", files=[str(path)], disable_path_validation=True, quiet=True).status_code == 201

    anonymous = OrasClient(hostname=auth_registry.host, insecure=True, tls_verify=False)
    pulled = anonymous.pull(target=f"{auth_registry.host}/{repo}:v1", outdir=str(tmp_path / "out"))
    assert [Path(p).read_bytes() for p in pulled] == [path.read_bytes()]

    intruder = OrasClient(hostname=auth_registry.host, insecure=True, tls_verify=False, auth_backend="basic")
    intruder.auth.set_basic_auth("bob", PASSWORDS["bob"])
    with pytest.raises(Exception):  # noqa: B017 - oras-py raises a bare ValueError or HTTPError on 403
        intruder.push(target=f"{auth_registry.host}/{name('private')}:v1", files=[str(path)], disable_path_validation=True, quiet=True)


def test_oras_token_backend_fetches_tokens_with_creds(token_registry: RunningRegistry, tmp_path: Path) -> None:
    repo = name("public")
    path = tmp_path / "data.bin"
    path.write_bytes(b"token flow\n" * 100)
    client = OrasClient(hostname=token_registry.host, insecure=True, tls_verify=False)
    client.auth.set_basic_auth("alice", PASSWORDS["alice"])
    assert client.push(target=f"{token_registry.host}/{repo}:v1", files=[str(path)], disable_path_validation=True, quiet=True).status_code == 201
    assert client.auth.token  # it answered the Bearer challenge with a token from /auth/token
    anonymous = OrasClient(hostname=token_registry.host, insecure=True, tls_verify=False)
    pulled = anonymous.pull(target=f"{token_registry.host}/{repo}:v1", outdir=str(tmp_path / "o"))
    assert Path(pulled[0]).read_bytes() == path.read_bytes()


def test_token_flow_over_http(token_registry: RunningRegistry) -> None:
    """Challenge, token fetch with the challenge's scope, then the request with the bearer token."""
    repo = name("team")
    refused = token_registry("POST", f"/v2/{repo}/blobs/uploads/")
    scheme, params = challenge(refused)
    assert refused.status_code == 401 and scheme == "Bearer" and params["scope"] == f"repository:{repo}:pull,push"
    issued = requests.get(params["realm"], params={"service": params["service"], "scope": params["scope"]}, auth=("bob", PASSWORDS["bob"]), timeout=30)
    assert issued.status_code == 200
    document = issued.json()
    assert document["token"] == document["access_token"] and document["expires_in"] == 300 and document["issued_at"].endswith("Z")
    bearer = {"Authorization": f"Bearer {document['token']}"}
    data = b"pushed with a token"
    pushed = token_registry("POST", f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, data=data, headers=bearer)
    assert pushed.status_code == 201, pushed.text
    assert token_registry("HEAD", f"/v2/{repo}/blobs/{sha256(data)}", headers=bearer).status_code == 200

    other = token_registry("HEAD", f"/v2/{name('team')}/blobs/{sha256(data)}", headers=bearer)
    assert other.status_code == 401 and challenge(other)[1]["error"] == "insufficient_scope"


def test_expired_and_tampered_tokens(token_registry: RunningRegistry) -> None:
    repo = name("public")
    issued = requests.get(f"{token_registry.url}/auth/token", params={"scope": f"repository:{repo}:pull"}, auth=("alice", PASSWORDS["alice"]), timeout=30)
    token = issued.json()["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    expired = jwt.encode(claims | {"iat": claims["iat"] - 600, "exp": claims["iat"] - 300}, KEY, algorithm="HS256")
    header, _, signature = token.split(".")
    widened = claims | {"access": [{"type": "repository", "name": "private/x", "actions": ["pull", "push", "delete"]}]}
    tampered = ".".join([header, base64.urlsafe_b64encode(json.dumps(widened).encode()).rstrip(b"=").decode(), signature])
    assert token_registry("GET", f"/v2/{repo}/tags/list", headers={"Authorization": f"Bearer {token}"}).status_code == 404  # valid: no such repo yet
    for bad in (expired, tampered):
        response = token_registry("GET", f"/v2/{repo}/tags/list", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401 and challenge(response)[1]["error"] == "invalid_token"
    assert token not in token_registry.log_path.read_text()


def test_every_401_carries_www_authenticate(auth_registry: RunningRegistry) -> None:
    """containers/image sends credentials only where a challenge asked for them: a bare 401 strands it."""
    repo = name("team")
    cases = [
        ("GET", "/v2/", {}),
        ("GET", f"/v2/{repo}/manifests/1", {}),
        ("HEAD", f"/v2/{repo}/manifests/1", {}),
        ("PUT", f"/v2/{repo}/manifests/1", {}),
        ("POST", f"/v2/{repo}/blobs/uploads/", {}),
        ("DELETE", f"/v2/{repo}/blobs/{sha256(b'x')}", {}),
        ("GET", f"/v2/{repo}/tags/list", {"auth": ("bob", "wrong")}),
        ("GET", "/v2/_catalog", {"headers": {"Authorization": "Bearer not-a-token"}}),
    ]
    for method, path, extra in cases:
        response = auth_registry(method, path, **extra)
        assert response.status_code == 401, (method, path, response.status_code)
        challenge(response)
