"""``covidx-us report``: write the build's HTML report (``processing.report.page``) and optionally open it."""

from __future__ import annotations

import argparse
import webbrowser

from processing.cli.folder import add_folder_argument, folder_argument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a build (counts, thumbnails, provenance)",
        description="Write FOLDER/report/index.html from FOLDER/build_record.json: counts by class, source, probe and split, "
        "per video the original frame with its crop window, the mask, the clean frame and a frame whose pointer "
        "was removed, its status and provenance, the missing videos and the build parameters. The page embeds "
        "its images and fetches nothing.",
    )
    add_folder_argument(parser, "the build's export folder")
    parser.add_argument("--open", action="store_true", help="open the report in the web browser")
    parser.add_argument("--max-videos", type=int, metavar="N",
                        help="thumbnails for the first N processed videos only (default: all)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from processing.report.page import ReportOptions, load_build_record, report_warnings, write_report

    folder = folder_argument(args)
    path = write_report(folder, ReportOptions(max_videos=args.max_videos))
    for warning in report_warnings(load_build_record(folder)):
        print(f"warning: {warning}")
    print(f"report written to {path}")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0
