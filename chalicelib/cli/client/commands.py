"""The client half of `zotless`: zli's command tree (config, image, images, cve, repo, search, status) and push, pull, copy."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from chalicelib.cli.client import output, search
from chalicelib.cli.client.errors import EXIT_NOT_FOUND, EXIT_USAGE, ClientError
from chalicelib.cli.client.http import Registry
from chalicelib.cli.client.images import read_image
from chalicelib.cli.client.progress import reporter
from chalicelib.cli.client.references import LayoutRef, RegistryRef, is_loopback, parse_digest, parse_reference, parse_registry_reference, split_image
from chalicelib.cli.client.settings import KEYS, ConfigFile, check_url
from chalicelib.cli.client.transfer import PushOptions, push_image, write_layout


@dataclass
class Common:
    """The options every client command takes."""

    config: str | None
    url: str | None
    user: str | None
    fmt: str
    verbose: bool

    def credentials(self) -> tuple[str, str] | None:
        return _split_user(self.user) if self.user else None


def _split_user(value: str) -> tuple[str, str]:
    """-u user:pass, or -u user and the password prompted for (never echoed)."""
    user, sep, password = value.partition(":")
    if not sep:
        password = click.prompt(f"password for {user}", hide_input=True, err=True)
    return user, password


def common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--config/--url/-u/--format/--verbose on a command; the function receives them as `common`."""

    @click.option("--config", "config_name", default=None, help="Named registry from `zotless config add`.")
    @click.option("--url", default=None, help="Registry URL (instead of --config).")
    @click.option("-u", "--user", default=None, help="USER[:PASSWORD] (default: the containers/docker auth files).")
    @click.option("-f", "--format", "fmt", type=click.Choice(output.FORMATS), default="text", show_default=True, help="Output format.")
    @click.option("--verbose", is_flag=True, help="Show each HTTP request on stderr.")
    @functools.wraps(function)
    def wrapper(config_name: str | None, url: str | None, user: str | None, fmt: str, verbose: bool, **kwargs: Any) -> Any:
        return function(common=Common(config_name, url, user, fmt, verbose), **kwargs)

    return wrapper


def connect(common: Common) -> Registry:
    """The registry a query command talks to: --url, else --config NAME, else the default config."""
    entry: dict[str, Any] = {}
    if common.url:
        url = check_url(common.url)
    else:
        configs = ConfigFile()
        chosen = configs.find(common.config) if common.config else configs.default()
        if chosen is None:
            raise ClientError("no registry given: use --url URL or --config NAME (see `zotless config add`)", EXIT_USAGE)
        entry, url = chosen, chosen["url"]
    credentials = common.credentials() or (_split_user(entry["user"]) if entry.get("user") else None)
    return Registry(url, credentials, verify=bool(entry.get("verify-tls", True)), verbose=common.verbose)


def registry_for(ref: RegistryRef, common: Common, plain_http: bool, user: str | None = None, tls_verify: bool = True) -> Registry:
    """The registry a reference names: plain HTTP for loopback hosts or --plain-http, HTTPS otherwise."""
    scheme = "http" if plain_http or is_loopback(ref.host) else "https"
    credentials = _split_user(user) if user else common.credentials()
    return Registry(f"{scheme}://{ref.host}", credentials, verify=tls_verify, verbose=common.verbose)


# config


@click.group("config")
def config_group() -> None:
    """Named registries in ~/.zotless, as zli keeps them in ~/.zot."""


@config_group.command("add")
@click.argument("name")
@click.argument("url")
def config_add(name: str, url: str) -> None:
    """Add a registry by name."""
    ConfigFile().add(name, url)


@config_group.command("list")
@click.option("-f", "--format", "fmt", type=click.Choice(output.FORMATS), default="text")
def config_list(fmt: str) -> None:
    """The configured registries (the default marked * in text)."""
    configs = ConfigFile()
    default = configs.default()
    rows = [{"name": entry["_name"], "url": entry.get("url", ""), "default": entry is default} for entry in configs.configs]
    if fmt == "text":
        rows = [{**row, "name": ("*" if row["default"] else " ") + row["name"]} for row in rows]
    output.emit(rows, fmt, [("NAME", "name"), ("URL", "url")])


