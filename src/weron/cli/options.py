"""Flag conventions of the original CLI on top of click: aliases, Go durations, comma lists,
Go-style booleans (``--flag=false``) and a ``WERON_<FLAG>`` environment variable for every flag."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar, cast

import click

from weron import log as weron_log
from weron.log import DEFAULT_VERBOSITY, LOG_FORMATS
from weron.urls import PUBLIC_SIGNALER

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_RADDR: Final = PUBLIC_SIGNALER
DEFAULT_ICE: Final = ("stun:stun.l.google.com:19302",)

_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def raddr_help(what: str, scheme: str = "ws") -> str:
    """Every --raddr help says whose the default is: a new user would take it for ours."""
    return (
        f"{what} (the default is the original author's public server, not run by this project: "
        f"start your own with `weron signaler`, then pass {scheme}://HOST:1337/)"
    )


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``10s``, ``1m30s``, ``250ms`` or ``0``."""
    value = text.strip()
    sign = -1.0 if value.startswith("-") else 1.0
    if value[:1] in ("-", "+"):
        value = value[1:]  # one sign at most, as in Go: "--5s" and "+-5s" are invalid
    if value == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(value):
        match = _DURATION_PART.match(value, position)
        if match is None:
            raise ValueError(f"invalid duration {text!r} (examples: 10s, 1m30s, 500ms)")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not value:
        raise ValueError("empty duration")
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's rendering of common durations: ``10s``, ``1m0s``, ``500ms``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        milliseconds = seconds * 1e3
        return f"{milliseconds:g}ms" if milliseconds >= 1 else f"{seconds * 1e6:g}µs"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:g}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


class Duration(click.ParamType[float]):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class CommaList(click.ParamType[list[str]]):
    """``a,b,c``: repeatable, and usable from one environment variable."""

    name = "strings"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list | tuple):
            return [str(item) for item in value]
        return [item.strip() for item in str(value).split(",") if item.strip()]


def _flatten(_ctx: click.Context, _param: click.Parameter, value: Any) -> list[str]:
    items: list[str] = []
    for chunk in value or ():
        items.extend(chunk if isinstance(chunk, list) else [chunk])
    return items


def env_name(flag: str) -> str:
    return "WERON_" + flag.lstrip("-").upper().replace("-", "_")


def flag(
    name: str,
    parameter: str | None = None,
    *,
    help: str,
    default: Any = None,
    type: Any = str,
    extra_env: Sequence[str] = (),
    hidden: bool = False,
    short: str | None = None,
) -> Callable[[F], F]:
    """An option bound to ``WERON_<FLAG>`` (and ``extra_env`` after it), Go-style."""
    declarations = [name] if short is None else [short, name]
    if parameter is not None:
        declarations.append(parameter)
    envvar = [env_name(name), *extra_env]
    if type is bool:
        return click.option(
            *declarations,
            type=click.BOOL,
            is_flag=False,
            flag_value=True,
            default=default,
            show_default=True,
            envvar=envvar,
            show_envvar=True,
            help=help,
            hidden=hidden,
        )
    if isinstance(type, CommaList):
        return click.option(
            *declarations,
            type=type,
            multiple=True,
            callback=_flatten,
            default=list(default or ()),
            show_default=",".join(default or ()) or False,
            envvar=envvar,
            show_envvar=True,
            help=help,
            hidden=hidden,
        )
    show_default = default not in (None, "")
    if isinstance(type, Duration) and isinstance(default, float):
        default = format_duration(default)  # shown as Go shows it; click converts it back
    return click.option(
        *declarations,
        type=type,
        default=default,
        show_default=show_default,
        envvar=envvar,
        show_envvar=True,
        help=help,
        hidden=hidden,
    )


# Every command group's context: -h as well as --help, and help text up to 100 columns wide.
CONTEXT_SETTINGS: Final = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Verbosity(click.IntRange):
    """A level from 0 to 7, also as ``-v=7``: click hands a short option the ``=`` too."""

    def __init__(self) -> None:
        super().__init__(0, 7)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            value = value.strip().removeprefix("=")
        return super().convert(value, param, ctx)


