"""``covidx-us catalogue``: print the videos of a release view, as a summary table, CSV or JSON.

Only reads the catalogue (:func:`processing.release.catalogue.load_catalogue`); writes nothing but stdout.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from processing.errors import check_choice
from processing.vocabulary import CLASSES, PROBES, SOURCES, TASKS, VERSIONS

if TYPE_CHECKING:
    from processing.release.catalogue import Catalogue, Video

FORMATS = ("table", "csv", "json")
TABLE_COLUMNS = (
    "id", "number", "source", "class", "probe", "label", "filetype", "version_added", "body_region", "patient_id",
    "case_no", "group", "luss", "url", "filename", "licence", "link", "crop_window", "crop_size", "needs_mask",
    "expected_width", "expected_height", "expected_fps", "expected_frame_count", "expected_trusted",
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "catalogue",
        help="list the videos of a release version",
        description="Print the videos of a COVIDx-US release view (default: the latest) with their task labels.",
    )
    parser.add_argument("--release", default=VERSIONS[-1], choices=VERSIONS, help="release version (default %(default)s)")
    parser.add_argument("--release-dir", type=Path, help="local folder laid out like the upstream repository "
                        "(default: fetch the pinned upstream files into the cache)")
    parser.add_argument("--custom-release", action="store_true",
                        help="accept a release folder that is not the pinned upstream (recorded as unofficial)")
    parser.add_argument("--task", default="4class", choices=tuple(TASKS), help="task for the label column")
    parser.add_argument("--format", default="table", choices=FORMATS, help="output format (default %(default)s)")
    parser.add_argument("--cache-dir", type=Path, help="cache folder for the fetched release files")
    parser.set_defaults(func=run)
    return parser


def record(video: Video, task: str) -> dict[str, object]:
    """One video as a flat JSON-ready dict (TABLE_COLUMNS plus ``clinical`` and ``artifacts``)."""
    return {
        "id": video.id, "number": video.number, "source": video.source, "class": video.label, "probe": video.probe,
        "label": video.task_label(task), "filetype": video.filetype, "version_added": video.version_added,
        "body_region": video.body_region, "patient_id": video.patient_id, "case_no": video.case_no,
        "group": video.group, "luss": video.luss, "url": video.url, "filename": video.filename,
        "licence": video.licence, "link": video.link, "crop_window": str(video.crop_window),
        "crop_size": f"{video.crop_size[0]}x{video.crop_size[1]}", "needs_mask": video.masks.needs_mask,
        "expected_width": video.expected.width, "expected_height": video.expected.height,
        "expected_fps": video.expected.fps, "expected_frame_count": video.expected.frame_count,
        "expected_trusted": video.expected.trusted,
        "artifacts": sorted(video.artifacts), "clinical": dict(video.clinical),
    }


def _crosstab(videos: list[Video], rows: tuple[str, ...], columns: tuple[str, ...], attr: str, title: str) -> str:
    counts = Counter((v.label, getattr(v, attr)) for v in videos)
    columns = tuple(c for c in columns if any(counts[(r, c)] for r in rows))
    width = max(len(title), *(len(r) for r in rows), len("total"))

    def line(name: str, cells: list[object]) -> str:
        return " ".join([name.ljust(width), *(str(n).rjust(max(len(c), 5)) for n, c in zip(cells, columns + ("total",),
                                                                                          strict=True))])

    lines = [line(title, [*columns, "total"])]
    for r in rows:
        values = [counts[(r, c)] for c in columns]
        lines.append(line(r, [*values, sum(values)]))
    totals = [sum(counts[(r, c)] for r in rows) for c in columns]
    lines.append(line("total", [*totals, sum(totals)]))
    return "\n".join(lines)


def summary(catalogue: Catalogue, task: str) -> str:
    """Counts by class x probe and class x source for a catalogue (after the task's filter)."""
    videos = list(catalogue.filter(task=task))
    origin = f"{catalogue.commit[:12]} (official)" if catalogue.official and catalogue.commit else "custom (not official)"
    classes = tuple(c for c in CLASSES if any(v.label == c for v in videos))
    head = (f"COVIDx-US release {catalogue.version}, task {task}: {len(videos)} videos; release files {origin} "
            f"from {catalogue.release_dir}")
    labels = Counter(v.task_label(task) for v in videos)
    label_line = "labels: " + ", ".join(f"{name} {labels[name]}" for name in TASKS[task])
    return "\n\n".join([head, label_line, _crosstab(videos, classes, PROBES, "probe", "class x probe"),
                        _crosstab(videos, classes, SOURCES, "source", "class x source")]) + "\n"


def render(catalogue: Catalogue, task: str, fmt: str) -> str:
    """The catalogue as text in ``fmt`` (one of FORMATS)."""
    check_choice("task", task, TASKS)
    check_choice("format", fmt, FORMATS)
    if fmt == "table":
        return summary(catalogue, task)
    records = [record(v, task) for v in catalogue.filter(task=task)]
    if fmt == "json":
        return json.dumps(records, indent=1, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TABLE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def run(args: argparse.Namespace) -> int:
    from processing.release.catalogue import load_catalogue

    catalogue = load_catalogue(args.release, args.release_dir, custom=args.custom_release, cache_dir=args.cache_dir)
    sys.stdout.write(render(catalogue, args.task, args.format))
    return 0
