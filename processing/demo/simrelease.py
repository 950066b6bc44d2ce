"""A small simulated COVIDx-US release, in the upstream file format, with its clips and their ground truth.

``write_simulated_release(root, seed=0)`` writes

    root/release/utils/video_metadata.csv, video_cropping_metadata.csv, mask_metadata.csv,
                       video_files_properties.csv, LUSS_metadata.csv
    root/release/labels/COVIDx-US1.4_{4class,3class,binary}.csv
    root/release/data/mask/<id>_prc_<probe>_frame<N>_mask.jpg
    root/clips/<id>.<ext>          the original file as its source would serve it
    root/truth/<id>.npz            processing.demo.simulate.GroundTruth of the clip

for 16 videos across the four classes, both probes and seven sources (Butterfly archive, GrepMed, LITFL, POCUS Atlas
GIFs, CoreUltrasound CloudFront, UF wmv/mov, a Springer paper avi), added over versions 1.0 to 1.4. The files follow
upstream's conventions and quirks: latin-1 CSVs (utils LF, LUSS and labels CRLF), a trailing blank row in
video_metadata.csv, ``"(X1, W, Y1, H)"`` rectangles, the square rule's ``del_upper``/``width_rate``, crp_width and
crp_height swapped, mask_metadata's version "1" for 1.0, masks at the even-truncated crop size saved as JPEG,
video_files_properties.csv sorted by file name as text. Not reproduced: the stale frame_count/duration upstream copied
into its wmv/mov/avi rows (a custom release's counts are trusted and checked when a clip is downloaded).

Every crop window equals the clip's ground-truth FOV window; every mask is the ground-truth overlay mask (dilated by
:data:`MASK_DILATION` px, as a human mask covers an overlay generously) cropped to that window. Rows are generated
here, never copied from the real release. Deterministic for a seed: the same CSV and mask bytes every time.

This module must not do HTTP or parse the release (that is processing.release.catalogue's job); it only writes files.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from processing.demo.simulate import ClipSpec, GroundTruth, write_clip
from processing.errors import CovidxError
from processing.fileutil import atomic_write
from processing.progress import progress
from processing.release.catalogue import SIMULATED_MARKER, CropRule
from processing.windows import Window

MASK_DILATION = 2  # px added around every drawn overlay pixel in the release masks
POCUS_ATLAS_SITE = "58118909e3df282037abfad7"

VIDEO_METADATA_COLUMNS = (
    "id", "filename", "filetype", "folder", "source", "url", "probe", "class", "class_on_website", "version",
    "date_added", "type", "patient", "case_no", "gender", "age", "comment", "paper_link", "paper_doi", "license", "link",
)
CROPPING_COLUMNS = (
    "filename", "source", "probe", "class", "org_width", "org_height", "org_framecount", "org_framerate",
    "org_duration", "green_dot", "top_left_symbol", "red_symbol", "white_arrow", "text", "meter", "sound",
    "extra_end_part", "del_upper", "width_rate", "x1_w_y1_h", "cropped_filename", "crp_width", "crp_height", "version",
    "date_added", "multiple_videos", "Note",
)
MASK_COLUMNS = (
    "filename", "source", "probe", "class", "org_width", "org_height", "cropped_filename", "crp_width", "crp_height",
    "need_mask_after_crop", "need_multiple_masks", "frame_specific_masks", "delete_frames_from_to",
    "mask_main_filename", "tight_inpainting", "version", "date_added",
)
PROPERTIES_COLUMNS = ("filename", "framerate", "width", "height", "frame_count", "duration_secs")
LUSS_COLUMNS = ("id", "LUSS", "filetype", "source", "probe", "class", "type")
LABEL_COLUMNS = {
    "4class": ("id", "LUSS", "source", "probe", "class", "class_on_website", "type", "patient", "case_no"),
    "3class": ("id", "LUSS", "source", "probe", "class", "class_on_website", "type"),
    "binary": ("id", "LUSS", "source", "probe", "class", "class_on_website", "type"),
}
SOURCE_SPELLING = {  # id spelling -> the release's `source` column
    "butterfly": "Butterfly", "grepmed": "GrepMed", "litfl": "Litfl", "pocusatlas": "PocusAtlas",
    "core": "CoreUltrasound", "uf": "UF", "paper": "Paper",
}
CLASS_SPELLING = {"covid": "COVID", "pneumonia": "Pneumonia", "normal": "Normal", "other": "Other"}
DATE_ADDED = {"1.0": "Nov_2020", "1.1": "Mar_2021", "1.2": "Apr_2021", "1.3": "Apr_2021", "1.4": "Jul_2021"}
_FOLDERS = {
    "grepmed": r"data\video\GrepMed\target_video", "litfl": r"data\video\Litfl\target_video",
    "pocusatlas": r"data\video\POCUSAtlas\lung", "core": r"data\video\Coreultrasound\target_video",
    "uf": r"data\video\UF\target_video", "paper": r"data\video\Paper\target_video",
}


@dataclass(frozen=True)
class SquareCrop:
    """Upstream's square rule: ``b = int(W*width_rate)``, ``box = int(W - 2b)``; if ``box + del_upper > H`` then
    ``box = int(H - del_upper)``, ``b = int(W/2 - box/2)``; window ``(b, del_upper, box, box)``."""

    del_upper: int
    width_rate: float

    def window(self, width: int, height: int) -> Window:
        return square_window(width, height, self.del_upper, self.width_rate)


@dataclass(frozen=True)
class RectCrop:
    """A rectangle given as fractions of the frame ``(x, y, w, h)``; written as ``"(X1, W, Y1, H)"``."""

    x: float
    y: float
    w: float
    h: float

    def window(self, width: int, height: int) -> Window:
        x, y = int(self.x * width), int(self.y * height)
        return Window(x, y, min(int(self.w * width), width - x), min(int(self.h * height), height - y))


def square_window(width: int, height: int, del_upper: float, width_rate: float) -> Window:
    """The crop window upstream's square rule gives for a ``width`` x ``height`` frame: the catalogue's own rule."""
    return CropRule("square", del_upper=int(del_upper), width_rate=width_rate).window(width, height)


def _width_rate_for(width: int, b: int) -> float:
    """A short decimal ``r`` with ``int(width * r) == b`` (upstream wrote rates such as 0.035)."""
    for digits in (3, 4, 5, 6):
        for candidate in (round(b / width, digits), round((b + 0.5) / width, digits)):
            if int(width * candidate) == b:
                return candidate
    raise CovidxError(f"no width_rate reproduces a side border of {b} px in a frame {width} px wide")


@dataclass(frozen=True)
class _Entry:
    """One simulated video: how to draw it and how the release describes it."""

    number: int
    source: str
    label: str
    probe: str
    container: str
    version: str
    size: tuple[int, int]  # (width, height) at scale 1
    frames: int
    fps: float
    crop: SquareCrop | RectCrop
    filename: str  # the release's `filename` column (Butterfly: the archive member's name)
    url_part: str  # source-specific piece of the URL (see _url)
    overlays: tuple[str, ...] = ("ruler", "text", "logo", "marker")
    logo_color: str = "green"
    pointer: tuple[tuple[int, int], ...] = ()
    frame_masks: tuple[tuple[int, int], ...] = ()
    deleted: tuple[tuple[int, int], ...] = ()
    tight: bool = False
    patient: str = ""  # video_metadata's patient column (case name); "" for none
    case_no: int | None = None
    luss: int | None = None
    class_on_website: str = ""
    folder: str = ""  # Butterfly archive category folder
    comment: str = ""
    paper: str = ""  # Springer article number for paper rows

    @property
    def id(self) -> str:
        return f"{self.number}_{self.source}_{self.label}"


# Sizes are (width, height) at scale 1, kept small for the demo but in each source's aspect: Butterfly portrait,
# GrepMed/LITFL/POCUS Atlas/UF/paper landscape 4:3, CoreUltrasound wide.
_CATALOGUE: tuple[_Entry, ...] = (
    _Entry(1, "butterfly", "covid", "convex", "mp4", "1.0", (176, 216), 30, 20.0, SquareCrop(20, 0.08),
           "Coalescing B lines.mp4", "", pointer=((8, 19),), frame_masks=((8, 10), (17, 19)), deleted=((11, 16),),
           luss=3, folder="B lines", comment="Simulated: confluent B-lines, irregular pleura; pointer over frames."),
    _Entry(2, "butterfly", "covid", "convex", "mp4", "1.0", (176, 216), 24, 24.0, SquareCrop(18, 0.06),
           "Subpleural Consolidations_Example 1.mp4", "", luss=2, folder="Irregular Pleural Line",
           comment="Simulated: fragmented pleural line with small subpleural consolidations."),
    _Entry(3, "butterfly", "normal", "linear", "mp4", "1.0", (176, 216), 20, 20.0, RectCrop(0.12, 0.1, 0.72, 0.75),
           "A lines with Sliding.mp4", "", luss=0, folder="Normal Lung", comment="Simulated: A-lines and sliding."),
    _Entry(4, "grepmed", "covid", "linear", "mp4", "1.0", (240, 180), 24, 25.0, RectCrop(0.22, 0.12, 0.56, 0.8),
           "blines-pocus-lung-covid19-ultrasound-original.mp4", "7714/blines-pocus-lung-covid19-ultrasound",
           logo_color="orange", luss=2, comment="Simulated: B-lines with a thickened pleural line, linear probe."),
    _Entry(5, "grepmed", "pneumonia", "convex", "mp4", "1.0", (240, 180), 28, 30.0, SquareCrop(19, 0.0),
           "airbronchogram-consolidation-pocus-lung-original.mp4", "7851/airbronchogram-consolidation-pocus-lung",
           logo_color="red", deleted=((24, 27),), tight=True, luss=3,
           comment="Simulated: lobar consolidation with air bronchograms; tail frames to drop."),
    _Entry(6, "litfl", "pneumonia", "convex", "mp4", "1.0", (192, 144), 20, 15.0, SquareCrop(12, 0.0),
           "LITFL_Pneumonia_case1_1.mp4", "2019/05/Pneumonia-Case-1_1.mp4", patient="pneumonia_case1", case_no=1,
           luss=3, comment="Simulated: consolidation with air bronchograms (first clip of the case)."),
    _Entry(7, "litfl", "pneumonia", "linear", "mp4", "1.0", (192, 144), 20, 15.0, RectCrop(0.2, 0.1, 0.6, 0.84),
           "LITFL_Pneumonia_case1_2.mp4", "2019/05/Pneumonia-Case-1_2-AG.mp4", patient="pneumonia_case1", case_no=2,
           luss=2, comment="Simulated: the same patient, linear probe."),
    _Entry(8, "pocusatlas", "covid", "convex", "gif", "1.0", (200, 144), 16, 10.0, SquareCrop(9, 0.0),
           "COVID B lines Day 1.gif", "1586305097712-Q8WZ3K1M5T0R7XJ2N4PA", luss=2,
           comment="Simulated: B-lines, odd crop size."),
    _Entry(9, "pocusatlas", "normal", "linear", "gif", "1.0", (200, 150), 14, 10.0, RectCrop(0.2, 0.16, 0.58, 0.8),
           "Normal Lung Sliding __600x450.gif", "1578262391024-H3N8YVQ2C6D0LK5TW1EZ", overlays=("ruler", "text"),
           luss=0, comment="Simulated: normal lung; every overlay lies outside the crop."),
    _Entry(10, "litfl", "normal", "convex", "mp4", "1.1", (192, 144), 18, 15.0, SquareCrop(14, 0.0),
           "LITFL_Normal_case1_1.mp4", "2018/12/Normal-lung-sliding-convex.mp4", patient="normal_case1", case_no=1,
           luss=0, comment="Simulated: normal lung, convex probe."),
    _Entry(11, "litfl", "other", "convex", "mp4", "1.2", (192, 144), 18, 15.0, SquareCrop(16, 0.0),
           "LITFL_Pleural_Effusion_case1_1.mp4", "2019/09/Pleural-effusion-1.mp4", patient="pleural_effusion_case1",
           case_no=1, class_on_website="Pleural Effusion", comment="Simulated: pleural effusion."),
    _Entry(12, "litfl", "other", "linear", "mp4", "1.2", (192, 144), 16, 15.0, RectCrop(0.18, 0.12, 0.62, 0.82),
           "LITFL_Pleural_Effusion_case2_1.mp4", "2019/09/Pleural-effusion-linear-2.mp4",
           patient="pleural_effusion_case2", case_no=1, class_on_website="Pleural Effusion", luss=1,
           comment="Simulated: pleural effusion, linear probe."),
    _Entry(13, "core", "covid", "convex", "mp4", "1.3", (240, 142), 20, 25.0, SquareCrop(10, 0.0),
           "Core_COVID_case1_1.mp4", "post_files/uotw71.2.mp4", pointer=((6, 13),), frame_masks=((6, 13),),
           patient="core_covid_case1", case_no=1, luss=3, comment="Simulated: B-lines; a pointer over frames 6-13."),
    _Entry(14, "uf", "other", "convex", "wmv", "1.4", (200, 150), 16, 20.0, SquareCrop(14, 0.17),
           "UF_lung-effusion-sim.wmv", "2016/08/lung-effusion-sim.wmv", patient="uf_pleural_effusion_case1",
           case_no=1, class_on_website="Pleural Effusion", comment="Simulated: pleural effusion (wmv)."),
    _Entry(15, "uf", "normal", "convex", "mov", "1.4", (200, 150), 12, 12.0, SquareCrop(15, 0.0),
           "UF_Lung-Normal-Sliding-sim.mov", "2016/11/Lung-Normal-Sliding-sim.mov", patient="uf_normal_case1",
           case_no=1, luss=0, comment="Simulated: normal lung (mov)."),
    _Entry(16, "paper", "pneumonia", "convex", "avi", "1.4", (160, 120), 20, 15.0, SquareCrop(10, 0.0),
           "paper_sim_pneumonia1.avi", "5701/MediaObjects/13054_2007_5701_MOESM3_ESM.avi",
           patient="paper_sim_pneumonia_case1", case_no=1, paper="5701", comment="Simulated: consolidation (avi)."),
)


@dataclass(frozen=True)
class SimulatedRelease:
    """What :func:`write_simulated_release` wrote.

    ``clips``: video id -> the clip file (named ``<id>.<ext>``); ``filenames``: video id -> the original file name
    (the name a Butterfly archive member must carry); ``archive_paths``: Butterfly video id -> ``<folder>/<filename>``
    inside the archive; ``urls``: video id -> the release's download URL; ``truth``: video id -> ground truth ``.npz``.
    """

    root: Path
    release_dir: Path
    ids: tuple[str, ...]
    clips: dict[str, Path] = field(default_factory=dict)
    truth: dict[str, Path] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)
    archive_paths: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def load_truth(self, video_id: str) -> GroundTruth:
        return GroundTruth.load(self.truth[video_id])


def _hex(seed: int, *parts: object, length: int = 64) -> str:
    return hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()[:length]


# Each source's media URL layout, ``{part}`` being a simulated entry's url_part (Butterfly: one transfer page).
_URL_LAYOUTS = {
    "grepmed": "https://img.grepmed.com/uploads/{part}-original.mp4",
    "litfl": "https://litfl.com/wp-content/uploads/{part}",
    "pocusatlas": f"https://images.squarespace-cdn.com/content/v1/{POCUS_ATLAS_SITE}/{{part}}/image-asset.gif",
    "core": "https://d25ixnv6uinqzi.cloudfront.net/{part}",
    "uf": "https://anest.ufl.edu/files/{part}",
    "paper": "https://static-content.springer.com/esm/art%3A10.1186%2Fcc{part}",
}


def _url(entry: _Entry, seed: int) -> str:
    if entry.source == "butterfly":  # one Bynder transfer page for the whole archive
        return f"https://butterflynetwork.getbynder.com/transfer/{_hex(seed, 'butterfly')}"
    if entry.source not in _URL_LAYOUTS:
        raise CovidxError(f"simulated release: no URL layout for source {entry.source!r}")
    return _URL_LAYOUTS[entry.source].format(part=entry.url_part)


def _even(value: float) -> int:
    return max(32, int(round(value / 2.0)) * 2)


def _scaled(entry: _Entry, scale: float, frames: float, seed: int) -> tuple[_Entry, ClipSpec]:
    width, height = _even(entry.size[0] * scale), _even(entry.size[1] * scale)
    num_frames = max(1, int(round(entry.frames * frames)))

    def rescale(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        # Each new frame stands for one original frame (nearest below in time), so ranges that were disjoint stay
        # disjoint (a frame-mask range never overlaps a deleted one) and pointer frames stay where the masks are.
        members = [t for t in range(num_frames) if _in_ranges(t * entry.frames // num_frames, ranges)]
        return _runs(members)

    crop = entry.crop
    if isinstance(crop, SquareCrop):
        del_upper = int(round(crop.del_upper * scale))
        b = int(width * crop.width_rate)
        crop = SquareCrop(del_upper, _width_rate_for(width, b) if crop.width_rate else 0.0)
    entry = replace(entry, size=(width, height), frames=num_frames, crop=crop, pointer=rescale(entry.pointer),
                    frame_masks=rescale(entry.frame_masks), deleted=rescale(entry.deleted))
    spec = ClipSpec(probe=entry.probe, label=entry.label, width=width, height=height, num_frames=num_frames,
                    fps=entry.fps, container=entry.container, overlays=entry.overlays, pointer_frames=entry.pointer,
                    fov=crop.window(width, height), logo_color=entry.logo_color, seed=seed * 1000 + entry.number)
    return entry, spec


def _ranges_text(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _in_ranges(index: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(a <= index <= b for a, b in ranges)


def _runs(indices: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted frame indices as inclusive ``(first, last)`` runs: ``[4, 5, 8]`` -> ``((4, 5), (8, 8))``."""
    runs: list[tuple[int, int]] = []
    for t in indices:
        if runs and runs[-1][1] == t - 1:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return tuple(runs)


