"""The COVIDx-US release catalogue: one typed, immutable record per video, with errata applied, per release version.

Reads the upstream release files (latin-1 CSV + one xlsx) once they are verified by :mod:`processing.release.files`,
applies the corrections in ``metadata/errata.csv`` (the single place corrections live), and gives release views
1.0 .. 1.5 and task labels. It knows CSV rows; it must not download videos, read pixels or know ``datasets``.

Release files, relative to the release folder (laid out like the upstream repository)::

    file                                 needed      columns read (required; [optional])
    utils/video_metadata.csv             required    id, filename, filetype, source, url, probe, class, version;
                                                     [type, patient, case_no, license, link, paper_link, paper_doi]
    utils/video_cropping_metadata.csv    required    filename, del_upper, width_rate, x1_w_y1_h;
                                                     [crp_width, crp_height (stored crop size, swapped as upstream;
                                                      when present it must equal the rule's window), probe, class,
                                                      version (checked against video_metadata), ARTIFACT_FLAGS]
    utils/mask_metadata.csv              required    filename, need_mask_after_crop, mask_main_filename;
                                                     [need_multiple_masks, frame_specific_masks,
                                                      delete_frames_from_to, tight_inpainting, probe, class, version]
    utils/video_files_properties.csv     required    filename, framerate, width, height, frame_count
    utils/LUSS_metadata.csv              optional    id, LUSS ("NA" or blank = no score); [type]
    labels/COVIDx-US1.4_4class.csv       optional    id, patient, case_no; [class, probe, type]
    labels/CovidxUS1.5_metadata.xlsx     optional    id; [the clinical flags CLINICAL_FLAGS]
    data/mask/<mask file names>          as named    every mask a mask plan names (plain file names)

The official release (the pinned upstream commit) must have all of these with their pinned sha256 (see
``metadata/release_pins.json``). A custom release (``custom=True``) needs only the required files and columns; its
rows are validated the same way (a malformed row is a :class:`ReleaseError` naming file, line and video id), and
errata rows of scope ``format`` (upstream file-format quirks, spelling) apply to it, those of scope ``release``
(facts about the upstream videos) do not. Blank rows (every field empty) are skipped.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from processing.errors import ReleaseError, check_choice
from processing.fileutil import path_problem, read_csv_text
from processing.release import files as _release
from processing.vocabulary import (  # noqa: F401  (the release's words)
    CLASSES,
    LICENCE_NOT_STATED,
    PROBES,
    SOURCE_INFO,
    SOURCES,
    TASKS,
    VERSIONS,
)
from processing.windows import Window

log = logging.getLogger(__name__)

FILETYPES = ("mp4", "gif", "wmv", "mov", "avi")
ARTIFACT_FLAGS = (
    "green_dot", "top_left_symbol", "red_symbol", "white_arrow", "text", "meter", "sound", "extra_end_part",
    "multiple_videos",
)
CLINICAL_FLAGS = (
    "fever", "cough", "pain", "headache", "respiratory_problems", "fatigue", "weight_loss", "alcoholic", "drug_use",
    "distress", "asymptomatic", "a_line", "b_line", "consolidation", "irreg_pleural_line", "air_bronchogram",
    "pleural_effusion",
)

VIDEO_METADATA = "utils/video_metadata.csv"
CROPPING_METADATA = "utils/video_cropping_metadata.csv"
MASK_METADATA = "utils/mask_metadata.csv"
FILE_PROPERTIES = "utils/video_files_properties.csv"
LUSS_METADATA = "utils/LUSS_metadata.csv"
LABELS_4CLASS = "labels/COVIDx-US1.4_4class.csv"
CLINICAL_XLSX = "labels/CovidxUS1.5_metadata.xlsx"
REQUIRED_FILES = (VIDEO_METADATA, CROPPING_METADATA, MASK_METADATA, FILE_PROPERTIES)
OPTIONAL_FILES = (LUSS_METADATA, LABELS_4CLASS, CLINICAL_XLSX)
REQUIRED_COLUMNS = {
    VIDEO_METADATA: ("id", "filename", "filetype", "source", "url", "probe", "class", "version"),
    CROPPING_METADATA: ("filename", "del_upper", "width_rate", "x1_w_y1_h"),
    MASK_METADATA: ("filename", "need_mask_after_crop", "mask_main_filename"),
    FILE_PROPERTIES: ("filename", "framerate", "width", "height", "frame_count"),
    LUSS_METADATA: ("id", "LUSS"),
    LABELS_4CLASS: ("id", "patient", "case_no"),
    CLINICAL_XLSX: ("id",),
}

ERRATA_PATH = _release.METADATA_DIR / "errata.csv"
# A custom release folder holding this file says its clips are simulated (covidx-us demo writes one): everything
# built from it says so.
SIMULATED_MARKER = "SIMULATED.md"
ERRATA_KINDS = (
    "withdrawn", "value", "swapped_columns", "stale_count", "same_clip", "unused_mask", "spelling", "paper", "note",
)
ERRATA_SCOPES = ("format", "release")
_ID_RE = re.compile(r"^(\d+)_([a-z]+)_([a-z]+)$")
_RECT_RE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$")


# ----------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class CropRule:
    """Upstream's crop rule for one video, kept so the window can be recomputed for a clip of another size."""

    kind: Literal["square", "rect"]
    del_upper: int | None = None
    width_rate: float | None = None
    rect: tuple[int, int, int, int] | None = None  # (X1, W, Y1, H) as in the CSV

    def __post_init__(self) -> None:
        check_choice("crop rule kind", self.kind, ("square", "rect"))
        if self.kind == "square":
            if self.del_upper is None or self.width_rate is None or self.del_upper < 0 or not 0 <= self.width_rate < 0.5:
                raise ReleaseError(f"square crop rule needs del_upper >= 0 and 0 <= width_rate < 0.5, got {self}")
        elif self.rect is None or len(self.rect) != 4 or min(self.rect) < 0 or self.rect[1] <= 0 or self.rect[3] <= 0:
            raise ReleaseError(f"rect crop rule needs (X1, W, Y1, H) with X1, Y1 >= 0 and W, H > 0, got {self}")

    def window(self, width: int, height: int) -> Window:
        """The crop window on a ``width`` x ``height`` frame, exactly as upstream computed it, clipped at the edge.

        Square: ``b = int(W*width_rate)``, ``box = int(W - 2b)``; if ``box + del_upper > H`` then
        ``box = int(H - del_upper)`` and ``b = int(W/2 - box/2)``; window ``(b, del_upper, box, box)``.
        Rect ``(X1, W, Y1, H)``: ``frame[Y1:Y1+H, X1:X1+W]``. ReleaseError when the window falls outside the frame.
        """
        if self.kind == "square":
            assert self.del_upper is not None and self.width_rate is not None
            b = int(width * self.width_rate)
            box = int(width - 2 * b)
            if box + self.del_upper > height:
                box = int(height - self.del_upper)
                b = int(width / 2 - box / 2)
            x, y, w, h = b, self.del_upper, box, box
        else:
            assert self.rect is not None
            x, rw, y, rh = self.rect
            w, h = min(rw, width - x), min(rh, height - y)
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise ReleaseError(f"crop window of {self} falls outside a {width}x{height} frame")
        return Window(x, y, w, h)


