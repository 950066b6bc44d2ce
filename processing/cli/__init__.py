"""The ``covidx-us`` command line: one sub-command per module, each module owning its own arguments.

A command module defines ``add_parser(subparsers) -> argparse.ArgumentParser`` whose parser sets
``func=run`` where ``run(args) -> int`` is the exit code. This file only wires them together.

Every parser is built on each call, so command modules import only argparse, pathlib and the words of
``processing.vocabulary`` at their top: what a command runs is imported inside its ``run``. That keeps
``covidx-us --help`` and ``covidx-us <cmd> --help`` fast (tests/test_cli_startup.py checks the imports).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from processing.errors import CovidxError, os_error_message
from processing.fileutil import untemp

# Loggers whose INFO lines are shown; the libraries underneath (the Hub client's one line per HTTP request, urllib3,
# datasets) show theirs only with --verbose, and their warnings always.
OWN_LOGGERS = ("processing", "covidx_us", "__main__")


class _QuietLibraries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] in OWN_LOGGERS

# (sub-command, module defining add_parser). Order is the order of ``covidx-us --help``.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("catalogue", "processing.cli.catalogue"),
    ("download", "processing.cli.download"),
    ("sources", "processing.cli.sources"),
    ("clean", "processing.cli.clean"),
    ("build", "processing.cli.build"),
    ("push", "processing.cli.push"),
    ("demo", "processing.cli.demo"),
    ("report", "processing.cli.report"),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone (its module is the only one imported)."""
    parser = argparse.ArgumentParser(
        prog="covidx-us",
        description="Rebuild the COVIDx-US lung-ultrasound benchmark as a Hugging Face dataset.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action=_Version, help="print the version (and git commit of a checkout)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS:
        if command in (None, name):
            importlib.import_module(module_name).add_parser(sub)
    return parser


class _Version(argparse.Action):
    """``--version``, asking git for the commit only when given (the parser is built on every run)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        from processing.project import version_text

        print(f"covidx-us {version_text()}")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Only the named command's module is imported: `clean` needs neither `datasets` nor `requests` (start-up).
    named = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(named if named in dict(COMMANDS) else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_QuietLibraries())
    try:
        return int(args.func(args) or 0)
    except CovidxError as exc:
        print(f"covidx-us {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a file where a folder should be: say which, and why
        print(f"covidx-us {args.command}: error: {os_error_message(untemp(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"covidx-us {args.command}: interrupted; completed work is kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
