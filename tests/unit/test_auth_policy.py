"""zot's accessControl: glob matching, the longest matching glob, named, group, default, anonymous and admin policies."""

from __future__ import annotations

import pytest

from chalicelib.auth.policy import ALL_ACTIONS, Policy, glob_regex
from chalicelib.config.schema import AccessControl


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("**", ["a", "a/b", "a/b/c"], []),
        ("team/*", ["team/app"], ["team", "team/a/b", "teams/app"]),
        ("team/**", ["team", "team/app", "team/a/b"], ["teams/app", "other/team/app"]),
        ("a/**/b", ["a/b", "a/x/b", "a/x/y/b"], ["a/xb", "b"]),
        ("**/app", ["app", "x/app", "x/y/app"], ["xapp", "app/x"]),
        ("app-?", ["app-1"], ["app-12", "app-"]),
        ("app-[ab]", ["app-a", "app-b"], ["app-c"]),
        ("app-[!ab]", ["app-c"], ["app-a"]),
        ("{dev,prod}/*", ["dev/x", "prod/x"], ["test/x"]),
        ("exact/name", ["exact/name"], ["exact/name/x", "exact/names"]),
        ("a.b/c+d", ["a.b/c+d"], ["axb/c+d"]),
    ],
)
def test_globs_match_like_doublestar(pattern: str, matches: list[str], misses: list[str]):
    regex = glob_regex(pattern)
    assert all(regex.match(name) for name in matches), [n for n in matches if not regex.match(n)]
    assert not any(regex.match(name) for name in misses), [n for n in misses if regex.match(n)]


def policy(**control: object) -> Policy:
    return Policy(AccessControl.model_validate(control))


def test_longest_matching_glob_decides_alone():
    p = policy(repositories={"**": {"defaultPolicy": ["read", "create"]}, "secret/**": {"policies": [{"users": ["alice"], "actions": ["read"]}]}})
    assert p.actions("bob", "any/thing") == {"read", "create"}
    assert p.actions("bob", "secret/x") == frozenset()  # the longer glob wins; ** does not add to it
    assert p.actions("alice", "secret/x") == {"read"}


def test_named_group_default_and_anonymous_policies():
    p = policy(
        groups={"devs": {"users": ["bob"]}},
        repositories={"**": {"policies": [{"users": ["alice"], "actions": ["delete"]}, {"groups": ["devs"], "actions": ["create"]}],
                             "defaultPolicy": ["read"], "anonymousPolicy": ["read"]}},
    )
    assert p.actions("alice", "r") == {"read", "delete"}  # a named policy adds to the default one
    assert p.actions("bob", "r") == {"read", "create"}
    assert p.actions("carol", "r") == {"read"}
    assert p.actions(None, "r") == {"read"}
    assert p.groups_of("bob") == {"devs"} and p.groups_of(None) == frozenset()


def test_anonymous_gets_only_the_anonymous_policy():
    p = policy(repositories={"**": {"defaultPolicy": ["read", "create"], "policies": [{"users": [""], "actions": ["delete"]}]}})
    assert p.actions(None, "r") == frozenset()
    assert not p.anonymous_reads_anything()


def test_admin_policy_applies_everywhere_by_user_or_group():
    p = policy(
        groups={"ops": {"users": ["olga"]}},
        repositories={"team/**": {"policies": [{"users": ["alice"], "actions": ["read"]}]}},
        adminPolicy={"users": ["root"], "groups": ["ops"], "actions": ["read", "delete"]},
    )
    assert p.actions("root", "team/x") == {"read", "delete"}
    assert p.actions("root", "unmatched") == {"read", "delete"}
    assert p.actions("olga", "team/x") == {"read", "delete"}
    assert p.actions("alice", "unmatched") == frozenset()
    assert p.actions(None, "team/x") == frozenset()


def test_without_access_control_users_may_all_and_anonymous_nothing():
    p = Policy(None)
    assert p.actions("anyone", "r") == ALL_ACTIONS
    assert p.actions(None, "r") == frozenset()


def test_one_line_anonymous_pull_authenticated_push():
    p = policy(repositories={"**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read", "create", "update", "delete"]}})
    assert p.actions(None, "a/b") == {"read"} and p.anonymous_reads_anything()
    assert p.actions("alice", "a/b") == ALL_ACTIONS
