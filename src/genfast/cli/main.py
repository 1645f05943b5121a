"""The ``genfast`` console script: parse, call the library, format. Nothing else lives here."""

from __future__ import annotations

import sys
import traceback
import warnings

import click
import typer

from genfast import envs
from genfast.cli import bench_cmd, compare_cmd, optimize_cmd, profile_cmd, serve_cmd, train_cmd, tune_cmd
from genfast.errors import GenfastError

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


def _print_error(message: str) -> None:
    click.echo(message, err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run a subcommand; errors become one line and exit code 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = envs.debug() or "--debug" in args
    args = [a for a in args if a != "--debug"]
    if not debug:  # library warnings as one plain line, not file:line plus source
        warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"
    try:
        code = app(args=args, prog_name="genfast", standalone_mode=False)
        if isinstance(code, int) and code:  # typer returns (not raises) some exits, e.g. 130 on Ctrl-C
            if code == 130:
                _print_error("Error: interrupted. Hint: run the command again; no files were changed.")
            sys.exit(code)
    except GenfastError as exc:
        if debug:
            traceback.print_exc()
        _print_error(f"Error: {exc.message} Hint: {exc.hint}")
        sys.exit(getattr(exc, "exit_code", 1))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _print_error("Error: interrupted. Hint: run the command again; no files were changed.")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a bare traceback
        if debug:
            traceback.print_exc()
        _print_error(f"Error: unexpected {type(exc).__name__}: {exc} "
                     "Hint: rerun with --debug and report the traceback.")
        sys.exit(1)


if __name__ == "__main__":
    main()