@config_group.command("show")
@click.argument("name")
def config_show(name: str) -> None:
    """Every key of one registry config."""
    entry = ConfigFile().find(name)
    for key in KEYS:
        value = entry.get(key, KEYS[key])
        if key == "user" and value:
            value = str(value).split(":", 1)[0] + (":***" if ":" in str(value) else "")
        click.echo(f"{key} = {str(value).lower() if isinstance(value, bool) else value}")


@config_group.command("get")
@click.argument("name")
@click.argument("key")
def config_get(name: str, key: str) -> None:
    """One key's value."""
    value = ConfigFile().get(name, key)
    click.echo(str(value).lower() if isinstance(value, bool) else value)


@config_group.command("set")
@click.argument("name")
@click.argument("key")
@click.argument("value")
def config_set(name: str, key: str, value: str) -> None:
    """Set a key (url, verify-tls, showspinner, user)."""
    ConfigFile().set(name, key, value)


@config_group.command("reset")
@click.argument("name")
@click.argument("key")
def config_reset(name: str, key: str) -> None:
    """Return a key to its default."""
    ConfigFile().reset(name, key)


@config_group.command("remove")
@click.argument("name")
def config_remove(name: str) -> None:
    """Forget a registry."""
    ConfigFile().remove(name)


@config_group.command("set-default")
@click.argument("name")
def config_set_default(name: str) -> None:
    """The registry used when a command names none."""
    ConfigFile().set_default(name)


# image, images


@click.group("image")
def image_group() -> None:
    """List and inspect images (zot's search API, or the distribution API where the server has none)."""


def _show_images(common: Common, rows: list[dict[str, Any]]) -> None:
    output.emit(rows, common.fmt, output.IMAGE_COLUMNS)


@image_group.command("list")
@common_options
def image_list(common: Common) -> None:
    """Every image in the registry."""
    _show_images(common, search.backend(connect(common)).images())


@image_group.command("name")
@click.argument("image")
@common_options
def image_name(common: Common, image: str) -> None:
    """REPO[:TAG|@DIGEST]: the repository's images, one tag, or the tags of one digest."""
    rows = _named_images(search.backend(connect(common)), image)
    if not rows:
        raise ClientError(f"{image}: no images", EXIT_NOT_FOUND)
    _show_images(common, rows)


def _named_images(found: Any, image: str) -> list[dict[str, Any]]:
    """Rows for REPO, REPO:TAG or REPO@DIGEST, split as every other IMAGE argument is (split_image)."""
    repo, reference = split_image(image)
    if "@" in image:
        return [row for row in found.images(repo) if row.get("digest") == reference]
    named = ":" in image.rsplit("/", 1)[-1]
    return found.images(repo, reference if named else None)


@image_group.command("digest")
@click.argument("digest")
@common_options
def image_digest(common: Common, digest: str) -> None:
    """Images whose manifest, config or a layer has this digest (a prefix will do)."""
    _show_images(common, search.backend(connect(common)).by_digest(digest))


@image_group.command("derived")
@click.argument("image")
@common_options
def image_derived(common: Common, image: str) -> None:
    """Images built on top of IMAGE (REPO:TAG)."""
    _show_images(common, search.backend(connect(common)).derived(image))


@image_group.command("base")
@click.argument("image")
@common_options
def image_base(common: Common, image: str) -> None:
    """Images IMAGE (REPO:TAG) is built on."""
    _show_images(common, search.backend(connect(common)).base(image))


@click.command("cve")
@click.argument("image")
@click.option("--search", "searched", default="", help="Only CVEs whose id or title contains this.")
@common_options
def image_cve(common: Common, image: str, searched: str) -> None:
    """The CVEs of IMAGE (REPO:TAG)."""
    output.emit(search.backend(connect(common)).cves(image, searched), common.fmt, output.CVE_COLUMNS)


