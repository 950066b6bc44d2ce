"""The export folder a command reads, one convention for all: a positional FOLDER (like ``hf upload REPO_ID
FOLDER``), defaulting to ``./covidx_us``. The ``--output DIR`` these commands once took still works, hidden."""

from __future__ import annotations

import argparse
from pathlib import Path

from processing.errors import CovidxError
from processing.vocabulary import DEFAULT_OUTPUT


def add_folder_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the optional positional FOLDER (and the old ``--output``, hidden) to ``parser``."""
    parser.add_argument("folder", nargs="?", type=Path, metavar="FOLDER",
                        help=f"{what} (default: ./{DEFAULT_OUTPUT})")
    parser.add_argument("--output", type=Path, dest="output_folder", help=argparse.SUPPRESS)


def folder_argument(args: argparse.Namespace) -> Path:
    """The folder the command line names (FOLDER, or the old --output), else ``./covidx_us``."""
    if args.folder is not None and args.output_folder is not None and args.folder != args.output_folder:
        raise CovidxError(f"two folders given: {args.folder} and --output {args.output_folder}; give FOLDER only")
    return args.folder or args.output_folder or DEFAULT_OUTPUT