def _mask_image(mask: np.ndarray, window: Window) -> np.ndarray:
    """A release mask: the truth dilated, cropped to the window, even-truncated (as upstream's OpenCV writer did)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_DILATION + 1, 2 * MASK_DILATION + 1))
    grown = cv2.dilate(mask.astype(np.uint8) * 255, kernel)
    crop = grown[window.slices()]
    return crop[: crop.shape[0] - crop.shape[0] % 2, : crop.shape[1] - crop.shape[1] % 2]


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise CovidxError(f"cannot encode mask {path.name}")
    with atomic_write(path) as tmp:
        tmp.write_bytes(data.tobytes())


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]], *, crlf: bool = False,
               blank_row: bool = False) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n" if crlf else "\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    if blank_row:  # upstream's video_metadata.csv ends with a row of empty fields
        writer.writerow({c: "" for c in columns})
    with atomic_write(path) as tmp:
        tmp.write_bytes(buffer.getvalue().encode("latin-1"))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _fmt(value: float) -> str:
    return repr(float(value))


def write_simulated_release(root: Path | str, seed: int = 0, *, scale: float = 1.0, frames: float = 1.0,
                            write_clips: bool = True) -> SimulatedRelease:
    """Write the simulated release, its clips and their ground truth under ``root`` (see the module docstring).

    ``scale`` multiplies every frame size (sizes are rounded to even numbers), ``frames`` every clip length; the crop
    rules, pointer ranges and mask plans follow. ``write_clips=False`` writes the release and truth only (no encoding).
    """
    if not 0.25 <= scale <= 8:
        raise CovidxError(f"write_simulated_release: scale must lie in [0.25, 8], got {scale}")
    if not 0.1 <= frames <= 10:
        raise CovidxError(f"write_simulated_release: frames must lie in [0.1, 10], got {frames}")
    root = Path(root)
    release = root / "release"
    for folder in (release / "data" / "mask", release / "utils", release / "labels", root / "clips", root / "truth"):
        folder.mkdir(parents=True, exist_ok=True)
    out = SimulatedRelease(root=root, release_dir=release, ids=tuple(e.id for e in _CATALOGUE))
    rows = _Rows()
    for base in progress(_CATALOGUE, desc="simulate", unit="clip"):
        entry, spec = _scaled(base, scale, frames, seed)
        truth = _write_clip_and_truth(entry, spec, root, write_clips)
        url = _url(entry, seed)
        vid = entry.id
        out.clips[vid] = root / "clips" / f"{vid}.{entry.container}"
        out.truth[vid], out.urls[vid] = root / "truth" / f"{vid}.npz", url
        out.filenames[vid], out.versions[vid] = entry.filename, entry.version
        if entry.source == "butterfly":
            out.archive_paths[vid] = f"{entry.folder}/{entry.filename}"
        main_mask = _write_masks(entry, truth, spec.window, release / "data" / "mask")
        rows.add(entry, spec.window, url, main_mask)
    _write_release_files(release, rows)
    return out


def _write_clip_and_truth(entry: _Entry, spec: ClipSpec, root: Path, write_clips: bool) -> GroundTruth:
    if write_clips:
        truth = write_clip(spec, root / "clips" / f"{entry.id}.{entry.container}")
    else:
        from processing.demo.simulate import simulate_truth

        truth = simulate_truth(spec)
    truth.save(root / "truth" / f"{entry.id}.npz")
    return truth


def _write_masks(entry: _Entry, truth: GroundTruth, window: Window, mask_dir: Path) -> str:
    """The main and frame-specific masks a human would draw: overlays inside the crop on the frames that are kept.
    Returns the main mask's file name ("" when the clip needs no mask)."""
    kept = [t for t in range(entry.frames) if not _in_ranges(t, entry.deleted)]
    inside = truth.overlay_masks[:, window.y : window.y + window.h, window.x : window.x + window.w]
    if not (bool(inside[kept].any()) if kept else False):
        return ""
    main_name = f"{entry.id}_prc_{entry.probe}_frame0_mask.jpg"
    main_frames = [t for t in kept if not _in_ranges(t, entry.frame_masks)]
    main = truth.overlay_masks[main_frames].any(axis=0) if main_frames else truth.static_mask
    _write_jpeg(mask_dir / main_name, _mask_image(main, window))
    for t in kept:
        if _in_ranges(t, entry.frame_masks) and t != 0:
            name = f"{entry.id}_prc_{entry.probe}_frame{t}_mask.jpg"
            _write_jpeg(mask_dir / name, _mask_image(truth.overlay_masks[t], window))
    return main_name