image_group.add_command(image_cve, "cve")


@click.command("images")
@click.argument("config_arg", required=False, metavar="[CONFIG]")
@click.option("-n", "--name", default=None, help="Only this repository (REPO or REPO:TAG).")
@common_options
def images_command(common: Common, config_arg: str | None, name: str | None) -> None:
    """The seed zli's shorthand: `zotless images [CONFIG] [--name REPO]`."""
    if config_arg and not common.config and not common.url:
        common.config = config_arg
    found = search.backend(connect(common))
    _show_images(common, _named_images(found, name) if name else found.images())


# cve


@click.group("cve")
def cve_group() -> None:
    """CVEs of images, and images affected or fixed (needs the server's search extension)."""


cve_group.add_command(image_cve, "list")


@cve_group.command("affected")
@click.argument("cve_id")
@common_options
def cve_affected(common: Common, cve_id: str) -> None:
    """Images vulnerable to CVE_ID."""
    _show_images(common, search.backend(connect(common)).affected(cve_id))


@cve_group.command("fixed")
@click.argument("repo")
@click.argument("cve_id")
@common_options
def cve_fixed(common: Common, repo: str, cve_id: str) -> None:
    """Images of REPO no longer vulnerable to CVE_ID."""
    _show_images(common, search.backend(connect(common)).fixed(repo, cve_id))


@cve_group.command("diff")
@click.argument("minuend")
@click.argument("subtrahend")
@common_options
def cve_diff(common: Common, minuend: str, subtrahend: str) -> None:
    """CVEs in image A that image B does not have."""
    output.emit(search.backend(connect(common)).diff(minuend, subtrahend), common.fmt, output.CVE_COLUMNS)


# repo, search, status


@click.group("repo")
def repo_group() -> None:
    """Repositories."""


@repo_group.command("list")
@common_options
def repo_list(common: Common) -> None:
    """Every repository (with its newest image where the search API tells)."""
    output.emit(search.backend(connect(common)).repos(), common.fmt, output.REPO_COLUMNS)


@click.group("search")
def search_group() -> None:
    """Search repositories and tags, and what refers to an image."""


@search_group.command("query")
@click.argument("text")
@common_options
def search_query(common: Common, text: str) -> None:
    """Repositories whose name matches TEXT, or with REPO:TAG-PREFIX, the tags of a repository."""
    found = search.backend(connect(common)).search(text)
    if common.fmt != "text":
        output.emit(found, common.fmt)
        return
    if found["repos"]:
        output.emit(found["repos"], "text", output.REPO_COLUMNS)
    if found["images"]:
        _show_images(common, found["images"])


@search_group.command("subject")
@click.argument("image")
@common_options
def search_subject(common: Common, image: str) -> None:
    """Artifacts whose subject is IMAGE (REPO:TAG or REPO@DIGEST): signatures, SBOMs, attachments."""
    registry = connect(common)
    repo, reference = split_image(image)
    from chalicelib.cli.client.images import fetch_manifest

    digest = str(parse_digest(reference, image)) if "@" in image else fetch_manifest(registry, repo, reference).digest
    output.emit(search.backend(registry).referrers(repo, digest), common.fmt, output.REFERRER_COLUMNS)


@click.command("status")
@common_options
def status_command(common: Common) -> None:
    """Whether the registry answers, and which extensions (search) it offers."""
    registry = connect(common)
    found = search.discover(registry)
    found["search"] = search.has_search(registry)
    if common.fmt != "text":
        output.emit(found, common.fmt)
        return
    click.echo(f"url: {found['url']}")
    click.echo(f"status: {'online' if found['status'] == 200 else found['status']}")
    click.echo(f"api version: {found['apiVersion'] or 'unknown'}")
    click.echo(f"search: {'available' if found['search'] else 'not available (distribution API only)'}")
    for extension in found["extensions"]:
        click.echo(f"extension: {extension.get('name')} {' '.join(extension.get('endpoints') or [])}")


