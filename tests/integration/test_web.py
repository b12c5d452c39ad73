"""The web page in a real browser (Debian's chromium driven by Playwright) against `zotless serve`.

Images are pushed by skopeo (and a signature and an SBOM by oras); every page is screenshotted to
bench/results/screenshots/ (git-ignored), with a phone-width and a dark-mode one, and the page's
transfer and first paint are written to bench/results/web.json for the README.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.api.endpoints import WEB_PATH
from tests.integration.authconfig import PASSWORDS, creds
from tests.integration.conftest import RunningRegistry, run_skopeo
from tests.integration.images import push_showcase

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "screenshots"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module: the system browser, never a downloaded one."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
    if not shutil.which(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium, or `make` does)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab (its own sessionStorage) that may use the clipboard; a failed test leaves a screenshot of it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    failed_before = request.session.testsfailed
    yield tab
    if request.session.testsfailed > failed_before:
        shot(tab, f"failed-{request.node.name}")
    context.close()
    assert not errors, f"the page threw: {errors}"


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def images(skopeo: str, registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A base image, an app on its layer (description, history, signature, SBOM) and a two-platform index."""
    tmp = tmp_path_factory.mktemp("web-images")
    about = "The app.\n\nRun it with `app run`; it serves on port 8080."
    history = ["/bin/sh -c #(nop) ADD os-release /etc/", "COPY app /app"]
    return push_showcase(skopeo, registry.host, tmp, f"web/{uuid.uuid4().hex[:8]}", about, history)


def repo_names(page: Any) -> list[str]:
    return page.locator("#repos h3").all_inner_texts()


def search_for(page: Any, text: str, expected: int) -> list[str]:
    """Types into the search box as a user does, then waits for the list to settle on `expected` repositories."""
    page.fill("#search", "")
    page.locator("#search").press_sequentially(text)
    page.wait_for_function(
        "q => { const list = document.querySelector('#repos'); return list.dataset.query === q && !list.hasAttribute('aria-busy'); }", arg=text
    )
    assert len(repo_names(page)) == expected, repo_names(page)
    return repo_names(page)


def settled(page: Any) -> list[str]:
    """The repository list once the request a filter change started has been answered."""
    page.wait_for_selector("#repos:not([aria-busy])")
    return repo_names(page)


def test_the_server_root_opens_the_page_and_search_filters_and_sorts(page: Any, registry: RunningRegistry, images: dict[str, str]) -> None:
    prefix = images["prefix"]
    page.goto(registry.url + "/")
    assert page.url == registry.url + WEB_PATH
    page.wait_for_selector("#repos .card")
    shot(page, "1-repositories")
    assert sorted(search_for(page, prefix, 3)) == [f"{prefix}/app", f"{prefix}/base", f"{prefix}/multi"]
    shot(page, "2-search")
    page.select_option("#arch", "arm64")
    assert settled(page) == [f"{prefix}/multi"]
    page.select_option("#arch", "")
    page.check("#signed")
    assert settled(page) == [f"{prefix}/app"]
    page.uncheck("#signed")
    page.select_option("#sort", "ALPHABETIC_DSC")
    assert settled(page) == [f"{prefix}/multi", f"{prefix}/base", f"{prefix}/app"]
    page.select_option("#sort", "ALPHABETIC_ASC")
    assert settled(page) == [f"{prefix}/app", f"{prefix}/base", f"{prefix}/multi"]
    assert search_for(page, f"{prefix}/nothing-here", 0) == []


def test_keyboard_reaches_search_and_opens_a_repository(page: Any, registry: RunningRegistry, images: dict[str, str]) -> None:
    page.goto(registry.url + WEB_PATH)
    page.wait_for_selector("#repos .card")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.type(images["prefix"] + "/base")
    page.wait_for_function("q => document.querySelector('#repos').dataset.query === q", arg=images["prefix"] + "/base")
    for _ in range(5):  # from the search box: OS, architecture, signed, sort, then the first result's link
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == images["prefix"] + "/base"
    page.keyboard.press("Enter")
    page.wait_for_selector("#tags")
    assert page.locator("h1").inner_text() == images["prefix"] + "/base"


