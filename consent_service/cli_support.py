"""What every command group shares: the app a command runs in, and the command's unit of work.

The top-level `consent-service` command (`consent_service.cli`) puts an `AppLoader` in the click
context; a command that needs the app (its database, its services) gets it from here, so the
capabilities' command groups never import the entry point. Tests may hand in an app of their own:
`CliRunner().invoke(main, args, obj=AppLoader(lambda: app))`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from flask import Flask
from sqlmodel import Session

from consent_service import db
from consent_service.errors import DomainError


@dataclass
class AppLoader:
    """Builds the command's app once, on first use (commands that need no app never build it)."""

    create: Callable[[], Flask]
    _app: Flask | None = field(default=None, init=False)

    def app(self) -> Flask:
        if self._app is None:
            self._app = self.create()
        return self._app


def command_app() -> Flask:
    """The app of the running command (schema migrated, services built)."""
    loader = click.get_current_context().find_object(AppLoader)
    if loader is None:
        raise RuntimeError("run the command through `consent-service` (consent_service.cli.main)")
    return loader.app()


@contextmanager
def reported_errors() -> Iterator[None]:
    """A DomainError raised in the block ends the command with its message (exit status 1)."""
    try:
        yield
    except DomainError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One unit of work of a command, in its app's context: when the block ends cleanly it is
    committed, then the tasks it registered are sent and its after-commit work runs; otherwise
    it is rolled back, and a DomainError becomes the command's error message. A command that
    waits for the worker between steps uses one unit of work per step."""
    with command_app().app_context(), reported_errors(), db.unit_of_work() as s:
        yield s