# push, pull, copy


_TRANSFER_OPTIONS = [
    click.option("--plain-http", is_flag=True, help="HTTP, not HTTPS, for a registry that is not on a loopback address."),
    click.option("--tls-verify/--no-tls-verify", default=True, help="Verify the registry's TLS certificate."),
    click.option("--chunk-size", type=click.IntRange(1), default=None, help="Bytes per upload request (default: the server's OCI-Chunk-Max-Length)."),
    click.option("-j", "--jobs", type=click.IntRange(1, 32), default=4, show_default=True, help="Blobs moved in parallel."),
    click.option("-q", "--quiet", is_flag=True, help="No progress output."),
]


def transfer_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options push, pull and copy share, added to the command itself (no wrapper)."""
    for option in reversed(_TRANSFER_OPTIONS):
        function = option(function)
    return function


def _move(
    common: Common,
    source_text: str,
    dest_text: str,
    plain_http: bool,
    tls_verify: bool,
    chunk_size: int | None,
    jobs: int,
    quiet: bool,
    src_user: str | None = None,
) -> None:
    source, dest = parse_reference(source_text), parse_reference(dest_text)
    source_registry = registry_for(source, common, plain_http, src_user, tls_verify) if isinstance(source, RegistryRef) else None
    if isinstance(source, RegistryRef) and src_user is None and isinstance(dest, RegistryRef) and source.host != dest.host:
        source_registry = registry_for(source, Common(None, None, None, common.fmt, common.verbose), plain_http, None, tls_verify)
    image = read_image(source, source_registry)
    with reporter(quiet) as progress:
        if isinstance(dest, RegistryRef):
            dest_registry = registry_for(dest, common, plain_http, None, tls_verify)
            same_host = isinstance(source, RegistryRef) and source.host == dest.host
            options = PushOptions(chunk_size, jobs, source.repo if same_host and isinstance(source, RegistryRef) else None)
            digest = push_image(image, dest_registry, dest, options, progress)
        elif isinstance(dest, LayoutRef):
            digest = write_layout(image, dest, progress, jobs)
        else:
            raise ClientError(f"{dest_text}: a destination is a registry (HOST/REPO[:TAG]) or an OCI layout (oci:PATH[:TAG])", EXIT_USAGE)
    if common.fmt == "json":
        output.emit({"digest": digest}, "json")
    elif quiet:
        return
    else:
        click.echo(digest)


@click.command("push")
@click.argument("source")
@click.argument("dest")
@transfer_options
@common_options
def push_command(common: Common, source: str, dest: str, **options: Any) -> None:
    """Push oci:PATH[:TAG], docker-archive:PATH or dir:PATH to HOST/REPO[:TAG], chunked to fit the server."""
    _move(common, source, dest, **options)


@click.command("pull")
@click.argument("source")
@click.argument("dest")
@transfer_options
@common_options
def pull_command(common: Common, source: str, dest: str, **options: Any) -> None:
    """Pull HOST/REPO[:TAG|@DIGEST] into an OCI layout oci:PATH[:TAG] (referrers included)."""
    if not isinstance(parse_reference(source), RegistryRef):
        raise ClientError(f"{source}: pull reads from a registry (HOST/REPO[:TAG|@DIGEST])", EXIT_USAGE)
    _move(common, source, dest, **options)


@click.command("copy")
@click.argument("source")
@click.argument("dest")
@click.option("--src-user", default=None, help="USER[:PASSWORD] for the source registry (-u is for the destination).")
@transfer_options
@common_options
def copy_command(common: Common, source: str, dest: str, src_user: str | None, **options: Any) -> None:
    """Copy an image, its platforms and referrers, from one registry to another (or within one, by mount)."""
    parse_registry_reference(source.removeprefix("docker://"))
    _move(common, source, dest, src_user=src_user, **options)


CLIENT_COMMANDS = [config_group, image_group, images_command, cve_group, repo_group, search_group, status_command, push_command, pull_command, copy_command]
