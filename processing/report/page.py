"""``covidx-us report``: a self-contained HTML quality report of a build, for judging the curation by eye.

Reads ``DIR/build_record.json`` (written by ``covidx-us build``; format in ARCHITECTURE.md, "The build record") and
the files it names: one frame of each original clip, the masks, the clean frame images. Writes
``DIR/report/index.html`` with

- counts of videos by class, source, probe, download status and split, as inline SVG bar charts drawn here;
- per video a strip of small JPEG thumbnails: the original frame with the crop window drawn, the mask tinted on the
  cropped frame, the clean frame, and, when the video has frame-specific masks, a kept frame whose pointer was
  removed (before and after); its download status and provenance (URL, sha256, source, licence, split per config);
- the missing videos with their reasons; the build parameters and the release provenance.

Every image is embedded as a ``data:`` URI and there is no script, font or stylesheet to fetch: the page loads
nothing from anywhere. The page is written atomically and streamed video by video, so memory stays bounded.
This module must not process clips, download anything, or change the build: it only reads them.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
from PIL import Image

from processing.errors import CovidxError
from processing.fileutil import atomic_write
from processing.hub.export import split_warnings
from processing.progress import progress
from processing.vocabulary import CLASSES, DOWNLOAD_STATUSES, PROBES, SOURCES, TASKS

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # the build record format this module reads
RECORD_NAME = "build_record.json"
REPORT_DIR = "report"
WINDOW_COLOR = (255, 214, 0)  # crop window outline (amber)
MASK_COLOR = (255, 0, 200)  # mask tint (magenta: absent from grey-scale ultrasound)
MASK_ALPHA = 0.55
MISSING_SEGMENT = "missing"
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
NOT_IN_CONFIG = "not in config"
FIXED_COLORS = {MISSING_SEGMENT: "#bab0ac", NOT_IN_CONFIG: "#e4e4e4"}
STATUS_COLORS = {"ok": "#59a14f", "mirror": "#4e79a7", "manual": "#edc948", "copy": "#b07aa1", "missing": "#bab0ac"}


class ReportError(CovidxError):
    """The build record is absent, unreadable, of an unknown format, or lacks a field the report needs."""


@dataclass(frozen=True)
class ReportOptions:
    """How the report is made.

    ``max_videos``: thumbnails for the first N videos only (all videos are still listed); ``thumb_size``: the longer
    side of a thumbnail in px; ``jpeg_quality``: thumbnail JPEG quality; ``workers``: threads decoding thumbnails.
    """

    max_videos: int | None = None
    thumb_size: int = 240
    jpeg_quality: int = 80
    workers: int = 2

    def __post_init__(self) -> None:
        if self.max_videos is not None and self.max_videos < 0:
            raise CovidxError(f"invalid max_videos {self.max_videos}; must be 0 or more (or None for all)")
        if not 16 <= self.thumb_size <= 1024:
            raise CovidxError(f"invalid thumb_size {self.thumb_size}; must lie in [16, 1024] px")
        if not 1 <= self.jpeg_quality <= 100:
            raise CovidxError(f"invalid jpeg_quality {self.jpeg_quality}; must lie in [1, 100]")
        if not 1 <= self.workers <= 32:
            raise CovidxError(f"invalid workers {self.workers}; must lie in [1, 32]")


# ---- the build record


def load_build_record(output: Path | str) -> dict[str, Any]:
    """The build record of the build exported to ``output``; :class:`ReportError` naming the file otherwise."""
    output = Path(output)
    path = output / RECORD_NAME
    if not path.is_file():
        where = "does not exist" if not output.exists() else "holds no build record"
        raise ReportError(f"{output} {where} ({path} not found): run `covidx-us build --output {output}` first, "
                          "then `covidx-us report --output` the same folder")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise ReportError(f"{path} holds a JSON {type(record).__name__}, not a build record object")
    version = record.get("format")
    if version != FORMAT_VERSION:
        raise ReportError(f"{path}: unknown build record format {version!r}; this covidx-us reads format "
                          f"{FORMAT_VERSION} (rebuild with this version, or update covidx-us)")
    for key in ("configs", "videos"):
        if not isinstance(record.get(key), list):
            raise ReportError(f"{path}: field {key!r} is missing or not a list")
    for n, video in enumerate(record["videos"]):
        if not isinstance(video, dict) or not video.get("id"):
            raise ReportError(f"{path}: videos[{n}] has no id")
        if not isinstance(video.get("download"), dict):
            raise ReportError(f"{path}: video {video['id']} has no download object")
    return record


def is_missing(video: Mapping[str, Any]) -> bool:
    """True for a video the build left out (no processing record, or a download status of missing)."""
    return video.get("record") is None or (video.get("download") or {}).get("status") == "missing"


def catalogue_facts(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per video id, what the build record does not repeat from the release: licence, case page, catalogue URL.

    Read from the build's release folder (local files, no network); empty when that folder is gone or unreadable,
    and the report then goes without these facts.
    """
    from processing.release.catalogue import VERSIONS, load_catalogue

    release = record.get("release") or {}
    folder, version = release.get("release_dir"), release.get("version")
    if not folder or not Path(folder).is_dir() or version not in VERSIONS:
        return {}
    try:
        catalogue = load_catalogue(version, Path(folder), custom=not release.get("official", False))
    except CovidxError as exc:
        log.warning("release facts (licence, case page) left out: %s", exc)
        return {}
    return {v.id: {"licence": v.licence, "link": v.link, "catalogue_url": v.url, "version_added": v.version_added}
            for v in catalogue.videos}


