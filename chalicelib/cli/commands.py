"""The `zotless` command: the server commands, and the client's (chalicelib/cli/client) registered beside them."""

from __future__ import annotations

import errno
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING

import click

from chalicelib.auth.authn import check_auth
from chalicelib.config.schema import ConfigError, load_config

if TYPE_CHECKING:
    from chalicelib.adapters.localserver import LocalServer


def _config(path: str | None, port: int | None = None):
    try:
        config = load_config(path)
        check_auth(config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    if port is not None:
        config.http.port = port
    return config


@click.group()
def main() -> None:
    """zotless: a serverless OCI registry on S3 and DynamoDB."""


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="JSON config file (zot's shape).")
@click.option("--host", default=None, help="Address to listen on (default: http.address).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on (default: http.port; 0 picks a free one).")
@click.option("--emulator/--no-emulator", default=None, help="Force the embedded S3 + DynamoDB emulator on or off (default: on when no endpoint is set).")
@click.option("--lambda", "lambda_mode", is_flag=True, help="Emulate API Gateway + Lambda: requests become proxy events for app.py, within Lambda's limits.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Directory the embedded emulator keeps its S3 + DynamoDB state in (default: ./.zotless).")
@click.option("--ephemeral", is_flag=True, help="Keep the embedded emulator's state in memory only: lost when it stops.")
def serve(config_path: str | None, host: str | None, port: int | None, emulator: bool | None, lambda_mode: bool,
          data_dir: str | None, ephemeral: bool) -> None:
    """Serve the registry over HTTP, with the embedded emulator when no AWS endpoint is configured."""
    from chalicelib.adapters.emulator import EmulatorError
    from chalicelib.adapters.local import DEFAULT_DATA, configure_logging, local_service, start_gc_schedule
    from chalicelib.ops.local import Operations

    if ephemeral and data_dir is not None:
        raise click.UsageError("--data and --ephemeral exclude each other")
    data = None if ephemeral else data_dir or DEFAULT_DATA

    config = _config(config_path, port)
    configure_logging(config)
    server = _listen(host or config.http.address, config.http.port)  # before the emulator: a taken port fails fast
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    died: list[int] = []

    def emulator_died(code: int) -> None:
        """Every storage call fails once the emulator is gone: stop serving rather than answer 500s."""
        died.append(code)
        server.shutdown()  # serve_forever returns; if a Ctrl-C killed the emulator too, KeyboardInterrupt wins

    try:
        with local_service(config, emulator, emulator_died, data) as (service, endpoint):
            server.app = Operations(service).wrap(service.api.handle)  # /livez, /readyz, /startupz, /metrics
            if lambda_mode:  # health through app.py's routes, metrics as its EMF lines (on stderr here)
                from chalicelib.adapters.lambdamode import lambda_handler

                server.app = lambda_handler(config_path, config)
            start_gc_schedule(service)
            address, bound_port = server.server_address[:2]
            click.echo(f"zotless: registry listening on http://{address}:{bound_port}")
            kept = "" if endpoint is None else f", kept in {data}" if data else ", in memory only (--ephemeral)"
            click.echo(f"zotless: S3 + DynamoDB at {endpoint or 'the configured AWS endpoint'} (bucket {config.storage.storageDriver.bucket}{kept})")
            sys.stdout.flush()
            try:
                server.serve_forever()  # returns only when emulator_died shut it down
            except KeyboardInterrupt:
                click.echo("zotless: stopping")
                return
    except (ConfigError, EmulatorError) as error:  # found while starting, e.g. an index of another bucket, a data dir in use
        raise click.ClickException(str(error)) from error
    finally:
        server.server_close()
    if died:
        message = "the embedded S3 + DynamoDB emulator (moto_server) died with exit code %d; the registry stopped"
        logging.getLogger("zotless.serve").error(message, died[0])
        sys.exit(1)


def _listen(host: str, port: int) -> LocalServer:
    """Bind the port, or end with one line naming it; requests wait in the backlog until serve_forever runs."""
    from chalicelib.adapters.localserver import serve as http_serve
    from chalicelib.spec.http import Response

    try:
        return http_serve(lambda request: Response(503), host, port)  # the real handler is set once the service exists
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.EADDRINUSE:
            reason = "address already in use (another zotless serve? pick another port with --port)"
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from error


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option("--delay", default=None, help="Override storage.gcDelay (e.g. 30m, 2h).")
def gc(config_path: str | None, dry_run: bool, delay: str | None) -> None:
    """Collect garbage once: retention, unused blobs, stale uploads. Prints a JSON summary."""
    from chalicelib.adapters.local import configure_logging
    from chalicelib.api.service import build_service
    from chalicelib.config.schema import parse_duration
    from chalicelib.lifecycle.gc import collect_everywhere

    config = _config(config_path)
    if delay is not None:
        try:
            config.storage.gcDelay = parse_duration(delay)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--delay") from error
    configure_logging(config)
    for report in collect_everywhere(build_service(config), dry_run=dry_run):
        click.echo(report.line())


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--repair-index", is_flag=True, help="Rebuild index entries from S3 and drop entries S3 does not back.")
@click.argument("repositories", nargs=-1)
def scrub(config_path: str | None, repair_index: bool, repositories: tuple[str, ...]) -> None:
    """Re-read stored manifests and blobs, check digests and sizes, report problems as JSON lines."""
    from chalicelib.adapters.local import configure_logging
    from chalicelib.api.service import build_service
    from chalicelib.lifecycle.scrub import scrub_everywhere

    config = _config(config_path)
    configure_logging(config)
    wanted = list(repositories) or None
    summaries = scrub_everywhere(build_service(config), None, wanted, repair_index, resume=False, report=lambda item: click.echo(item.line()))
    if any(summary.problems for summary in summaries) and not repair_index:
        sys.exit(1)