def test_repository_page_shows_tags_and_the_description_and_copies_a_pull_command(page: Any, registry: RunningRegistry, images: dict[str, str]) -> None:
    name = f"{images['prefix']}/app"
    page.goto(registry.url + WEB_PATH)
    search_for(page, name, 1)
    page.click(f"#repos a:text-is('{name}')")
    page.wait_for_selector("#tags")
    assert "serves on port 8080" in page.inner_text("#about")
    rows = page.locator("#tags tbody tr").all_inner_texts()
    assert any(row.startswith("1.0") and "linux/amd64" in row and "signed" in row for row in rows), rows
    assert page.locator("#tags button.danger").count() == len(rows)  # no auth: everyone may delete
    shot(page, "3-repository")
    expected = f"docker pull {registry.host}/{name}:1.0"
    page.select_option("#pull-tag", "1.0")
    assert page.inner_text("#pull-command") == expected
    page.click("#copy")
    page.wait_for_function("() => document.querySelector('#copy-status').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == expected
    page.select_option("#pull-tool", "skopeo")
    assert page.inner_text("#pull-command").startswith(f"skopeo copy --src-tls-verify=false docker://{registry.host}/{name}:1.0 ")
    page.select_option("#pull-tool", "oras")
    assert page.inner_text("#pull-command") == f"oras pull --plain-http {registry.host}/{name}:1.0"


def test_image_page_shows_layers_history_referrers_vulnerabilities_and_base(page: Any, registry: RunningRegistry, images: dict[str, str]) -> None:
    name = f"{images['prefix']}/app"
    page.goto(f"{registry.url}{WEB_PATH}#/repo/{name.replace('/', '%2F')}")
    page.click("#tags a:text-is('1.0')")
    page.wait_for_selector("#layers")
    assert page.locator("h1").inner_text() == f"{name}:1.0"
    assert images["app"] in page.inner_text(".facts")
    assert page.locator("#layers tbody tr").count() == 2
    history = page.locator("#history tbody tr").all_inner_texts()
    assert len(history) == 2 and "ADD os-release /etc/" in history[0] and "/bin/sh -c" not in history[0]
    kinds = sorted(row.split("\t")[0] for row in page.locator("#referrer-table tbody tr").all_inner_texts())
    assert kinds == ["SBOM", "signature"]
    assert page.locator("#vulns").inner_text() == "Vulnerabilities (0)"  # nothing scanned on this server
    assert page.get_by_role("link", name=f"{images['prefix']}/base:1").count() == 1
    shot(page, "4-image")
    page.get_by_role("link", name=f"{images['prefix']}/base:1").click()
    page.wait_for_function("n => document.querySelector('h1').textContent === n", arg=f"{images['prefix']}/base:1")
    assert page.get_by_role("link", name=f"{name}:1.0").count() == 1  # the app is built on the base


def test_vulnerabilities_are_listed_by_severity_with_the_fixed_version(page: Any, registry: RunningRegistry, images: dict[str, str]) -> None:
    """CVE answers in the schema's shape (this server scans nothing, so the browser is handed them in place of the empty ones)."""
    cves = [
        {"Id": "CVE-2024-0002", "Title": "low one", "Severity": "LOW", "Reference": "https://example.com/CVE-2024-0002",
         "PackageList": [{"Name": "zlib", "InstalledVersion": "1.2", "FixedVersion": ""}]},
        {"Id": "CVE-2024-0001", "Title": "bad one", "Severity": "CRITICAL", "Reference": "javascript:alert(1)",
         "PackageList": [{"Name": "openssl", "InstalledVersion": "3.0.1", "FixedVersion": "3.0.7"}]},
    ]  # fmt: skip
    summary = {"MaxSeverity": "CRITICAL", "Count": 2, "UnknownCount": 0, "LowCount": 1, "MediumCount": 0, "HighCount": 0, "CriticalCount": 1}

    def with_cves(route: Any) -> None:
        answer = route.fetch()
        document = answer.json()
        if "CVEListForImage" in (document.get("data") or {}):
            document["data"]["CVEListForImage"] = {"CVEList": cves, "Summary": summary}
        route.fulfill(response=answer, json=document)

    page.route("**/_zot/ext/search", with_cves)
    page.goto(f"{registry.url}{WEB_PATH}#/image/{quote(images['prefix'] + '/app', safe='')}/1.0")
    page.wait_for_selector("#cves")
    assert page.inner_text("#vulns") == "Vulnerabilities (2)"
    assert page.locator("#severity-counts .chip").all_inner_texts() == ["1 critical", "1 low"]
    rows = [row.split("\t") for row in page.locator("#cves tbody tr").all_inner_texts()]
    assert [r[:5] for r in rows] == [["critical", "CVE-2024-0001", "openssl", "3.0.1", "3.0.7"], ["low", "CVE-2024-0002", "zlib", "1.2", "not fixed"]]
    assert page.locator("#cves a").evaluate_all("links => links.map(a => a.href)") == ["https://example.com/CVE-2024-0002"]  # never a javascript: link
    page.locator("#vulns").scroll_into_view_if_needed()
    shot(page, "4b-vulnerabilities")


def test_deleting_a_tag_from_the_page(page: Any, registry: RunningRegistry, skopeo: str, images: dict[str, str]) -> None:
    name = f"{images['prefix']}/base"
    run_skopeo(
        skopeo, "copy", "--dest-tls-verify=false", "--src-tls-verify=false", f"docker://{registry.host}/{name}:1", f"docker://{registry.host}/{name}:old"
    )
    page.goto(f"{registry.url}{WEB_PATH}#/repo/{name.replace('/', '%2F')}")
    page.wait_for_selector("#tags button[data-tag='old']")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#tags button[data-tag='old']")
    page.wait_for_selector("text=Deleted")
    assert page.locator("#tags button[data-tag='old']").count() == 0
    assert registry("GET", f"/v2/{name}/manifests/old").status_code == 404
    assert registry("GET", f"/v2/{name}/manifests/1").status_code == 200


def test_phone_width_and_dark_mode(browser: Any, registry: RunningRegistry, images: dict[str, str]) -> None:
    name = f"{images['prefix']}/app"
    for label, options in (("5-phone", {"viewport": {"width": 390, "height": 844}, "is_mobile": True}), ("6-dark", {"color_scheme": "dark"})):
        context = browser.new_context(**options)
        tab = context.new_page()
        for view, ready in (("", "#repos .card"), (f"#/repo/{name.replace('/', '%2F')}", "#tags"), (f"#/image/{name.replace('/', '%2F')}/1.0", "#layers")):
            tab.goto(f"{registry.url}{WEB_PATH}{view}")
            tab.wait_for_selector(ready, timeout=TIMEOUT_MS)
            overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{label} {view or 'list'}: the page is {overflow}px wider than the screen"
            tab.screenshot(path=str(SHOTS / f"{label}-{ready.strip('#').split(' ')[0]}.png"), full_page=True)
        background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(20, 23, 27)") == (label == "6-dark"), background
        context.close()


def test_transfer_and_first_paint_are_measured(page: Any, registry: RunningRegistry, images: dict[str, str]) -> None:
    """Numbers for the README (bench/results/web.json); only the size is asserted, never a time."""
    page.goto(registry.url + WEB_PATH)
    page.wait_for_selector("#repos .card")
    measured = page.evaluate("""() => {
        const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        const files = entries.filter(e => !e.name.includes('/_zot/ext/'));
        return {requests: entries.length, transfer_bytes: entries.reduce((n, e) => n + e.transferSize, 0),
                page_files_bytes: files.reduce((n, e) => n + e.transferSize, 0),
                first_contentful_paint_ms: paint ? Math.round(paint.startTime) : null,
                list_rendered_ms: Math.round(performance.now())};
    }""")
    page.reload()
    page.wait_for_selector("#repos .card")
    cached = page.evaluate("performance.getEntriesByType('resource').filter(e => !e.name.includes('/_zot/ext/')).reduce((n, e) => n + e.transferSize, 0)")
    measured["page_files_bytes_on_reload"] = cached
    (SHOTS.parent / "web.json").write_text(json.dumps(measured, indent=2) + "\n")
    assert measured["page_files_bytes"] < 60_000, measured
    assert cached < measured["page_files_bytes"], measured  # hashed assets come from the cache, index.html is a 304


# With logins: examples/htpasswd users and the accessControl of tests/integration/authconfig.py.


@pytest.fixture(scope="module", params=["basic_registry", "token_registry"], ids=["basic", "bearer"])
def secured(request: pytest.FixtureRequest, skopeo: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One public and one private repository, pushed by alice; bob may read only the public one."""
    from tests.integration.images import make_layout

    basic_registry: RunningRegistry = request.getfixturevalue(request.param)
    layout = tmp_path_factory.mktemp("web-auth") / "image"
    make_layout(layout, "1.0", [1000])
    suffix = hashlib.sha256(str(layout).encode()).hexdigest()[:8]
    names = {"public": f"public/web-{suffix}", "private": f"private/web-{suffix}"}
    for name in names.values():
        run_skopeo(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", creds("alice"), f"oci:{layout}:1.0", f"docker://{basic_registry.host}/{name}:1.0")
    return {**names, "registry": basic_registry}


def log_in(page: Any, user: str, password: str) -> None:
    page.click("#login-link")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("form.login button[type=submit]")


def test_log_in_and_out_and_nobody_sees_a_repository_they_may_not_read(page: Any, secured: dict[str, Any]) -> None:
    """Basic credentials on every request, with Basic or Bearer challenges (a token is scoped to named repositories; search spans them)."""
    public, private, basic_registry = secured["public"], secured["private"], secured["registry"]
    page.goto(basic_registry.url + WEB_PATH)
    page.wait_for_selector("#login-link")
    assert search_for(page, public.split("/")[1], 1) == [public]  # anonymous: the public repository only
    page.goto(f"{basic_registry.url}{WEB_PATH}#/repo/{private.replace('/', '%2F')}")
    page.wait_for_selector(f"text=repository {private} not found")  # as for a repository that does not exist
    log_in(page, "bob", "wrong")
    page.wait_for_selector("text=Wrong user name or password.")
    shot(page, f"7-login-{basic_registry.log_path.parent.name}")
    page.fill("#password", PASSWORDS["bob"])
    page.click("form.login button[type=submit]")
    page.wait_for_selector("text=Signed in as bob")
    page.wait_for_selector("#repos .card")
    assert private not in search_for(page, public.split("/")[1], 1)
    assert repo_names(page) == [public]
    assert sorted(page.evaluate("Object.keys(sessionStorage)")) == ["zotless.auth", "zotless.user"]
    assert PASSWORDS["bob"] not in page.url
    page.goto(f"{basic_registry.url}{WEB_PATH}#/repo/{public.replace('/', '%2F')}")
    page.wait_for_selector("#tags")
    assert page.locator("#tags button.danger").count() == 0  # bob may read public/**, not delete
    page.click("#logout")
    page.wait_for_selector("#login-link")
    log_in(page, "alice", PASSWORDS["alice"])
    page.wait_for_selector("text=Signed in as alice")
    assert sorted(search_for(page, public.split("/")[1], 2)) == sorted([public, private])
    shot(page, f"8-logged-in-{basic_registry.log_path.parent.name}")
    page.click("#logout")
    page.wait_for_selector("#login-link")
    assert search_for(page, public.split("/")[1], 1) == [public]
    assert page.evaluate("sessionStorage.length") == 0


def test_a_registry_that_shows_nothing_anonymously_asks_for_a_login(page: Any, secured: dict[str, Any]) -> None:
    """Where the policy lets anonymous callers read nothing, search answers 401: the page shows its form, then the data."""
    registry = secured["registry"]

    def refuse_anonymous(route: Any) -> None:
        if route.request.headers.get("authorization"):
            route.continue_()
        else:
            route.fulfill(status=401, headers={"WWW-Authenticate": 'Basic realm="zotless"'}, json={"errors": [{"code": "UNAUTHORIZED"}]})

    page.route("**/_zot/ext/search", refuse_anonymous)
    page.goto(registry.url + WEB_PATH)
    page.wait_for_selector("text=This registry needs you to log in to browse it.")
    page.fill("#username", "bob")
    page.fill("#password", PASSWORDS["bob"])
    page.click("form.login button[type=submit]")
    page.wait_for_selector("text=Signed in as bob")
    assert search_for(page, secured["public"].split("/")[1], 1) == [secured["public"]]
