"""The auth-enabled servers of tests/integration/test_auth.py: examples/htpasswd users, tokens, accessControl."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY = "integration-test-signing-key-0123456789abcdef"
PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}  # examples/htpasswd
FAIL_DELAY = 0.3
ALL = ["read", "create", "update", "delete"]
CONTROL = {
    "repositories": {
        "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"], "policies": [{"users": ["alice"], "actions": ALL}]},
        "team/**": {"policies": [{"users": ["bob"], "actions": ALL}]},
        "private/**": {"policies": [{"users": ["alice"], "actions": ALL}]},
    },
    "adminPolicy": {"users": ["admin"], "actions": ALL},
}


def auth_server_config(bearer: bool) -> dict:
    """bearer: the registry issues tokens (Bearer challenge); else Basic challenges only."""
    auth: dict = {"htpasswd": {"path": str(ROOT / "examples" / "htpasswd")}, "failDelay": f"{FAIL_DELAY}s"}
    if bearer:
        auth["bearer"] = {"key": KEY, "expiry": "5m"}
    return {"http": {"auth": auth, "accessControl": CONTROL}}


def creds(user: str) -> str:
    return f"{user}:{PASSWORDS[user]}"