@dataclass(frozen=True)
class MaskPlan:
    needs_mask: bool
    main_mask: str | None                       # file name in the release's data/mask/
    frame_masks: tuple[tuple[int, int], ...]    # inclusive ranges that have <id>_prc_<probe>_frame<N>_mask.jpg files
    deleted: tuple[tuple[int, int], ...]        # inclusive ranges of frames to drop
    tight: bool                                 # 1x1 dilation instead of 5x5

    def frame_mask_names(self, video_id: str, probe: str) -> dict[int, str]:
        """``{frame: mask file name}`` for every frame with its own mask."""
        return {n: f"{video_id}_prc_{probe}_frame{n}_mask.jpg" for a, b in self.frame_masks for n in range(a, b + 1)}

    def mask_names(self, video_id: str, probe: str) -> tuple[str, ...]:
        """Every mask file this plan uses (main first)."""
        names = [self.main_mask] if self.main_mask else []
        return tuple(names + sorted(set(self.frame_mask_names(video_id, probe).values())))

    def is_deleted(self, frame: int) -> bool:
        return any(a <= frame <= b for a, b in self.deleted)


@dataclass(frozen=True)
class Expected:
    """What upstream measured on the original file (``video_files_properties.csv``)."""

    width: int
    height: int
    fps: float
    frame_count: int | None   # None where upstream's count is stale (see ``trusted``)
    trusted: bool             # False for the stale wmv/mov/avi rows


@dataclass(frozen=True)
class Video:
    id: str
    number: int
    source: str
    label: str
    probe: str
    filetype: str
    url: str
    filename: str
    version_added: str
    body_region: str
    patient_id: str | None
    case_no: int | None
    group: str
    luss: int | None
    clinical: tuple[tuple[str, str], ...]
    licence: str
    link: str
    crop_rule: CropRule
    crop_window: Window
    crop_size: tuple[int, int]
    artifacts: frozenset[str]
    masks: MaskPlan
    expected: Expected

    def task_label(self, task: str) -> str | None:
        """This video's label for ``task`` (one of TASKS), or None when the task drops it (3class drops other)."""
        check_choice("task", task, TASKS)
        if task == "binary":
            return "covid" if self.label == "covid" else "non-covid"
        return self.label if self.label in TASKS[task] else None