def missing_reason(video: Mapping[str, Any]) -> str:
    """Why the build left ``video`` out: the build's reason, else the download's."""
    return str(video.get("reason") or (video.get("download") or {}).get("reason") or "no processing record")


def _frames(video: Mapping[str, Any]) -> list[tuple[int, str]]:
    """``(index, image path)`` of the record's kept frames; entries are ``[index, timestamp, path, masked]``."""
    out = []
    for frame in (video.get("record") or {}).get("frames") or []:
        if isinstance(frame, Mapping):
            out.append((int(frame["index"]), str(frame["path"])))
        else:
            out.append((int(frame[0]), str(frame[2])))
    return out


# ---- pixels (pure functions)


def thumbnail(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` shrunk (area interpolation) so that its longer side is at most ``max_side``; never enlarged."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def draw_window(image: np.ndarray, window: Sequence[int], color: tuple[int, int, int] = WINDOW_COLOR,
                thickness: int = 2) -> np.ndarray:
    """A copy of ``image`` with the rectangle ``(x, y, w, h)`` outlined inside its bounds."""
    out = image.copy()
    x, y, w, h = (int(v) for v in window)
    height, width = out.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w) - 1, min(height, y + h) - 1
    if x1 >= x0 and y1 >= y0:
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thickness)
    return out


def tint_mask(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = MASK_COLOR,
              alpha: float = MASK_ALPHA) -> np.ndarray:
    """A copy of ``image`` with the pixels where ``mask`` is True blended towards ``color`` by ``alpha``."""
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the image {image.shape[:2]}")
    out = image.copy()
    tint = np.asarray(color, dtype=np.float32)
    out[mask] = (out[mask].astype(np.float32) * (1 - alpha) + tint * alpha).round().astype(np.uint8)
    return out


def jpeg_data_uri(image: np.ndarray, quality: int = 80) -> str:
    """``image`` (RGB uint8) as a ``data:image/jpeg;base64,...`` URI."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- charts (pure functions returning SVG text)


def _color(name: str, order: Sequence[str]) -> str:
    """Fixed colours for missing / not-in-config and for download statuses; palette colours by position otherwise."""
    if name in FIXED_COLORS:
        return FIXED_COLORS[name]
    if set(order) <= set(DOWNLOAD_STATUSES):
        return STATUS_COLORS[name]
    plain = [s for s in order if s not in FIXED_COLORS]
    return PALETTE[plain.index(name) % len(PALETTE)]


def bar_chart_svg(title: str, rows: Mapping[str, Mapping[str, int]], segments: Sequence[str], *,
                  width: int = 560) -> str:
    """A horizontal stacked bar chart as an inline ``<svg class="chart">``: one bar per row, one coloured segment
    per name in ``segments`` (legend on top), the row total at the end of each bar, a tooltip on every segment."""
    label_w, row_h, top = 120, 22, 30
    segments = [s for s in segments if any(r.get(s, 0) for r in rows.values())] or list(segments)
    totals = {name: sum(r.get(s, 0) for s in segments) for name, r in rows.items()}
    most = max(totals.values(), default=0) or 1
    bar_w = width - label_w - 50
    height = top + row_h * max(1, len(rows)) + 8
    esc = html.escape
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
             f"<title>{esc(title)}</title>"]
    x = label_w
    for name in segments:  # legend
        parts.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{_color(name, segments)}"/>'
                     f'<text x="{x + 14}" y="15" class="legend">{esc(name)}</text>')
        x += 24 + 7 * len(name)
    for n, (name, counts) in enumerate(rows.items()):
        y = top + n * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{esc(name)}</text>')
        x = float(label_w)
        for segment in segments:
            value = counts.get(segment, 0)
            if not value:
                continue
            w = bar_w * value / most
            parts.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" '
                         f'fill="{_color(segment, segments)}"><title>{esc(name)} / {esc(segment)}: {value}</title>'
                         "</rect>")
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 14}">{totals[name]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order))


def chart_rows(videos: Sequence[Mapping[str, Any]], attr: str, config: str | None,
               order: Sequence[str] = ()) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Videos counted by ``attr`` (class, source, probe...) and stacked by their split in ``config``
    (``missing`` for videos left out, ``not in config`` for videos the config's task drops)."""
    counts: dict[str, Counter[str]] = {}
    for video in videos:
        key = str(video.get(attr) or "?")
        if is_missing(video):
            segment = MISSING_SEGMENT
        else:
            segment = str((video.get("split") or {}).get(config) or NOT_IN_CONFIG)
        counts.setdefault(key, Counter())[segment] += 1
    segments = _ordered({s for c in counts.values() for s in c}, ())
    plain = [s for s in segments if s not in (MISSING_SEGMENT, NOT_IN_CONFIG)]
    split_order = [s for s in ("train", "validation", "test") if s in plain] + [s for s in plain if s not in (
        "train", "validation", "test")]
    segments = split_order + [s for s in (NOT_IN_CONFIG, MISSING_SEGMENT) if s in segments]
    return {k: dict(counts[k]) for k in _ordered(counts, order)}, segments


# ---- thumbnails (reads the clip, masks and frame images the record names)


@dataclass(frozen=True)
class Thumb:
    caption: str
    uri: str | None  # data URI, or None when the image could not be made
    problem: str | None = None  # why not, naming the file


def _first_frames(path: Path, wanted: Iterable[int]) -> dict[int, np.ndarray]:
    """The decoded frames ``wanted`` of the clip (decoding stops after the last one)."""
    from processing.pixels.clips import iter_frames

    wanted = set(wanted)
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    with contextlib.closing(iter_frames(path)) as frames:
        for frame in frames:
            if frame.index in wanted:
                found[frame.index] = frame.image
                if len(found) == len(wanted):
                    break
    return found


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def video_thumbnails(video: Mapping[str, Any], options: ReportOptions) -> list[Thumb]:
    """The thumbnail strip of one processed video (see the module docstring); problems become captions, not errors."""
    plan = video.get("plan") or {}
    frames = _frames(video)
    if not frames:
        return [Thumb("no kept frame", None, "the record lists no frame image")]
    frame_masks = {int(k): Path(v) for k, v in (plan.get("frame_masks") or {}).items()}
    # The main strip shows a frame under the main mask only; the pointer pair a frame under a frame-specific mask.
    first = next((i for i, _ in frames if i not in frame_masks), frames[0][0])
    pointer = next((i for i, _ in frames if i in frame_masks and i != first), None)
    strip = _Strip.of(video, dict(frames), frame_masks, first, pointer, options)
    thumbs = [strip.original(first), strip.masked(first, "pointer mask" if first in frame_masks else "mask"),
              strip.clean(first, f"clean frame {first}")]
    if pointer is not None:
        thumbs.append(strip.masked(pointer, "pointer mask"))
        thumbs.append(strip.clean(pointer, f"clean frame {pointer} (pointer removed)"))
    return thumbs


@dataclass
class _Strip:
    """What one video's thumbnails are drawn from: its first source frames, crop window, masks and clean frames;
    ``clip_problem`` / ``mask_problem`` say why the originals or the masks cannot be shown."""

    originals: dict[int, np.ndarray]
    clip_problem: str | None
    window: Sequence[int] | None
    masks: Any
    mask_problem: str | None
    images: dict[int, str]
    side: int
    quality: int

    @classmethod
    def of(cls, video: Mapping[str, Any], images: dict[int, str], frame_masks: dict[int, Path], first: int,
           pointer: int | None, options: ReportOptions) -> _Strip:
        from processing.pixels.masks import MaskSet

        plan, record = video.get("plan") or {}, video.get("record") or {}
        clip = Path((video.get("download") or {}).get("path") or "")
        try:
            originals = _first_frames(clip, {first} | ({pointer} if pointer is not None else set()))
        except CovidxError as exc:
            originals, clip_problem = {}, str(exc)
        else:
            clip_problem = None if first in originals else f"clip {clip} has no frame {first}"
        size = tuple(int(v) for v in record.get("crop_size") or ())
        masks, mask_problem = None, None
        if len(size) == 2 and (plan.get("main_mask") or frame_masks):
            try:
                masks = MaskSet(clip, size, Path(plan["main_mask"]) if plan.get("main_mask") else None, frame_masks,
                                bool(plan.get("tight")))
            except CovidxError as exc:
                mask_problem = str(exc)
        return cls(originals, clip_problem, plan.get("window"), masks, mask_problem, images, options.thumb_size,
                   options.jpeg_quality)

    def crop(self, image: np.ndarray) -> np.ndarray:
        if not self.window:
            return image
        x, y, w, h = (int(v) for v in self.window)
        return image[y:y + h, x:x + w]

    def original(self, index: int) -> Thumb:
        caption = f"original frame {index}" + (" + crop window" if self.window else "")
        if index not in self.originals:
            return Thumb(caption, None, self.clip_problem)
        image = self.originals[index]
        small = thumbnail(image, self.side)
        if self.window:
            scale = small.shape[1] / image.shape[1]
            small = draw_window(small, [round(v * scale) for v in self.window], thickness=2)
        return Thumb(caption, jpeg_data_uri(small, self.quality))

    def masked(self, index: int, label: str) -> Thumb:
        caption = f"{label} on cropped frame {index}"
        if index not in self.originals:
            return Thumb(caption, None, self.clip_problem)
        if self.mask_problem:
            return Thumb(caption, None, self.mask_problem)
        cropped = self.crop(self.originals[index])
        try:
            mask = self.masks.for_frame(index) if self.masks is not None else None
        except CovidxError as exc:
            return Thumb(caption, None, str(exc))
        if mask is None:
            return Thumb(f"cropped frame {index} (no mask)", jpeg_data_uri(thumbnail(cropped, self.side), self.quality))
        if mask.shape != cropped.shape[:2]:
            return Thumb(caption, None, f"mask {mask.shape[::-1]} does not match the crop {cropped.shape[1::-1]}")
        return Thumb(caption, jpeg_data_uri(thumbnail(tint_mask(cropped, mask), self.side), self.quality))

    def clean(self, index: int, caption: str) -> Thumb:
        path = Path(self.images[index])
        try:
            return Thumb(caption, jpeg_data_uri(thumbnail(_read_rgb(path), self.side), self.quality))
        except (OSError, ValueError) as exc:
            return Thumb(caption, None, f"frame image {path} cannot be read: {exc}")


# ---- HTML

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:0 16px;
color:#222;background:#fafafa}
h1{margin:16px 0 4px}h2{border-bottom:1px solid #ccc;padding-bottom:2px;margin-top:28px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}code{font-size:12px;word-break:break-all}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts figure{margin:0;background:#fff;border:1px solid #ddd;padding:6px}
.charts figcaption{font-weight:600}svg.chart text{font-size:12px;fill:#222}svg.chart text.legend{font-size:11px}
.video{background:#fff;border:1px solid #ddd;margin:10px 0;padding:8px}
.video h3{margin:0 0 6px;font-size:15px}.strip{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0}
.strip figure{margin:0;text-align:center;font-size:11px;max-width:320px}
.strip img{display:block;background:#000;height:160px;width:auto;max-width:320px}
.problem{width:160px;height:152px;background:#fee;color:#900;font-size:11px;padding:4px;overflow:auto;
word-break:break-all}
.badge{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px;margin-left:6px}
.ok{background:#59a14f}.mirror{background:#4e79a7}.manual{background:#b8860b}.copy{background:#b07aa1}.missing{background:#c0392b}
.warn{background:#fff3cd;border:1px solid #e0c36a;padding:6px}
dl.prov{display:grid;grid-template-columns:max-content auto;gap:0 10px;margin:4px 0}dl.prov dt{color:#666}
dl.prov dd{margin:0}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _cell(value: object) -> str:
    if isinstance(value, (dict, list, tuple)):
        return f"<code>{_e(json.dumps(value, sort_keys=True, default=str))}</code>"
    return _e(value)


def _kv_table(mapping: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_cell(v)}</td></tr>" for k, v in mapping.items())
    return f"<table>{rows}</table>"


def _link(url: object) -> str:
    text = _e(url)
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return f'<a href="{text}" rel="noreferrer noopener">{text}</a>'
    return text


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status) if status in DOWNLOAD_STATUSES else "missing"}">{_e(status)}</span>'


def _primary_config(record: Mapping[str, Any]) -> str | None:
    configs = record.get("configs") or []
    return "frames-4class" if "frames-4class" in configs else (configs[0] if configs else None)


def _split_rows(record: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    splits = record.get("splits")
    if isinstance(splits, Mapping) and splits:
        return {str(c): {str(s): int(n) for s, n in counts.items()} for c, counts in splits.items()}
    rows: dict[str, Counter[str]] = {}
    for video in record["videos"]:
        if not is_missing(video):
            for config, split in (video.get("split") or {}).items():
                rows.setdefault(config, Counter())[split] += 1
    return {c: dict(v) for c, v in rows.items()}


def _task_class(label: str | None, config: str) -> str | None:
    """A video's class in ``config``'s task, from its 4-class label (None: the task leaves it out)."""
    task = config.split("-", 1)[-1]
    if task == "binary":
        return "covid" if label == "covid" else "non-covid"
    return label if label in TASKS.get(task, ()) else None


def split_counts(record: Mapping[str, Any]) -> dict[str, dict[str, dict[str, tuple[int, int, int]]]]:
    """Per config, split and class: (videos, frames, patients) of the processed videos. Frames are the frames
    kept (the frames config's examples); a video without a patient id counts as its own patient."""
    out: dict[str, dict[str, dict[str, list]]] = {}
    for video in record["videos"]:
        if is_missing(video):
            continue
        frames = int((video.get("record") or {}).get("frames_kept") or 0)
        patient = video.get("patient_id") or f"video:{video['id']}"
        for config, split in (video.get("split") or {}).items():
            name = _task_class(video.get("label"), config)
            if name is None:
                continue
            cell = out.setdefault(config, {}).setdefault(split, {}).setdefault(name, [0, 0, set()])
            cell[0] += 1
            cell[1] += frames
            cell[2].add(patient)
    return {config: {split: {c: (n[0], n[1], len(n[2])) for c, n in by_class.items()}
                     for split, by_class in splits.items()} for config, splits in out.items()}


def report_warnings(record: Mapping[str, Any]) -> list[str]:
    """Splits that lack a class or hold fewer than 3 videos, per config (as the build summary says)."""
    warnings = []
    for config, splits in split_counts(record).items():
        classes = TASKS.get(config.split("-", 1)[-1], ())
        videos = {split: {c: n[0] for c, n in by_class.items()} for split, by_class in splits.items()}
        warnings += split_warnings(config, videos, tuple(classes))
    return warnings


def _split_tables(record: Mapping[str, Any]) -> str:
    counts = split_counts(record)
    warnings = report_warnings(record)
    warn = "".join(f'<p class="warn">{_e(w)}</p>' for w in warnings)
    tables = []
    for config, splits in counts.items():
        names = _ordered(set(splits), ("train", "validation", "test"))
        classes = TASKS.get(config.split("-", 1)[-1], ())
        head = "".join(f"<th>{_e(s)}</th>" for s in names)
        rows = ""
        for c in classes:
            cells = "".join(f"<td>{'{} / {} / {}'.format(*splits[s].get(c, (0, 0, 0)))}</td>" for s in names)
            rows += f"<tr><td>{_e(c)}</td>{cells}</tr>"
        tables.append(f"<h4>{_e(config)}</h4><table><tr><th>class</th>{head}</tr>{rows}</table>")
    return ('<section id="splits"><h2>Splits: videos / frames / patients per class</h2>'
            "<p>Frames are the frames kept per video; a video without a patient id counts as its own patient.</p>"
            f"{warn}{''.join(tables)}</section>")


def _charts(record: Mapping[str, Any]) -> str:
    videos, config = record["videos"], _primary_config(record)
    stacked = f" (stacked by {config} split)" if config else ""
    figures = []
    for title, attr, order in (("Videos by class", "label", CLASSES), ("Videos by source", "source", SOURCES),
                               ("Videos by probe", "probe", PROBES)):
        rows, segments = chart_rows(videos, attr, config, order)
        figures.append((title + stacked, bar_chart_svg(title, rows, segments)))
    status = Counter((v.get("download") or {}).get("status") or "missing" for v in videos)
    status_rows = {s: {s: status[s]} for s in _ordered(status, DOWNLOAD_STATUSES)}
    figures.append(("Videos by download status", bar_chart_svg("Videos by download status", status_rows,
                                                               _ordered(status, DOWNLOAD_STATUSES))))
    splits = _split_rows(record)
    split_names = _ordered({s for c in splits.values() for s in c}, ("train", "validation", "test"))
    figures.append(("Videos per split, by config", bar_chart_svg("Videos per split, by config", splits, split_names)))
    body = "".join(f"<figure><figcaption>{_e(t)}</figcaption>{svg}</figure>" for t, svg in figures)
    return f'<section id="counts"><h2>Counts</h2><div class="charts">{body}</div></section>'


def _provenance(record: Mapping[str, Any]) -> str:
    release = record.get("release") or {}
    warn = ""
    if release.get("simulated"):
        warn = ('<p class="warn">Built from a SIMULATED release (covidx-us demo): the clips are simulated, not '
                f"COVIDx-US data (release folder {_e(release.get('release_dir'))}).</p>")
    elif release.get("official") is False:
        warn = ('<p class="warn">Built from a custom release: this is not the official COVIDx-US release '
                f"(release folder {_e(release.get('release_dir'))}).</p>")
    facts = {
        "created": record.get("created"), "configs": ", ".join(map(str, record.get("configs") or [])),
        "release version": release.get("version"), "release commit": release.get("commit"),
        "official release": release.get("official"), "release folder": release.get("release_dir"),
        "work folder": record.get("work_dir"),
        "built with": _tool_text(record.get("tool")), "download manifest sha256": record.get("download_manifest_digest"),
    }
    parameters = dict(record.get("parameters") or {})
    per_config = dict(record.get("config_parameters") or {})
    if parameters and all(isinstance(v, Mapping) for v in parameters.values()):  # per config only
        per_config, parameters = {**parameters, **per_config}, {}
    params = _kv_table(parameters) if parameters else ""
    for name, values in per_config.items():
        own = {k: v for k, v in values.items() if k not in parameters or parameters[k] != v}
        if own:
            params += f"<h4>{_e(name)}</h4>{_kv_table(own)}"
    params = params or "<p>(none recorded)</p>"
    return (f'<section id="provenance"><h2>Release and build parameters</h2>{warn}{_kv_table(facts)}'
            "<h3>Parameters</h3><p>Shared by every config, then what each config sets differently.</p>"
            f"{params}</section>")


def _tool_text(tool: object) -> str | None:
    if not isinstance(tool, Mapping):
        return None  # a record written before covidx-us recorded its version
    commit = f" (git {tool.get('git_commit')}{', modified' if tool.get('git_modified') else ''})" \
        if tool.get("git_commit") else ""
    return f"covidx-us {tool.get('version')}{commit}"


def _missing(record: Mapping[str, Any]) -> str:
    gone = [v for v in record["videos"] if is_missing(v)]
    if not gone:
        return '<section id="missing"><h2>Missing videos (0)</h2><p>Every video of the build was processed.</p></section>'
    rows = "".join(
        f'<tr><td><a href="#v-{_e(v["id"])}">{_e(v["id"])}</a></td><td>{_e(v.get("source"))}</td>'
        f'<td>{_e(v.get("label"))}</td><td>{_badge((v.get("download") or {}).get("status") or "missing")}</td>'
        f"<td>{_e(missing_reason(v))}</td>"
        f'<td>{_link((v.get("download") or {}).get("url") or v.get("catalogue_url"))}</td></tr>' for v in gone)
    return (f'<section id="missing"><h2>Missing videos ({len(gone)})</h2><table><tr><th>video</th><th>source</th>'
            f"<th>class</th><th>status</th><th>reason</th><th>URL</th></tr>{rows}</table></section>")


def _video_card(video: Mapping[str, Any], thumbs: list[Thumb] | None) -> str:
    download, plan, record = video.get("download") or {}, video.get("plan") or {}, video.get("record") or {}
    status = download.get("status") or "missing"
    facts: dict[str, str] = {
        "class / source / probe": _e(f"{video.get('label')} / {video.get('source')} / {video.get('probe')}"),
        "patient": _e(video.get("patient_id")),
        "URL": _link(download.get("url")),
        "sha256": f"<code>{_e(download.get('sha256'))}</code>",
    }
    if not download.get("url") and video.get("catalogue_url"):
        facts["URL"] = _link(video["catalogue_url"]) + " (release)"
    for key, name in (("licence", "licence"), ("link", "case page"), ("version_added", "added in release")):
        if video.get(key):
            facts[name] = _link(video[key])
    if video.get("split"):
        facts["split"] = _e(", ".join(f"{c}: {s}" for c, s in video["split"].items()))
    if is_missing(video):
        facts["reason"] = _e(missing_reason(video))
    if record:
        src, crp = record.get("source_size") or ["?", "?"], record.get("crop_size") or ["?", "?"]
        facts["frames"] = _e(f"read {record.get('frames_read')}, kept {record.get('frames_kept')}, deleted "
                             f"{record.get('frames_deleted')}, masked {record.get('frames_masked')}; "
                             f"{src[0]}x{src[1]} -> {crp[0]}x{crp[1]} at {record.get('fps')} fps")
    if plan:
        facts["plan"] = _e(f"crop {plan.get('crop')} window {plan.get('window')}; masks {plan.get('masks')}"
                           f"{' (tight)' if plan.get('tight') else ''}; {len(plan.get('frame_masks') or {})} "
                           f"frame-specific masks; deleted {plan.get('deleted') or []}")
        detected = plan.get("detected")
        if isinstance(detected, Mapping):
            facts["detected"] = _e(f"window {detected.get('window')}, probe {detected.get('probe')}, "
                                   f"{detected.get('frame_masks')} frame masks, {detected.get('dropped')} dropped")
    copy = download.get("copy")
    if isinstance(copy, Mapping):
        changes = ", ".join(map(str, copy.get("changes") or ())) or "identical"
        facts["public copy"] = _e(f"{copy.get('repository')} @ {copy.get('commit')}: {copy.get('path')} "
                                  f"({changes}; not the original file; processed {plan.get('copy') or 'auto'})")
    if download.get("path"):
        facts["clip"] = f"<code>{_e(download['path'])}</code>"
    prov = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts.items())
    strip = ""
    if thumbs is not None:
        figures = []
        for thumb in thumbs:
            body = (f'<img src="{thumb.uri}" alt="{_e(thumb.caption)}">' if thumb.uri
                    else f'<div class="problem">{_e(thumb.problem or "unavailable")}</div>')
            figures.append(f"<figure>{body}<figcaption>{_e(thumb.caption)}</figcaption></figure>")
        strip = f'<div class="strip">{"".join(figures)}</div>'
    elif not is_missing(video):
        strip = "<p><i>thumbnails left out (--max-videos)</i></p>"
    return (f'<article class="video" id="v-{_e(video["id"])}"><h3>{_e(video["id"])}{_badge(status)}</h3>'
            f'{strip}<dl class="prov">{prov}</dl></article>')


def _thumbs_in_order(videos: Sequence[Mapping[str, Any]], options: ReportOptions) -> Iterator[list[Thumb] | None]:
    """Thumbnail strips in video order (None for videos without any), made on ``options.workers`` threads with at
    most a few strips waiting, so memory stays bounded."""
    wanted = [i for i, v in enumerate(videos) if not is_missing(v)]
    if options.max_videos is not None:
        wanted = wanted[:options.max_videos]
    chosen = set(wanted)
    with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="covidx-report") as pool:
        pending: dict[int, Any] = {}
        queue = iter(wanted)

        def fill() -> None:
            for i in queue:
                pending[i] = pool.submit(video_thumbnails, videos[i], options)
                if len(pending) >= 2 * options.workers:
                    return

        fill()
        for i in range(len(videos)):
            if i not in chosen:
                yield None
                continue
            thumbs = pending.pop(i).result()
            fill()
            yield thumbs


def _write_html(out: TextIO, record: Mapping[str, Any], output: Path, options: ReportOptions) -> None:
    facts = catalogue_facts(record)
    # The record's own fields win over the release's (a build may record more than the catalogue says).
    videos = [{**facts.get(v["id"], {}), **v} for v in record["videos"]]
    record = {**record, "videos": videos}
    gone = sum(is_missing(v) for v in videos)
    release = record.get("release") or {}
    out.write('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
              '<meta name="viewport" content="width=device-width, initial-scale=1">'
              f"<title>covidx-us build report: {_e(output.name)}</title><style>{_CSS}</style></head><body>\n")
    out.write(f"<h1>covidx-us build report</h1><p>Build <code>{_e(output.resolve())}</code>, created "
              f"{_e(record.get('created'))}: {len(videos)} videos ({len(videos) - gone} processed, {gone} missing), "
              f"release {_e(release.get('version'))}{'' if release.get('official', True) else ' (custom)'}, configs "
              f"{_e(', '.join(map(str, record.get('configs') or [])))}.</p>"
              '<p><a href="#counts">counts</a> · <a href="#splits">splits</a> · <a href="#missing">missing videos</a> · '
              '<a href="#provenance">release and parameters</a> · <a href="#videos">videos</a></p>\n')
    out.write(_charts(record) + "\n" + _split_tables(record) + "\n" + _missing(record) + "\n" + _provenance(record) + "\n")
    out.write(f'<section id="videos"><h2>Videos ({len(videos)})</h2><p>Thumbnails: the original frame with the crop '
              "window (amber), the mask tinted magenta on the cropped frame, the clean (inpainted) frame, and for "
              "videos with frame-specific masks a frame whose pointer was removed, before and after.</p>\n")
    strips = _thumbs_in_order(videos, options)
    for video, thumbs in progress(zip(videos, strips, strict=True), desc="report", total=len(videos),
                                  unit="video"):
        out.write(_video_card(video, thumbs) + "\n")
    out.write("</section></body></html>\n")


def write_report(output: Path | str, options: ReportOptions | None = None) -> Path:
    """Write ``output/report/index.html`` for the build exported to ``output``; returns its path."""
    output = Path(output)
    options = options or ReportOptions()
    record = load_build_record(output)
    path = output / REPORT_DIR / "index.html"
    with atomic_write(path) as tmp:
        with tmp.open("w", encoding="utf-8") as out:
            _write_html(out, record, output, options)
        tmp.chmod(0o644)  # a page to share, not a private temp file
    log.info("report of %d videos written to %s", len(record["videos"]), path)
    return path


# ---- command line
