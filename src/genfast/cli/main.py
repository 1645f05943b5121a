"""The ``genfast`` console script: parse, call the library, format. Nothing else lives here."""

from __future__ import annotations

import importlib
import signal
import sys
import traceback
import warnings

import click
import typer

from genfast import envs
from genfast.cli import bench_cmd, compare_cmd, optimize_cmd, profile_cmd, serve_cmd, train_cmd, tune_cmd
from genfast.errors import GenfastError, Terminated

app = typer.Typer(
    name="genfast",
    help="Make generative models answer faster: profile, compress, accelerate, verify, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("profile")(profile_cmd.profile)
app.command("compare")(compare_cmd.compare)
app.command("optimize")(optimize_cmd.optimize)
app.command("tune")(tune_cmd.tune)
app.command("serve")(serve_cmd.serve)
app.command("bench")(bench_cmd.bench)
app.command("train-demo")(train_cmd.train_demo)

INTERRUPTED_EXIT = 130
TERMINATED_EXIT = 143


def _click_classes(name: str) -> tuple[type, ...]:
    """click's exception class ``name``, and typer's own copy of it (typer >= 0.26 bundles click)."""
    classes = [getattr(click.exceptions, name)]
    try:
        classes.append(getattr(importlib.import_module("typer._click.exceptions"), name))
    except (ImportError, AttributeError):
        pass
    return tuple(classes)


_CLICK_ERROR, _ABORT, _EXIT = _click_classes("ClickException"), _click_classes("Abort"), _click_classes("Exit")


def _print_error(message: str) -> None:
    click.echo(message, err=True)


def _usage_line(exc: Exception, args: list[str]) -> str:
    """A usage error as one line, naming the option and where the options are listed."""
    message = exc.format_message().strip().rstrip(".")
    param = getattr(exc, "param", None)
    opts = getattr(param, "opts", None)
    if opts and not any(o in message for o in opts):
        message = f"Invalid value for {' / '.join(opts)}: {message}"
    names = {c.name for c in app.registered_commands}
    command = next((a for a in args if a in names), None)
    where = f"genfast {command} --help" if command else "genfast --help"
    return f"Error: {message}. Hint: see `{where}` for the options."


_SIGTERM_SEEN: list[bool] = []  # typer turns the interrupt into Abort or a return code, losing its kind


def _on_sigterm(signum, frame) -> None:
    _SIGTERM_SEEN.append(True)
    raise Terminated()


def _interrupted(exc: BaseException) -> None:
    terminated = isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated) or bool(_SIGTERM_SEEN)
    _print_error(f"Error: {'terminated' if terminated else 'interrupted'}; nothing was kept. "
                 "Hint: run the command again.")
    sys.exit(TERMINATED_EXIT if terminated else INTERRUPTED_EXIT)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run a subcommand; errors become one line and exit code 1 (usage errors 2,
    Ctrl-C 130, SIGTERM 143)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = envs.debug() or "--debug" in args
    args = [a for a in args if a != "--debug"]
    if not debug:  # library warnings as one plain line, not file:line plus source
        warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = app(args=args, prog_name="genfast", standalone_mode=False)
        if isinstance(code, int) and code == INTERRUPTED_EXIT:  # some typer versions return it
            _interrupted(KeyboardInterrupt())
        if isinstance(code, int) and code:
            sys.exit(code)
    except GenfastError as exc:
        if debug:
            traceback.print_exc()
        _print_error(f"Error: {exc.message} Hint: {exc.hint}")
        sys.exit(getattr(exc, "exit_code", 1))
    except _EXIT as exc:
        sys.exit(exc.exit_code)
    except (*_ABORT, KeyboardInterrupt) as exc:
        _interrupted(exc)
    except _CLICK_ERROR as exc:
        if debug:
            traceback.print_exc()
        _print_error(_usage_line(exc, args))
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a bare traceback
        if debug:
            traceback.print_exc()
        _print_error(f"Error: unexpected {type(exc).__name__}: {exc} "
                     "Hint: rerun with --debug and report the traceback.")
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
