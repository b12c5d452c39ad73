from tests.conftest import sha256


def test_push_and_pull(client):
    digest, body = client.push_image("team/app", "1.0", [b"layer-one", b"layer-two"])
    response = client("GET", "/v2/team/app/manifests/1.0")
    assert response.status == 200
    assert response.body_bytes() == body
    assert response.headers["Docker-Content-Digest"] == digest
    blob = client("GET", f"/v2/team/app/blobs/{sha256(b'layer-one')}")
    assert blob.status == 307
