"""``covidx-us push REPO_ID``: upload an exported folder (``processing.hub.push``) to a private Hub dataset repo."""

from __future__ import annotations

import argparse
from pathlib import Path

from processing.vocabulary import DEFAULT_OUTPUT


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push",
        help="upload an exported folder to a Hugging Face dataset repo (private by default)",
        description="Upload DIR (written by `covidx-us build`) as a dataset repo. Private unless --public; the "
        "repo's visibility is verified and fixed. Token: `hf auth login` or HF_TOKEN.",
    )
    parser.add_argument("repo_id", metavar="REPO_ID", help="NAMESPACE/NAME (or NAME for your own namespace)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                        help=f"the export folder to upload (default: ./{DEFAULT_OUTPUT})")
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument("--private", dest="private", action="store_true", default=True,
                            help="make the repo private (default)")
    visibility.add_argument("--public", dest="private", action="store_false", help="make the repo public")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from processing.hub.push import push_folder

    result = push_folder(args.repo_id, args.output, private=args.private)
    print(f"pushed {len(result.files)} files to {result.url} ({'private' if result.private else 'public'})")
    return 0