@main.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, exists=True), required=True,
              help="The embedded emulator's data directory (no server may be using it).")
def compact(data_dir: str) -> None:
    """Rewrite a data directory's journal from its state: one copy of the live bytes, a journal the size of the state.

    `zotless serve` also compacts at a clean stop when the journal has outgrown the state (docs/operations.md).
    """
    from chalicelib.adapters.motoserver import main as emulator

    emulator(["--data", data_dir, "--compact"])


@main.command("rebuild-index")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
def rebuild_index_command(config_path: str | None) -> None:
    """Recreate the DynamoDB index from the S3 bucket (S3 is the source of truth), creating missing tables."""
    from botocore.exceptions import ClientError

    from chalicelib.adapters.local import configure_logging
    from chalicelib.api.service import build_service
    from chalicelib.lifecycle.rebuild import rebuild_index
    from chalicelib.storage.aws import ensure_resources, make_clients

    config = _config(config_path)
    configure_logging(config)
    clients = make_clients(config)
    for bucket in {config.storage.storageDriver.bucket} | {sub.storageDriver.bucket for sub in config.storage.subPaths.values()}:
        try:  # the buckets are what the index is rebuilt from: never create an empty one in their place
            clients.s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            raise click.ClickException(f"bucket {bucket} not readable: {error}") from error
    ensure_resources(config, clients)  # tables deleted or never created: as `serve` does
    reports = [rebuild_index(location) for location in build_service(config, clients).locations]
    for report in reports:
        click.echo(json.dumps(report.summary()))
    if any(report.problems for report in reports):
        sys.exit(1)


@main.command("init-aws")
@click.option("--stage", default="dev", show_default=True, help="Chalice stage whose bucket and table names to use (.chalice/config.json).")
@click.option("--region", default=None, help="AWS region (default: your AWS configuration's); the functions' region.")
@click.option("--dry-run", is_flag=True, help="Check what exists and print what would change; change nothing.")
def init_aws_command(stage: str, region: str | None, dry_run: bool) -> None:
    """Create the stage's S3 bucket and DynamoDB tables, locked down and on-demand; safe to rerun."""
    from chalicelib.deploy.provision import ProvisionError, init_aws

    try:
        init_aws(stage, region, dry_run, click.echo)
    except ProvisionError as error:
        raise click.ClickException(str(error)) from error


@main.group("cve-db")
def cve_db() -> None:
    """The OSV advisory database CVE scans match against."""


def _cve_service(config_path: str | None):
    from chalicelib.adapters.local import configure_logging
    from chalicelib.api.service import build_service
    from chalicelib.cve.service import CveService

    config = _config(config_path)
    configure_logging(config)
    service = build_service(config)
    return config, service, CveService(service.api.registry, service.index, service.store)


@cve_db.command("update")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "source", default=None, help="Directory or zip of OSV JSON, s3://bucket/key, or https:// URL (default: extensions.search.cve.source).")
@click.option("--no-rematch", is_flag=True, help="Leave re-matching stored scan results to the server's worker.")
def cve_db_update(config_path: str | None, source: str | None, no_rematch: bool) -> None:
    """Load a new database version atomically, then re-match every stored scan against it."""
    from chalicelib.cve.database import UpdateLost
    from chalicelib.cve.sources import SourceError

    config, service, cve = _cve_service(config_path)
    cve_settings = config.extensions.search.cve
    source = source or (cve_settings.source if cve_settings else None)
    if not source:
        raise click.ClickException("no source: give --from, or set extensions.search.cve.source")
    try:
        loaded = cve.update_database(source, service.store.client)
    except (SourceError, UpdateLost) as error:
        raise click.ClickException(f"{error}; the previous database keeps serving") from error
    rematched = 0 if no_rematch else cve.rematch_all()
    click.echo(json.dumps({**loaded.status(), "rematched": rematched}))


@cve_db.command("status")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
def cve_db_status(config_path: str | None) -> None:
    """The serving version: when it was loaded, from where, its ecosystems and record counts (JSON)."""
    _, _, cve = _cve_service(config_path)
    current = cve.db.current()
    if current is None:
        raise click.ClickException("no advisory database loaded: run `zotless cve-db update --from SOURCE`")
    click.echo(json.dumps(current.status()))


def _register_client() -> None:
    """The client's groups (config, image, cve, repo, search, status, push, pull, copy) beside the server's."""
    from chalicelib.cli.client.commands import CLIENT_COMMANDS

    for command in CLIENT_COMMANDS:
        main.add_command(command)


_register_client()

if __name__ == "__main__":
    main()