@dataclass
class _Rows:
    """The rows of every release file, one video at a time, in the upstream columns and spellings."""

    meta: list[dict[str, object]] = field(default_factory=list)
    crop: list[dict[str, object]] = field(default_factory=list)
    masks: list[dict[str, object]] = field(default_factory=list)
    props: list[dict[str, object]] = field(default_factory=list)
    luss: list[dict[str, object]] = field(default_factory=list)
    labels: dict[str, list[dict[str, object]]] = field(default_factory=lambda: {task: [] for task in LABEL_COLUMNS})
    patients: dict[str, str] = field(default_factory=dict)  # patient key -> "p<N>", in order of appearance

    def add(self, entry: _Entry, window: Window, url: str, main_mask: str) -> None:
        vid, ext, (width, height) = entry.id, entry.container, entry.size
        source, probe, label = SOURCE_SPELLING[entry.source], entry.probe.capitalize(), CLASS_SPELLING[entry.label]
        folder = rf"data\tmp\Butterfly\{entry.folder}" if entry.source == "butterfly" else _FOLDERS[entry.source]
        self.meta.append({
            "id": vid, "filename": entry.filename, "filetype": ext, "folder": folder, "source": source, "url": url,
            "probe": probe, "class": label, "class_on_website": entry.class_on_website, "version": entry.version,
            "date_added": DATE_ADDED[entry.version], "type": "lung", "patient": entry.patient,
            "case_no": entry.case_no, "comment": entry.comment,
            "paper_link": f"https://link.springer.com/article/10.1186/cc{entry.paper}" if entry.paper else "",
            "paper_doi": f"https://doi.org/10.1186/cc{entry.paper}" if entry.paper else "",
        })
        duration = round(entry.frames / entry.fps, 2)
        self.props.append({"filename": f"{vid}.{ext}", "framerate": _fmt(round(entry.fps, 2)), "width": _fmt(width),
                           "height": _fmt(height), "frame_count": _fmt(entry.frames), "duration_secs": _fmt(duration)})
        common = {"filename": f"{vid}.{ext}", "source": source, "probe": probe, "class": label, "org_width": width,
                  "org_height": height}
        self.crop.append({**common, **_cropping_columns(entry, window, duration)})
        needs_mask = bool(main_mask)
        self.masks.append({
            **common, "cropped_filename": f"{vid}_prc.avi", "crp_width": window.h, "crp_height": window.w,
            "need_mask_after_crop": _yes(needs_mask), "need_multiple_masks": _yes(bool(entry.frame_masks)),
            "frame_specific_masks": _ranges_text(entry.frame_masks), "delete_frames_from_to": _ranges_text(entry.deleted),
            "mask_main_filename": main_mask, "tight_inpainting": _yes(entry.tight) if needs_mask else "",
            "version": "1" if entry.version == "1.0" else entry.version, "date_added": DATE_ADDED[entry.version],
        })
        luss = "NA" if entry.luss is None else entry.luss
        self.luss.append({"id": vid, "LUSS": luss, "filetype": ext, "source": source, "probe": probe,
                          "class": label, "type": "lung"})
        patient_key = entry.patient or vid
        self.patients.setdefault(patient_key, f"p{len(self.patients) + 1}")
        row = {"id": vid, "LUSS": luss, "source": source, "probe": probe, "class": label,
               "class_on_website": entry.class_on_website, "type": "lung"}
        self.labels["4class"].append({**row, "patient": self.patients[patient_key], "case_no": entry.case_no or 1})
        self.labels["binary"].append({**row, "class": "COVID" if entry.label == "covid" else "Non-COVID"})
        if entry.label != "other":
            self.labels["3class"].append(row)


