"""``covidx-us sources``: what a user can get today, per video, and what a build would use; totals per source and
class, with and without public copies. ``--offline`` answers from the cache manifest, the manual folder and the
registry of copies without a single request. Only parses arguments, calls
:func:`processing.sources.availability.check_availability` and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from processing.cli.download import add_locator_arguments
from processing.errors import finite_float

if TYPE_CHECKING:
    from processing.sources.availability import Availability


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sources",
        help="what can be had today, per video (catalogue URL alive, mirror, manual file, public copy)",
        description="Per video: is the catalogue URL alive (one-byte ranged GET, short timeout, per-host "
                    "politeness), does a mirror answer, is a manual file or a cached download there, is a public "
                    "copy known, and what a build would use, with totals per source and class with and without "
                    "--copies. --offline makes no request.",
    )
    add_locator_arguments(parser)
    parser.add_argument("--offline", action="store_true",
                        help="no request at all: answer from the cache manifest, --data-dir and the registry")
    parser.add_argument("--timeout", type=finite_float, default=5.0, help="seconds per request (default %(default)s)")
    parser.add_argument("--delay", type=finite_float, default=1.0,
                        help="seconds between two requests to one host (default %(default)s)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(func=run)
    return parser


def table(rows: Sequence[Availability]) -> str:
    from processing.sources.availability import totals

    width = max([len("video"), *(len(r.video_id) for r in rows)])
    head = f"{'video'.ljust(width)}  {'source':10}  {'class':9}  {'catalogue URL':13}  {'mirror':6}  " \
           f"{'manual':6}  {'cached':6}  {'copy':6}  {'build uses':10}  with --copies"
    lines = [head]
    for r in rows:
        alive = "-" if r.alive is None else ("alive" if r.alive else "dead")
        lines.append(f"{r.video_id.ljust(width)}  {r.source:10}  {r.label:9}  {alive:13}  "
                     f"{'yes' if r.mirror else '-':6}  {'yes' if r.manual else '-':6}  {r.cached or '-':6}  "
                     f"{r.copy or '-':6}  {r.use:10}  {r.use_with_copies}")
    for kind, groups in totals(rows).items():
        lines.append("")
        lines.append(f"{kind:12}  videos  available  with --copies")
        for key, counts in groups.items():
            lines.append(f"{key:12}  {counts['videos']:6}  {counts['available']:9}  {counts['with_copies']:13}")
    n = len(rows)
    available = sum(r.use not in ("missing", "unknown") for r in rows)
    with_copies = sum(r.use_with_copies not in ("missing", "unknown") for r in rows)
    lines.append("")
    lines.append(f"{available} of {n} videos available now; {with_copies} with --copies")
    return "\n".join(lines) + "\n"


def _check_release_cached(cache_dir: Path) -> None:
    """--offline reads the pinned release from the cache only: a missing file would be fetched, so refuse."""
    from processing.errors import CovidxError
    from processing.release.files import load_pins, release_cache

    pins = load_pins()
    root = release_cache(cache_dir, pins)
    absent = [rel for rel in pins.files if not (root / rel).is_file()]
    if absent:
        raise CovidxError(f"--offline: the pinned release files are not in the cache {root} ({absent[0]} is "
                          "absent); run once without --offline, or give --release-dir")


def run(args: argparse.Namespace) -> int:
    from processing.release.catalogue import load_catalogue
    from processing.release.copies import load_copies
    from processing.release.files import default_cache_dir
    from processing.sources.availability import check_availability, totals
    from processing.sources.download import DownloadOptions

    cache_dir = args.cache_dir or default_cache_dir()
    if args.offline and args.release_dir is None:
        _check_release_cached(cache_dir)
    catalogue = load_catalogue(args.release, args.release_dir, custom=args.custom_release, cache_dir=cache_dir)
    if args.sources:
        catalogue = catalogue.filter(sources=args.sources)
    options = DownloadOptions(cache_dir=cache_dir, mirrors=tuple(args.mirror), data_dir=args.data_dir,
                              timeout=args.timeout, retries=0, delay=args.delay, browser=False,
                              use_original=not args.no_original)
    registry = load_copies() if catalogue.official else {}
    rows = check_availability(catalogue.videos, options, offline=args.offline, registry=registry)
    if args.format == "json":
        json.dump({"videos": [r.as_dict() for r in rows], "totals": totals(rows), "offline": args.offline},
                  sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(table(rows))
    return 0