class UnknownVideoError(ReleaseError, KeyError):
    """A video id that the catalogue does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Catalogue:
    videos: tuple[Video, ...]
    version: str
    commit: str | None
    official: bool
    release_dir: Path
    cache_dir: Path | None = None   # set when the release came from the upstream URLs: masks are fetched on demand
    simulated: bool = False  # a custom release whose folder holds SIMULATED_MARKER: its clips are simulated
    _index: Mapping[str, Video] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {v.id: v for v in self.videos})

    def __getitem__(self, video_id: str) -> Video:
        try:
            return self._index[video_id]
        except KeyError:
            raise UnknownVideoError(
                f"video {video_id!r} is not in release {self.version} ({len(self.videos)} videos)"
            ) from None

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._index

    def __iter__(self) -> Iterator[Video]:
        return iter(self.videos)

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(v.id for v in self.videos)

    def filter(
        self,
        *,
        task: str | None = None,
        sources: Iterable[str] | None = None,
        probes: Iterable[str] | None = None,
        classes: Iterable[str] | None = None,
    ) -> Catalogue:
        """The videos kept by ``task`` (drops what the task drops) and in the given sources/probes/classes."""
        if task is not None:
            check_choice("task", task, TASKS)
        wanted = {}
        for name, values, valid in (("source", sources, SOURCES), ("probe", probes, PROBES), ("class", classes, CLASSES)):
            if values is not None:
                values = (values,) if isinstance(values, str) else tuple(values)
                for value in values:
                    check_choice(name, value, valid)
                wanted[name] = set(values)
        kept = tuple(
            v for v in self.videos
            if (task is None or v.task_label(task) is not None)
            and v.source in wanted.get("source", (v.source,))
            and v.probe in wanted.get("probe", (v.probe,))
            and v.label in wanted.get("class", (v.label,))
        )
        return replace(self, videos=kept)

    def mask_path(self, name: str) -> Path:
        """The path of a release mask, verified against its pinned digest for the official release.

        Masks of a release read from the upstream URLs are downloaded on first use.
        """
        if problem := _not_plain_name(name):
            raise ReleaseError(f"mask {name!r} is {problem}, not a file of {self.release_dir / _release.MASK_DIR}")
        rel = f"{_release.MASK_DIR}/{name}"
        if not self.official:
            path = self.release_dir / rel
            if not path.is_file():
                raise ReleaseError(f"{path}: mask missing from the custom release")
            return path
        if self.cache_dir is not None:
            return _release.fetch_file(rel, self.cache_dir)
        return _release.verify_file(self.release_dir, rel)


# ----------------------------------------------------------------------------------------------- errata


@dataclass(frozen=True)
class Erratum:
    """One correction or known fact about the release, from ``metadata/errata.csv``."""

    kind: str       # one of ERRATA_KINDS
    scope: str      # "format": applies to any release in the upstream format; "release": to the pinned upstream only
    video_id: str
    file: str
    field: str
    found: str
    corrected: str
    reason: str


def load_errata(path: Path = ERRATA_PATH) -> tuple[Erratum, ...]:
    """Read ``metadata/errata.csv`` and check every row's kind and scope."""
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                erratum = Erratum(**{k: (row.get(k) or "").strip() for k in Erratum.__dataclass_fields__})
                check_choice(f"errata kind ({path}, line {line})", erratum.kind, ERRATA_KINDS)
                check_choice(f"errata scope ({path}, line {line})", erratum.scope, ERRATA_SCOPES)
            except TypeError as exc:
                raise ReleaseError(f"{path}, line {line}: malformed errata row ({exc})") from exc
            rows.append(erratum)
    return tuple(rows)


def spelling_map(errata: Iterable[Erratum], field_name: str) -> dict[str, str]:
    """``{found.lower(): corrected}`` for one field (source, class, probe, version); canonical spellings map to themselves."""
    mapping = {e.found.lower(): e.corrected for e in errata if e.kind == "spelling" and e.field == field_name}
    canonical = {"source": SOURCES, "class": CLASSES, "probe": PROBES, "version": VERSIONS}.get(field_name, ())
    mapping.update({c: c for c in canonical})
    return mapping


# ----------------------------------------------------------------------------------------------- parsing


@dataclass
class _Table:
    file: str
    rows: list[tuple[int, dict[str, str]]]   # (line number, row)

    def by_id(self, key: str) -> dict[str, tuple[int, dict[str, str]]]:
        out: dict[str, tuple[int, dict[str, str]]] = {}
        for line, row in self.rows:
            vid = _strip_ext(row[key]) if key == "filename" else row[key]
            if vid in out:
                raise ReleaseError(f"{self.file}, line {line}, video {vid}: duplicate row (first at line {out[vid][0]})")
            out[vid] = (line, row)
        return out