def _cropping_columns(entry: _Entry, window: Window, duration: float) -> dict[str, object]:
    """video_cropping_metadata.csv's own columns: the frame, the artifact flags, the crop rule and size."""
    if isinstance(entry.crop, SquareCrop):
        del_upper, width_rate, rect = _fmt(entry.crop.del_upper), _fmt(entry.crop.width_rate), ""
    else:
        del_upper, width_rate = "", ""
        rect = f"({window.x}, {window.w}, {window.y}, {window.h})"
    overlays = set(entry.overlays)
    return {
        "org_framecount": entry.frames, "org_framerate": _fmt(round(entry.fps, 2)),
        "org_duration": _fmt(duration), "green_dot": _yes("logo" in overlays and entry.logo_color == "green"),
        "top_left_symbol": _yes("marker" in overlays),
        "red_symbol": _yes("logo" in overlays and entry.logo_color != "green"),
        "white_arrow": _yes(bool(entry.pointer)), "text": _yes("text" in overlays),
        "meter": _yes("ruler" in overlays), "sound": "no",
        "extra_end_part": _yes(bool(entry.deleted) and entry.deleted[-1][1] == entry.frames - 1),
        "del_upper": del_upper, "width_rate": width_rate, "x1_w_y1_h": rect, "cropped_filename": f"{entry.id}_prc.avi",
        # Swapped as upstream: crp_width holds the crop height.
        "crp_width": _fmt(window.h), "crp_height": _fmt(window.w), "version": entry.version,
        "date_added": DATE_ADDED[entry.version],
    }


