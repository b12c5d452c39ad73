"""zot's userprefs endpoint when the repository goes away while a toggle runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.storage.index import CATALOG
from chalicelib.storage.userprefs import PREFS
from tests.conftest import error_code
from tests.faults import Faults
from tests.unit.authsetup import As, Setup, auth_config, basic


@pytest.fixture
def config(tmp_path: Path):
    return auth_config(tmp_path)


def forget_after_reading_prefs(service: Any, faults: Faults, user: str, repo: str) -> None:
    """Once the toggle has read the user's preferences, GC forgets the emptied repository (as if it ran just then)."""

    def forget(parsed: dict[str, Any]) -> bool:
        item = parsed.get("Item") or {}
        if item.get("repo", {}).get("S") != PREFS or item.get("key", {}).get("S") != user:
            return False
        assert service.index.forget_repository(repo, int(time.time()) + 60)
        return True

    faults.after("GetItem", forget)


@pytest.mark.parametrize("action", ["toggleStar", "toggleBookmark"])
def test_a_repository_forgotten_during_a_toggle_is_name_unknown(service: Any, action: str) -> None:
    """The existence is a condition of the write: a star gave 429 (retries exhausted) and a bookmark 200 for nothing."""
    setup, bob = Setup(service), As(service, basic("bob"))
    setup.push_image("team/other", "1", [b"o"])
    digest, _ = setup.push_image("team/gone", "1", [b"g"])
    assert setup("DELETE", f"/v2/team/gone/manifests/{digest}").status == 202  # emptied, still in the catalog
    assert bob("PUT", "/v2/_zot/ext/userprefs?repo=team/other&action=toggleBookmark").status == 200  # bob's item exists
    forget_after_reading_prefs(service, Faults().attach(service.index.table.client), "bob", "team/gone")
    response = bob("PUT", f"/v2/_zot/ext/userprefs?repo=team/gone&action={action}")
    assert response.status == 404 and error_code(response) == "NAME_UNKNOWN"
    assert service.index.table.get(CATALOG, "team/gone") is None  # the toggle recreated nothing
    prefs = service.index.table.get(PREFS, "bob") or {}
    assert "team/gone" not in set(prefs.get("stars") or ()) | set(prefs.get("bookmarks") or ())
    starred = json.loads(bob("GET", "/v2/_zot/ext/search?query=%7BStarredRepos%7BPage%7BTotalCount%7D%7D%7D").body_bytes())
    assert starred["data"]["StarredRepos"]["Page"]["TotalCount"] == 0