def _strip_ext(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def _read_csv(root: Path, rel: str) -> _Table:
    path = root / rel
    try:
        with read_csv_text(path, encoding="latin-1") as handle:  # upstream is latin-1; a UTF-8 BOM says UTF-8
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or ()]
            missing = [c for c in REQUIRED_COLUMNS[rel] if c not in header]
            if missing:
                raise ReleaseError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header)}")
            rows = []
            start = reader.line_num + 1
            for raw in reader:
                if None in raw:
                    raise ReleaseError(f"{path}, line {start}: more fields than the header has")
                row = {k.strip(): (v or "").strip() for k, v in raw.items()}
                if any(row.values()):
                    rows.append((start, row))  # the line a record starts on (quoted fields may span lines)
                start = reader.line_num + 1
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read release file ({exc})") from exc
    except csv.Error as exc:
        raise ReleaseError(f"{path}: malformed CSV ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ReleaseError(f"{path}: starts with a UTF-8 byte-order mark but is not UTF-8 ({exc.reason} at byte "
                           f"{exc.start + 3})") from None
    return _Table(str(path), rows)


def _read_xlsx(root: Path, rel: str) -> _Table:
    import pandas as pd  # only the optional v1.5 clinical file needs pandas/openpyxl

    path = root / rel
    try:
        frame = pd.read_excel(path, dtype=str).fillna("")
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise ReleaseError(f"{path}: cannot read workbook ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if "id" not in frame.columns:
        raise ReleaseError(f"{path}: missing column id; found {', '.join(frame.columns)}")
    rows = [(i + 2, {k: str(v).strip() for k, v in rec.items()}) for i, rec in enumerate(frame.to_dict("records"))]
    return _Table(str(path), [(line, row) for line, row in rows if any(row.values())])


def _ranges(text: str, where: str) -> tuple[tuple[int, int], ...]:
    """Parse "a-b, c, d-e" (trailing commas allowed) into inclusive ranges."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", part)
        if not m:
            raise ReleaseError(f"{where}: malformed frame range {part!r} in {text!r}; expected 'a-b' or 'n'")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ReleaseError(f"{where}: frame range {part!r} ends before it starts")
        out.append((a, b))
    return tuple(out)


def _int(text: str, where: str, column: str, *, minimum: int = 0) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ReleaseError(f"{where}: column {column} is {text!r}, not a number") from None
    if not math.isfinite(value) or value != int(value) or value < minimum:
        raise ReleaseError(f"{where}: column {column} is {text!r}, not a whole number >= {minimum}")
    return int(value)


def _not_plain_name(name: str) -> str | None:
    """Why ``name`` is not a plain file name (one that stays inside its folder), or None when it is one."""
    if name in (".", ".."):
        return "not a file name"
    if "/" in name or "\\" in name:
        return "a path, not a file name"
    if any(ord(c) < 32 for c in name):
        return "holds control characters"
    if name.startswith("."):
        return "a hidden name"
    return None


def _yes_no(text: str, where: str, column: str, default: bool | None = None) -> bool:
    value = text.lower()
    if value in ("yes", "no"):
        return value == "yes"
    if value == "" and default is not None:
        return default
    raise ReleaseError(f"{where}: column {column} is {text!r}; valid values: yes, no")


def _spell(mapping: dict[str, str], value: str, where: str, column: str, valid: tuple[str, ...]) -> str:
    out = mapping.get(value.lower())
    if out is None:
        raise ReleaseError(f"{where}: column {column} is {value!r}; valid values: {', '.join(valid)} "
                           f"(or a spelling listed in {ERRATA_PATH.name})")
    return out


def _crop_rule(row: dict[str, str], where: str) -> CropRule:
    rect = row["x1_w_y1_h"]
    try:
        if rect:
            m = _RECT_RE.match(rect)
            if not m:
                raise ReleaseError(f"{where}: column x1_w_y1_h is {rect!r}; expected '(X1, W, Y1, H)'")
            return CropRule("rect", rect=tuple(int(g) for g in m.groups()))  # type: ignore[arg-type]
        if not row["del_upper"] or not row["width_rate"]:
            raise ReleaseError(f"{where}: neither x1_w_y1_h nor both del_upper and width_rate are set")
        try:
            rate = float(row["width_rate"])
        except ValueError:
            raise ReleaseError(f"{where}: column width_rate is {row['width_rate']!r}, not a number") from None
        return CropRule("square", del_upper=_int(row["del_upper"], where, "del_upper"), width_rate=rate)
    except ReleaseError as exc:
        if str(exc).startswith(where):
            raise
        raise ReleaseError(f"{where}: {exc}") from None


def _apply_values(root: Path, errata: Iterable[Erratum], tables: dict[str, dict]) -> None:
    """Apply errata of kind ``value``: replace ``found`` by ``corrected`` in one video's row of one file."""
    for e in errata:
        if e.kind != "value":
            continue
        table = tables.get(e.file)
        if table is None or e.video_id not in table:
            if table:  # an absent optional file has nothing to correct
                raise ReleaseError(f"{ERRATA_PATH}: value erratum for {e.video_id} in {e.file}: no such row")
            continue
        line, row = table[e.video_id]
        if row.get(e.field) != e.found:
            raise ReleaseError(f"{root / e.file}, line {line}, video {e.video_id}: errata expect {e.field}={e.found!r}, "
                               f"found {row.get(e.field)!r}")
        row[e.field] = e.corrected


def _groups(patients: dict[str, str | None], same_clips: list[tuple[str, str]]) -> dict[str, str]:
    """Split group per video: its patient id, merged (union-find) with the groups of clips the errata call the same."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    key_of = {vid: (patient or vid) for vid, patient in patients.items()}
    for vid in key_of.values():
        find(vid)
    for a, b in same_clips:
        if a in key_of and b in key_of:
            ra, rb = find(key_of[a]), find(key_of[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, set[str]] = {}
    for key in key_of.values():
        members.setdefault(find(key), set()).add(key)
    name = {root: "+".join(sorted(keys, key=_natural)) for root, keys in members.items()}
    return {vid: name[find(key)] for vid, key in key_of.items()}


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


@dataclass(frozen=True)
class _Rules:
    """What the errata say about a release, and what it is checked against: spellings, withdrawn and stale videos,
    clips that are the same, masks not to use, the crop-size columns, the pinned files (None: a custom release)."""

    spell: Mapping[str, Mapping[str, str]]
    withdrawn: frozenset[str]
    upstream_withdrawn: frozenset[str]  # withdrawn upstream, applied or not (a hint when a custom release keeps one)
    stale: frozenset[str]
    same_clips: tuple[tuple[str, str], ...]
    unused_masks: frozenset[str]
    size_columns: tuple[str, str]
    pins: _release.Pins | None

    @classmethod
    def of(cls, errata: tuple[Erratum, ...], applied: tuple[Erratum, ...], official: bool) -> _Rules:
        size_columns = ("crp_width", "crp_height")
        for e in applied:
            if e.kind == "swapped_columns" and e.file == CROPPING_METADATA:
                size_columns = tuple(c.strip() for c in e.corrected.split(","))  # type: ignore[assignment]
        return cls(
            spell={f: spelling_map(applied, f) for f in ("source", "class", "probe", "version")},
            withdrawn=frozenset(e.video_id for e in applied if e.kind == "withdrawn"),
            upstream_withdrawn=frozenset(e.video_id for e in errata if e.kind == "withdrawn"),
            stale=frozenset(e.video_id for e in applied if e.kind == "stale_count"),
            same_clips=tuple((e.video_id, e.corrected) for e in applied if e.kind == "same_clip"),
            unused_masks=frozenset(e.found for e in applied if e.kind == "unused_mask"),
            size_columns=size_columns,
            pins=_release.load_pins() if official else None,
        )


@dataclass(frozen=True)
class _Draft:
    """One row of video_metadata.csv, checked and spelled: what the other files' rows are checked against."""

    id: str
    number: int
    source: str
    label: str
    probe: str
    filetype: str
    version: str
    row: Mapping[str, str]


@dataclass(frozen=True)
class _Files:
    """A release folder's files, read, with the errata of kind ``value`` applied."""

    root: Path
    meta: _Table
    crop: dict
    masks: dict
    props: dict
    luss: dict
    labels: dict
    clinical: dict

    @classmethod
    def read(cls, root: Path, applied: tuple[Erratum, ...]) -> _Files:
        for rel in REQUIRED_FILES:
            if not (root / rel).is_file():
                raise ReleaseError(f"{root / rel}: missing release file (required: {', '.join(REQUIRED_FILES)})")
        meta = _read_csv(root, VIDEO_METADATA)
        optional = {rel: (root / rel).is_file() for rel in OPTIONAL_FILES}
        files = cls(
            root=root, meta=meta,
            crop=_read_csv(root, CROPPING_METADATA).by_id("filename"),
            masks=_read_csv(root, MASK_METADATA).by_id("filename"),
            props=_read_csv(root, FILE_PROPERTIES).by_id("filename"),
            luss=_read_csv(root, LUSS_METADATA).by_id("id") if optional[LUSS_METADATA] else {},
            labels=_read_csv(root, LABELS_4CLASS).by_id("id") if optional[LABELS_4CLASS] else {},
            clinical=_read_xlsx(root, CLINICAL_XLSX).by_id("id") if optional[CLINICAL_XLSX] else {},
        )
        _apply_values(root, applied, {CROPPING_METADATA: files.crop, MASK_METADATA: files.masks,
                                      FILE_PROPERTIES: files.props, LUSS_METADATA: files.luss,
                                      LABELS_4CLASS: files.labels, VIDEO_METADATA: meta.by_id("id")})
        return files

    def row(self, table: dict, rel: str, vid: str, rules: _Rules) -> tuple[str, dict[str, str]]:
        """(where, row) of video ``vid`` in release file ``rel``; ``where`` names the file, line and video."""
        if vid not in table:
            hint = ""
            if vid in rules.upstream_withdrawn:  # a custom release copied from upstream keeps the withdrawn video
                hint = (f" ({vid} was withdrawn upstream, see metadata/errata.csv: remove its row from "
                        f"{VIDEO_METADATA}, or load the pinned release without --custom-release)")
            raise ReleaseError(f"{self.root / rel}: no row for video {vid}{hint}")
        line, row = table[vid]
        return f"{self.root / rel}, line {line}, video {vid}", row


def _draft(line: int, row: dict[str, str], where: str, rules: _Rules, seen: dict[str, int]) -> _Draft:
    """The checked video_metadata.csv row of one video (``where``: its file, line and id; ``seen``: the lines of
    the ids read so far)."""
    vid = row["id"]
    m = _ID_RE.match(vid)
    if not m:
        raise ReleaseError(f"{where}: id {vid!r} is not '<number>_<source>_<class>'")
    if vid in seen:
        raise ReleaseError(f"{where}: duplicate id (first at line {seen[vid]})")
    seen[vid] = line
    source = _spell(rules.spell["source"], row["source"], where, "source", SOURCES)
    label = _spell(rules.spell["class"], row["class"], where, "class", CLASSES)
    probe = _spell(rules.spell["probe"], row["probe"], where, "probe", PROBES)
    version = _spell(rules.spell["version"], row["version"], where, "version", VERSIONS)
    if (m.group(2), m.group(3)) != (source, label):
        raise ReleaseError(f"{where}: id says source {m.group(2)!r}, class {m.group(3)!r} but the row says "
                           f"{source!r}, {label!r}")
    filetype = row["filetype"].lower()
    if filetype not in FILETYPES:
        raise ReleaseError(f"{where}: column filetype is {row['filetype']!r}; valid values: {', '.join(FILETYPES)}")
    if not row["url"] or not row["filename"]:
        raise ReleaseError(f"{where}: empty {'url' if not row['url'] else 'filename'}")
    return _Draft(vid, int(m.group(1)), source, label, probe, filetype, version, row)


def _drafts(meta: _Table, rules: _Rules) -> list[_Draft]:
    """Every video_metadata.csv row, checked, in file order; withdrawn videos left out (after their check)."""
    drafts: list[_Draft] = []
    seen: dict[str, int] = {}
    for line, row in meta.rows:
        vid = row["id"]
        where = f"{meta.file}, line {line}, video {vid or '?'}"
        draft = _draft(line, row, where, rules, seen)
        if vid not in rules.withdrawn:
            drafts.append(draft)
    return drafts


def _consistent(row: Mapping[str, str], where: str, draft: _Draft, rules: _Rules) -> None:
    """Raise unless the probe, class and version another file's row gives (when it gives them) are the draft's."""
    for col, valid, own in (("probe", PROBES, draft.probe), ("class", CLASSES, draft.label)):
        if row.get(col) and _spell(rules.spell[col], row[col], where, col, valid) != own:
            raise ReleaseError(f"{where}: column {col} is {row[col]!r} but {VIDEO_METADATA} says {own!r}")
    if row.get("version") and _spell(rules.spell["version"], row["version"], where, "version",
                                     VERSIONS) != draft.version:
        raise ReleaseError(f"{where}: column version is {row['version']!r} but {VIDEO_METADATA} says "
                           f"{draft.version!r}")


def _expected(row: Mapping[str, str], where: str, *, trusted: bool) -> Expected:
    """video_files_properties.csv: what upstream measured on the original file (no frame count when stale)."""
    try:
        fps = float(row["framerate"])
    except ValueError:
        raise ReleaseError(f"{where}: column framerate is {row['framerate']!r}, not a number") from None
    if not (math.isfinite(fps) and fps > 0):
        raise ReleaseError(f"{where}: column framerate is {row['framerate']!r}, not a positive number")
    return Expected(
        width=_int(row["width"], where, "width", minimum=1),
        height=_int(row["height"], where, "height", minimum=1),
        fps=fps,
        frame_count=_int(row["frame_count"], where, "frame_count", minimum=1) if trusted else None,
        trusted=trusted,
    )


def _crop(row: Mapping[str, str], where: str, expected: Expected, size_columns: tuple[str, str]) -> dict:
    """video_cropping_metadata.csv: the crop rule, its window on the expected size, the stored crop size (checked
    against the window) and the artifact flags."""
    rule = _crop_rule(row, where)
    try:
        window = rule.window(expected.width, expected.height)
    except ReleaseError as exc:
        raise ReleaseError(f"{where}: {exc}") from None
    wcol, hcol = size_columns
    crop_size = window.size
    if row.get(wcol) and row.get(hcol):
        crop_size = (_int(row[wcol], where, wcol, minimum=1), _int(row[hcol], where, hcol, minimum=1))
        if crop_size != window.size:
            raise ReleaseError(f"{where}: stored crop size {crop_size[0]}x{crop_size[1]} (width from {wcol}, "
                               f"height from {hcol}) differs from the rule's {window.w}x{window.h} on "
                               f"{expected.width}x{expected.height}")
    artifacts = frozenset(f for f in ARTIFACT_FLAGS if row.get(f, "").lower() == "yes")
    return dict(crop_rule=rule, crop_window=window, crop_size=crop_size, artifacts=artifacts)


def _mask_plan(row: Mapping[str, str], where: str, draft: _Draft, rules: _Rules, root: Path) -> MaskPlan:
    """mask_metadata.csv: the video's masks, frame ranges to drop, and inpainting tightness; every mask it names
    must exist (in the pinned release, or in a custom release's folder) and not be one the errata call unused."""
    needs = _yes_no(row["need_mask_after_crop"], where, "need_mask_after_crop")
    main = row["mask_main_filename"] or None
    if main is not None and (problem := _not_plain_name(main)):
        raise ReleaseError(f"{where}: column mask_main_filename is {main!r}, {problem}; a mask is named by a "
                           f"plain file name inside the release's {_release.MASK_DIR}/ folder")
    if needs != bool(main):
        raise ReleaseError(f"{where}: need_mask_after_crop={row['need_mask_after_crop']} but mask_main_filename "
                           f"is {main or 'empty'}")
    multiple = _yes_no(row.get("need_multiple_masks", ""), where, "need_multiple_masks", default=False)
    frame_ranges = _ranges(row.get("frame_specific_masks", ""), where)
    if frame_ranges and not multiple:
        raise ReleaseError(f"{where}: frame_specific_masks set but need_multiple_masks is not yes")
    plan = MaskPlan(
        needs_mask=needs,
        main_mask=main,
        frame_masks=frame_ranges,
        deleted=_ranges(row.get("delete_frames_from_to", ""), where),
        tight=_yes_no(row.get("tight_inpainting", ""), where, "tight_inpainting", default=False),
    )
    for name in plan.mask_names(draft.id, draft.probe):
        if name in rules.unused_masks:
            raise ReleaseError(f"{where}: mask {name} is listed as unused in {ERRATA_PATH.name}")
        if rules.pins is not None and name not in rules.pins.masks:
            raise ReleaseError(f"{where}: mask {name} is not a file of the pinned release")
        if rules.pins is None and not (root / _release.MASK_DIR / name).is_file():
            raise ReleaseError(f"{where}: mask {root / _release.MASK_DIR / name} does not exist")
    return plan


def _labels(draft: _Draft, files: _Files, rules: _Rules) -> dict:
    """The 4-class labels file (patient, case), LUSS_metadata.csv (score) and the v1.5 clinical sheet (flags);
    each optional: without the labels file, the patient and case come from video_metadata.csv."""
    row = draft.row
    patient, case_no, body = row.get("patient") or None, row.get("case_no") or "", row.get("type", "")
    where = f"{files.meta.file}, video {draft.id}"
    if files.labels:
        where, lrow = files.row(files.labels, LABELS_4CLASS, draft.id, rules)
        _consistent(lrow, where, draft, rules)
        patient, case_no, body = lrow["patient"] or None, lrow["case_no"], lrow.get("type") or body
    case = _int(case_no, where, "case_no", minimum=1) if case_no else None
    score = None
    if files.luss:
        swhere, srow = files.row(files.luss, LUSS_METADATA, draft.id, rules)
        if srow["LUSS"].upper() not in ("", "NA"):
            score = _int(srow["LUSS"], swhere, "LUSS")
            if score > 3:
                raise ReleaseError(f"{swhere}: column LUSS is {score}; valid values: 0, 1, 2, 3, NA")
        body = body or srow.get("type", "")
    flags: tuple[tuple[str, str], ...] = ()
    if draft.id in files.clinical:
        clinical = files.clinical[draft.id][1]
        flags = tuple(sorted((f, clinical[f].lower()) for f in CLINICAL_FLAGS if clinical.get(f)))
    return dict(patient_id=patient, case_no=case, luss=score, clinical=flags, body_region=body.lower() or "unknown")


def _video_fields(draft: _Draft, files: _Files, rules: _Rules) -> dict:
    """Every field of one video but its split group, from the rows the release files hold for it."""
    vid, row = draft.id, draft.row
    where, props = files.row(files.props, FILE_PROPERTIES, vid, rules)
    expected = _expected(props, where, trusted=vid not in rules.stale)
    where, crop = files.row(files.crop, CROPPING_METADATA, vid, rules)
    _consistent(crop, where, draft, rules)
    cropping = _crop(crop, where, expected, rules.size_columns)
    where, masks = files.row(files.masks, MASK_METADATA, vid, rules)
    _consistent(masks, where, draft, rules)
    plan = _mask_plan(masks, where, draft, rules, files.root)
    return dict(
        id=vid, number=draft.number, source=draft.source, label=draft.label, probe=draft.probe,
        filetype=draft.filetype, url=row["url"], filename=row["filename"], version_added=draft.version,
        **_labels(draft, files, rules),
        licence=row.get("license") or SOURCE_INFO[draft.source].licence,
        link=row.get("link") or row.get("paper_link") or row.get("paper_doi") or "",
        **cropping, masks=plan, expected=expected,
    )


def parse_release(root: Path, *, official: bool, errata: tuple[Erratum, ...] | None = None) -> tuple[Video, ...]:
    """Every video of a release folder (all versions, withdrawn ones removed), sorted by number."""
    root = Path(root)
    errata = load_errata() if errata is None else errata
    applied = tuple(e for e in errata if e.scope == "format" or official)
    files = _Files.read(root, applied)
    rules = _Rules.of(errata, applied, official)
    fields = [_video_fields(draft, files, rules) for draft in _drafts(files.meta, rules)]
    known = {f["id"] for f in fields}
    for a, b in rules.same_clips:
        for vid in (a, b):
            if vid not in known:
                raise ReleaseError(f"{ERRATA_PATH}: same_clip names {vid}, which is not a video of the release")
    groups = _groups({f["id"]: f["patient_id"] for f in fields}, list(rules.same_clips))
    return tuple(sorted((Video(group=groups[f["id"]], **f) for f in fields), key=lambda v: v.number))


def release_view(videos: Iterable[Video], version: str) -> tuple[Video, ...]:
    """The videos of release ``version``: those added in that version or before."""
    check_choice("release version", version, VERSIONS)
    limit = VERSIONS.index(version)
    return tuple(v for v in videos if VERSIONS.index(v.version_added) <= limit)


def load_catalogue(
    version: str = "1.5",
    release_dir: Path | None = None,
    *,
    custom: bool = False,
    cache_dir: Path | None = None,
) -> Catalogue:
    """The catalogue of release ``version`` (one of VERSIONS, default the latest).

    ``release_dir=None`` reads the pinned upstream files from the raw URLs (base overridable with
    ``$COVIDX_US_RELEASE_URL``) into ``cache_dir``; a folder is checked file by file against the pinned digests,
    unless ``custom=True`` (a user's own release in the same format; the catalogue is then ``official=False``).
    Every mask the release names is checked here too: against its pinned digest in a local pinned release, for
    existence in a custom one (masks of the release fetched from the URLs are verified as they arrive and on each
    use). Mask names must be plain file names inside ``data/mask``.
    """
    check_choice("release version", version, VERSIONS)
    if release_dir is None:
        if custom:
            raise ReleaseError("a custom release needs a release directory (--release-dir)")
        root = _release.fetch_release(cache_dir)
        cache = Path(cache_dir) if cache_dir is not None else _release.default_cache_dir()
    else:
        root, cache = Path(release_dir), None
        if problem := path_problem(root, "folder"):
            raise ReleaseError(f"release directory {problem}")
        if not custom:
            _release.verify_release_dir(root)
    videos = parse_release(root, official=not custom)
    if release_dir is not None and not custom:  # every mask now, not when a build first uses it
        _release.verify_masks(root, sorted({n for v in videos for n in v.masks.mask_names(v.id, v.probe)}))
    pins = _release.load_pins() if not custom else None
    return Catalogue(
        videos=release_view(videos, version),
        version=version,
        commit=pins.commit if pins else None,
        official=not custom,
        release_dir=root,
        cache_dir=cache,
        simulated=custom and (root / SIMULATED_MARKER).is_file(),
    )


def check_version(version: str) -> str:
    """Return ``version`` if it is a release version, else raise InvalidChoiceError listing VERSIONS."""
    check_choice("release version", version, VERSIONS)
    return version


__all__ = [
    "ARTIFACT_FLAGS", "CLASSES", "CLINICAL_FLAGS", "PROBES", "SOURCES", "TASKS", "VERSIONS", "Catalogue",
    "CropRule", "Erratum", "Expected", "MaskPlan", "UnknownVideoError", "Video", "check_version", "load_catalogue",
    "load_errata", "parse_release", "release_view",
]