def _write_release_files(release: Path, rows: _Rows) -> None:
    # Upstream sorted this file by file name as text. Its wmv/mov/avi rows carry stale counts copied from the row
    # above; that is not reproduced: a custom release's counts are trusted by the catalogue and checked on download.
    props = sorted(rows.props, key=lambda r: str(r["filename"]))
    _write_csv(release / "utils" / "video_metadata.csv", VIDEO_METADATA_COLUMNS, rows.meta, blank_row=True)
    _write_csv(release / "utils" / "video_cropping_metadata.csv", CROPPING_COLUMNS, rows.crop)
    _write_csv(release / "utils" / "mask_metadata.csv", MASK_COLUMNS, rows.masks)
    _write_csv(release / "utils" / "video_files_properties.csv", PROPERTIES_COLUMNS, props)
    _write_csv(release / "utils" / "LUSS_metadata.csv", LUSS_COLUMNS, rows.luss, crlf=True)
    for task, columns in LABEL_COLUMNS.items():
        _write_csv(release / "labels" / f"COVIDx-US1.4_{task}.csv", columns, rows.labels[task], crlf=True)
    with atomic_write(release / SIMULATED_MARKER) as tmp:  # everything built from this release says it is simulated
        tmp.write_text("This release was written by covidx-us demo: its clips are simulated, not COVIDx-US data.\n",
                       encoding="utf-8")