_LOG_FORMAT_KEY: Final = "weron.log_format"  # in the context's meta, shared by root and command


def _remember_log_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:  # a command's own --log-format wins over the root's
        ctx.meta[_LOG_FORMAT_KEY] = value


def _log_flags(verbose: Callable[[Any], Any], *, environment: bool) -> Callable[[F], F]:
    """``verbose`` and ``--log-format`` (read through :func:`configure_logging`)."""
    log_format = click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default=None,
        expose_value=False,
        callback=_remember_log_format,
        envvar=env_name("log-format") if environment else None,
        show_envvar=environment,
        help="Logs as JSON lines (default), or as text lines for terminals: time, level, "
        "message, key=value fields",
    )

    def decorate(function: F) -> F:
        return cast(F, verbose(log_format(function)))

    return decorate


def quiet_verbose_flag() -> Callable[[F], F]:
    """``-v/--verbose`` and ``--log-format`` of the gonet commands: their screen is a chat or
    a report, so they log warnings only unless asked for more."""
    verbose = click.option(
        "-v",
        "--verbose",
        type=Verbosity(),
        default=4,
        show_default=True,
        help="Verbosity level (0 is disabled, 4 is warnings, 7 is trace)",
    )
    return _log_flags(verbose, environment=True)


def verbose_flag(leaf: bool) -> Callable[[F], F]:
    """``-v/--verbose`` and ``--log-format`` on the root and on every command, so both
    ``weron -v 7 signaler`` and ``weron signaler --verbose=7`` work as with the original."""
    verbose = click.option(
        "-v",
        "--verbose",
        type=Verbosity(),
        default=None if leaf else DEFAULT_VERBOSITY,
        envvar=None if leaf else env_name("verbose"),
        show_envvar=not leaf,
        show_default=not leaf,
        help="Verbosity level (0 is disabled, default is info, 7 is trace)",
    )
    return _log_flags(verbose, environment=not leaf)


def configure_logging(
    ctx: click.Context, leaf_verbose: int | None, default: int = DEFAULT_VERBOSITY
) -> None:
    """Logs at the level of :func:`verbosity`, in the ``--log-format`` given on the command,
    else on the root (or ``WERON_LOG_FORMAT``), else JSON."""
    weron_log.configure(
        verbosity(ctx, leaf_verbose, default), log_format=ctx.meta.get(_LOG_FORMAT_KEY, "json")
    )


def verbosity(ctx: click.Context, leaf_value: int | None, default: int = DEFAULT_VERBOSITY) -> int:
    """The ``--verbose`` given on the command, else on the root (or ``WERON_VERBOSE``), else
    ``default`` (interactive commands keep their screen clean with a quieter one)."""
    if leaf_value is not None:
        return leaf_value
    root = ctx.find_root()
    value = root.params.get("verbose")
    if value is None or root.get_parameter_source("verbose") is click.core.ParameterSource.DEFAULT:
        return default
    return int(value)


class AliasedGroup(click.Group):
    """A group whose commands answer to aliases too, like cobra's, and may be imported only
    when used (:meth:`add_lazy`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._aliases: dict[str, str] = {}
        self._lazy: dict[str, tuple[str, Sequence[str]]] = {}

    def add_aliased(self, command: click.Command, aliases: Sequence[str]) -> None:
        self.add_command(command)
        for alias in aliases:
            self._aliases[alias] = command.name or ""
        if aliases:
            names = ", ".join([command.name or "", *aliases])
            command.epilog = f"Aliases: {names}" + (
                f"\n\n{command.epilog}" if command.epilog else ""
            )

    def add_lazy(self, name: str, target: str, aliases: Sequence[str]) -> None:
        """Register command ``name`` found at ``target`` (``module:attribute``), imported on
        first use: a command starts without importing every other command's modules."""
        self._lazy[name] = (target, aliases)
        for alias in aliases:
            self._aliases[alias] = name

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = self._aliases.get(cmd_name, cmd_name)
        if name in self._lazy:
            target, aliases = self._lazy.pop(name)
            module, _, attribute = target.partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != name:
                raise TypeError(f"{target} is not the command {name!r}")
            self.add_aliased(command, aliases)
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest
