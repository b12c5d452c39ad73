"""The one error type a client command raises: a one-line message and the exit code the shell sees."""

from __future__ import annotations

import click

# Exit codes: 1 anything else, 2 usage (click's), 3 unreachable, 4 login refused, 5 not found.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5


class ClientError(click.ClickException):
    """Printed by click as `Error: message` on stderr, never as a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def not_found(what: str) -> ClientError:
    return ClientError(f"{what}: not found", EXIT_NOT_FOUND)
