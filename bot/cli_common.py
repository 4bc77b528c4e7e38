"""What every ``qabot`` command shares: the resolved options (``Context``), ``-v``
wherever it is typed, and settings as they may be shown."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from bot.config import Settings, load_settings
from bot.wording import mask_password

if TYPE_CHECKING:
    from bot.engine import Engine


class Context:
    """What the group options resolve to, shared by every command."""

    def __init__(self, cli: dict[str, Any], config_file: str | None, verbose: int = 0) -> None:
        self.cli = cli
        self.config_file = config_file
        self.verbose = verbose
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_file=self.config_file, cli=self.cli)
        return self._settings

    def engine(self, *, preload: bool = True) -> Engine:
        from bot.engine import Engine

        return Engine(self.settings, preload=preload)


pass_ctx = click.make_pass_decorator(Context)


def set_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    # httpx logs request URLs, which hold the bot token: never below WARNING
    for noisy in ("httpx", "httpcore", "chromadb", "jieba"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _more_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> int:
    """``-v`` after the command (``qabot ingest -v``) counts as if given before it."""
    obj = ctx.find_object(Context)
    if value and obj is not None:
        obj.verbose += value
        set_logging(obj.verbose)
    return value


# every command takes -v too: people type it after the command as often as before
verbose_option = click.option("-v", "--verbose", count=True, expose_value=False,
                              callback=_more_verbose,
                              help="More logging (-vv for debug); also before the command.")


def masked(value: object) -> object:
    """A setting for a report: URL passwords masked, everything else as it is."""
    return mask_password(value) if isinstance(value, str) else value
