"""``covidx-us push REPO_ID``: upload an exported folder (``processing.hub.push``) to a private Hub dataset repo."""

from __future__ import annotations

import argparse

from processing.cli.folder import add_folder_argument, folder_argument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push",
        help="upload an exported folder to a Hugging Face dataset repo (private by default)",
        description="Upload FOLDER (written by `covidx-us build`) as a dataset repo, like `hf upload REPO_ID "
        "FOLDER`. Private unless --public; the repo's visibility is verified and fixed. A build of a custom or "
        "simulated release is refused unless --allow-custom. Token: `hf auth login` or HF_TOKEN.",
    )
    parser.add_argument("repo_id", metavar="REPO_ID", help="NAMESPACE/NAME (or NAME for your own namespace)")
    add_folder_argument(parser, "the export folder to upload")
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument("--private", dest="private", action="store_true", default=True,
                            help="make the repo private (default)")
    visibility.add_argument("--public", dest="private", action="store_false", help="make the repo public")
    parser.add_argument("--allow-custom", action="store_true",
                        help="upload even a build that is not the official COVIDx-US release (custom or simulated; "
                        "its card says so)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from processing.hub.push import push_folder

    result = push_folder(args.repo_id, folder_argument(args), private=args.private, allow_custom=args.allow_custom)
    print(f"pushed {len(result.files)} files to {result.url} ({'private' if result.private else 'public'})")
    return 0
