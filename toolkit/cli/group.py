"""The `lut` group: one form for every failure (a single `error:` line and a documented exit code), SIGTERM
handled like Ctrl-C, library warnings and log records as one line each, and library parameter names
turned into the flags a user types."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import warnings

import click

from lut.toolkit.core.space import full_disk_line
from lut.toolkit.cli.stderr_filter import filtered_stderr
from lut.toolkit.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, LutError

#: library parameters whose flag is not `--` + the name with dashes (`name=value` as the library writes it)
FLAG_OF = {"resample=False": "--no-resample", "sources": "--data"}
_PARAM = re.compile(r"`([a-z][a-z0-9_]*)(?:=([^`]*))?`")


def flags(message: str) -> str:
    """A library message as the CLI says it: `` `stride` `` -> --stride, `` `bands=1,1,1` `` -> --bands 1,1,1,
    `` `overwrite=True` `` -> --overwrite. Library messages name parameters so Python callers read their
    own names; only the CLI speaks of flags."""
    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        whole = name if value is None else f"{name}={value}"
        if whole in FLAG_OF:
            return FLAG_OF[whole]
        option = FLAG_OF.get(name, "--" + name.replace("_", "-"))
        return option if value in (None, "True") else f"{option} {value}"
    return _PARAM.sub(flag, message)


class LutGroup(click.Group):
    """Library errors, click's usage errors, Ctrl-C and SIGTERM all end here; LUT_DEBUG=1 shows tracebacks
    of unexpected errors instead."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        self.raw_args = list(sys.argv[1:] if args is None else args)  # -o names the output of a full disk
        # GDAL's and libtiff's messages reach Python as rasterio log records; the failures they describe
        # arrive as exceptions, which become lut's one line
        logging.getLogger("rasterio").setLevel(logging.CRITICAL)
        with filtered_stderr(), warnings.catch_warnings(), _sigterm_raises(), _log_lines():
            _one_line_warnings()
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except click.exceptions.NoArgsIsHelpError as exc:  # bare `lut`: the help, as usual
                click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
                code = 0
            except click.ClickException as exc:
                hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
                self._fail(f"{exc.format_message()}{hint}", exc.exit_code)
            except click.exceptions.Abort:
                self._fail("interrupted; nothing was written", EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except LutError as exc:
            self._fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:
            self._fail(str(exc) or "interrupted; nothing was written", getattr(exc, "exit_code", EXIT_INTERRUPTED))
        except MemoryError:
            self._fail("out of memory: try a smaller --batch-size", EXIT_BAD_INPUT)
        except ImportError as exc:  # a runtime-only install asked to train, export or run Ray
            self._fail(missing_extra(ctx.invoked_subcommand or ctx.info_name, exc), EXIT_BAD_INPUT)
        except OSError as exc:
            self._fail(_wrapped_full_disk(exc, getattr(self, "raw_args", sys.argv[1:])) or
                       f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}", EXIT_BAD_INPUT)
        except Exception as exc:  # noqa: BLE001 - the CLI promises one line, never a traceback
            line = _wrapped_full_disk(exc, getattr(self, "raw_args", sys.argv[1:]))
            if line:
                self._fail(line, EXIT_BAD_INPUT)
            if os.environ.get("LUT_DEBUG"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else "no details"
            self._fail(f"lut failed unexpectedly: {first} (LUT_DEBUG=1 shows the traceback)", EXIT_BAD_INPUT)

    @staticmethod
    def _fail(message: str, code: int) -> None:
        click.echo(f"error: {' '.join(flags(message).split())}", err=True)
        sys.exit(code)


def _wrapped_full_disk(exc: BaseException, args: list[str]) -> str | None:
    """A full disk, however a library reported it, named by the command line's -o."""
    return full_disk_line(exc, _output_arg(args))


def _output_arg(args: list[str]) -> str | None:
    """The -o/--output value of a command line, if any."""
    for i, arg in enumerate(args):
        if arg in ("-o", "--output") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return None


#: the extra that brings each optional top-level module (pyproject.toml's optional-dependencies)
EXTRA_OF = {"torch": "train", "torchvision": "train", "transformers": "train", "optimum": "train", "lightly": "train",
            "lightning_fabric": "train", "sklearn": "train", "ray": "ray"}


def missing_extra(command: str | None, exc: ImportError) -> str:
    """One line for a module an optional extra provides: which extra to install."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(module)
    if extra is None:
        return f"lut failed unexpectedly: {exc} (reinstall lut: pip install lut)"
    return (f"lut {command or ''} needs {module}, which the runtime install does not include: "
            f"pip install 'lut[{extra}]'").replace("lut  needs", "lut needs")


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM (timeout, systemd, docker stop) ends a command like Ctrl-C: temporaries removed, exit 143."""
    def handler(signum, frame):
        raise Interrupted("terminated; nothing was written", EXIT_TERMINATED)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line_warnings() -> None:
    """Library warnings become lut's one-line `warning:`; deprecation notes meant for developers are hidden."""
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*NotGeoreferencedWarning.*")
    warnings.filterwarnings("always", category=UserWarning, module="lut")

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).splitlines()[0] if str(message) else category.__name__
        click.echo(f"warning: {flags(text)}", err=True)

    warnings.showwarning = show


class _EchoHandler(logging.Handler):
    """lut's INFO records (progress lines of many-scene runs, compare, demo) on stdout, as the user reads them."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(flags(record.getMessage()))


@contextlib.contextmanager
def _log_lines():
    logger = logging.getLogger("lut")
    handler, level, propagate = _EchoHandler(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@click.group(cls=LutGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lut")
def lut() -> None:
    """lut, the land-use toolkit: fine-tune, pretrain, export and map scenes.

    \b
    Exit codes: 0 success, 1 bad input or failed run, 2 usage error,
    3 Hugging Face hub unreachable, 4 some scenes of a many-scene run failed,
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""
