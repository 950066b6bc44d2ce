"""Score automatic crop and masks against truth made by eye on real clips (``benchmarks/realclip_truth.json``).

Truth for a real clip is boxes, not per-pixel masks: the field of view (``fov``, and other panels that would do as
well), every burned-in overlay (a box, a kind, whether it is drawn over the image, the frames it is on), frames that
are not usable (cuts, blank frames) and boxes of real tissue near the field's edges. Boxes are ``[x0, y0, x1, y1]`` in
source pixels, ``x1``/``y1`` exclusive; frame ranges are inclusive, 0-based in decode order.

What a clean frame removes: the pixels of its mask as the pipeline grows it (5x5, then inpainted), and, when the
detection blanks what lies outside the field of view, every pixel of the window outside the detected field (black).
A dropped frame removes everything. The scores (per clip, :class:`ClipScore`):

- ``top_ok``: the window holds the top band of the field (the skin line and pleura), all of its visible width (not the
  overlay boxes in it: a ruler's digits or text beside an apex);
- ``iou``: the window against the window the same rule draws around the true field (best over acceptable panels);
- ``overlay_recall``: of the overlay pixels inside the window, the share removed. An overlay pixel is a pixel of an
  overlay box that stands out in the clip's median frame (white top-hat or colour; a pixel coloured there but grey
  on a frame -- colour Doppler, which changes -- is not the mark on that frame), or, off the image, any pixel
  brighter than the black background; a moving mark is measured on the frames it is on. A colour-Doppler box has
  its ``outline`` in the truth (a polygon along the line the scanner draws, by eye): its pixels are what stands out
  within ``_OUTLINE`` px of that polygon and the colour inside it, not the tissue echoes the box frames (its
  rectangle held them too, bright and static in the median frame);
- ``tissue_masked``: of the tissue inside the true field (visible, not in an overlay box), the share removed from a
  kept frame (the main mask, plus anything blanked). Visible is above the black: the frame's, or the image's own
  ``black`` where the truth gives one (a monitor filmed by a phone: the panel's black is lifted above the frame's,
  and a sector's bounding box holds that flat background beside its flanks, which is not tissue);
- ``bad_missed`` / ``good_dropped``: unusable frames kept, and usable frames dropped (share);
- ``probe_ok``.

This module must not decide anything about a clip: it only compares a :class:`~processing.pixels.autodetect.Detection`
with the truth.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from processing.errors import CovidxError
from processing.pixels.autodetect import chroma_of, window_iou
from processing.pixels.masks import dilate
from processing.windows import Window

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)

_TOPHAT = 30  # a mark stands this far above the opening of its neighbourhood in the median frame
_COLOUR = 40  # chroma of a coloured mark (grey ultrasound after coding stays below ~25)
_OFF_IMAGE = 25  # off the image, a pixel this much above the black background is a mark
_TOP_BAND = 0.05  # the top 5% of the field (at least 4 rows) must be in the window
_OUTLINE = 2  # a colour box's outline: what stands out within 2 px of the polygon drawn along it


@dataclass(frozen=True)
class Overlay:
    box: Box
    kind: str
    inside_fov: bool
    frames: tuple[tuple[int, int], ...] | None  # None: on every frame
    outline: tuple[tuple[int, int], ...] = ()  # a colour-Doppler box's outline, a polygon (x, y) in its box


@dataclass(frozen=True)
class ClipTruth:
    clip: str
    size: tuple[int, int]
    frames: int
    probe: str
    fov: Box
    alt_fovs: tuple[Box, ...]
    overlays: tuple[Overlay, ...]
    bad_frames: tuple[tuple[int, int], ...]
    tissue: tuple[Box, ...]
    notes: str = ""
    black: float | None = None  # the image's own black, where it lies above the frame's (a filmed monitor)

    def is_bad(self, index: int) -> bool:
        return any(a <= index <= b for a, b in self.bad_frames)


def _box(value: Sequence[int], where: str) -> Box:
    if len(value) != 4 or not all(isinstance(v, int) for v in value) or value[2] <= value[0] or value[3] <= value[1]:
        raise CovidxError(f"{where}: a box is [x0, y0, x1, y1] with x1 > x0 and y1 > y0; got {value!r}")
    return (value[0], value[1], value[2], value[3])


def _ranges(value: Iterable[Sequence[int]] | None) -> tuple[tuple[int, int], ...] | None:
    return None if value is None else tuple((int(a), int(b)) for a, b in value)


def _overlay(item: dict, where: str) -> Overlay:
    box = _box(item["box"], where)
    outline = tuple((int(x), int(y)) for x, y in item.get("outline", ()))
    if outline and (len(outline) < 3 or not all(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in outline)):
        raise CovidxError(f"{where}: an outline is 3 or more [x, y] points inside its box {list(box)}; got {outline}")
    return Overlay(box, item["kind"], bool(item["inside_fov"]), _ranges(item.get("frames")), outline)


def load_truth(path: Path | str) -> dict[str, ClipTruth]:
    """The truth file: clip file name -> :class:`ClipTruth`."""
    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CovidxError(f"{path}: cannot read the truth file ({exc})") from exc
    out: dict[str, ClipTruth] = {}
    for item in items:
        where = f"{path}: {item.get('clip')}"
        out[item["clip"]] = ClipTruth(
            clip=item["clip"],
            size=(int(item["size"][0]), int(item["size"][1])),
            frames=int(item["frames"]),
            probe=item["probe"],
            fov=_box(item["fov"], where),
            alt_fovs=tuple(_box(b, where) for b in item.get("alt_fovs", [])),
            overlays=tuple(_overlay(o, where) for o in item.get("overlays", [])),
            bad_frames=_ranges(item.get("bad_frames", [])) or (),
            tissue=tuple(_box(b, where) for b in item.get("tissue", [])),
            notes=item.get("notes", ""),
            black=float(item["black"]) if "black" in item else None,
        )
    return out


def box_window(box: Box) -> Window:
    return Window(box[0], box[1], box[2] - box[0], box[3] - box[1])


def holds_top(window: Window, fov: Box, visible: np.ndarray | None = None) -> bool:
    """True when ``window`` holds the top band of the field ``fov`` (2 px of slack).

    ``visible`` (bool, frame shape) marks the pixels that show tissue: then the band's visible pixels must all be in
    the window (a sector's black corners beside its apex may be cut); without it, the band's whole width.
    """
    x0, y0, x1, y1 = fov
    band = max(4, int(round(_TOP_BAND * (y1 - y0))))
    if window.y > y0 + 2 or window.y + window.h < y0 + band:
        return False
    if visible is None:
        return window.x <= x0 + 2 and window.x + window.w >= x1 - 2
    top = visible[y0:y0 + band, x0:x1]
    cols = np.flatnonzero(top.any(axis=0)) + x0
    return bool(cols.size == 0 or (window.x <= cols.min() + 2 and window.x + window.w >= cols.max() - 1))


@dataclass(frozen=True)
class ClipScore:
    clip: str
    top_ok: bool
    iou: float
    probe_ok: bool
    overlay_pixels: int  # overlay pixels inside the window (over the frames measured)
    overlay_recall: float
    tissue_pixels: int
    tissue_masked: float
    tissue_box_masked: float  # share of the hand-drawn tissue boxes removed
    bad_frames: int
    bad_missed: int
    good_frames: int
    good_dropped: float

    def as_row(self) -> dict[str, object]:
        """JSON-ready: floats rounded, numpy scalars as Python numbers."""
        out: dict[str, object] = {}
        for key, value in self.__dict__.items():
            value = value.item() if hasattr(value, "item") else value
            out[key] = round(value, 4) if isinstance(value, float) else value
        return out


def _tophat(gray: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))


def mark_pixels(image: np.ndarray, overlay: Overlay, black: float, image_area: np.ndarray | None = None) -> np.ndarray:
    """The pixels of ``overlay`` (bool, frame shape) in ``image`` (RGB): what stands out inside its box.

    Off the image (outside ``image_area``, bool frame shape: the panels' boxes) anything above the background is
    the mark; on it only what stands out of the tissue around it (a box drawn across a panel's edge holds tissue).
    """
    x0, y0, x1, y1 = overlay.box
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    out = np.zeros((height, width), bool)
    if x1 <= x0 or y1 <= y0:
        return out
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    # The top-hat needs context around the box: compute it on a margin, keep the box.
    m = 8
    ax0, ay0, ax1, ay1 = max(0, x0 - m), max(0, y0 - m), min(width, x1 + m), min(height, y1 + m)
    hat = _tophat(gray[ay0:ay1, ax0:ax1])[y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0]
    sub = gray[y0:y1, x0:x1]
    colour = chroma_of(np.ascontiguousarray(image[y0:y1, x0:x1])) > _COLOUR
    if overlay.outline:  # a colour-Doppler box: its outline and the colour inside it, not the tissue they frame
        points = np.array(overlay.outline, np.int32) - np.array([x0, y0])
        line, inside = np.zeros(sub.shape, np.uint8), np.zeros(sub.shape, np.uint8)
        cv2.polylines(line, [points], True, 1, 2 * _OUTLINE + 1)
        cv2.fillPoly(inside, [points], 1)
        out[y0:y1, x0:x1] = ((line > 0) & (hat > _TOPHAT)) | ((inside > 0) & colour)
        return out
    mark = (hat > _TOPHAT) | colour
    if not overlay.inside_fov:
        off = sub > black + _OFF_IMAGE
        if image_area is not None:
            off &= ~image_area[y0:y1, x0:x1]
        mark |= off
    out[y0:y1, x0:x1] = mark
    return out


def grown(mask: np.ndarray) -> np.ndarray:
    """A detected mask as the pipeline inpaints it: dilated 5x5 (``processing.pixels.masks.dilate``)."""
    return dilate(mask)


def median_frame(frames: Sequence[np.ndarray]) -> np.ndarray:
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


@dataclass(frozen=True)
class _Cleaning:
    """What a detection removes from each frame, in window coordinates."""

    detection: object
    outside: np.ndarray  # blanked: outside the detected field
    dropped: frozenset[int]  # pointer frames and unusable frames

    @classmethod
    def of(cls, detection: object) -> _Cleaning:
        window: Window = detection.window  # type: ignore[attr-defined]
        field = getattr(detection, "fov_mask", None)
        outside = np.zeros((window.h, window.w), bool) if field is None else ~field
        dropped = set(getattr(detection, "dropped_frames", ())) | set(getattr(detection, "unusable_frames", ()))
        return cls(detection, outside, frozenset(dropped))

    def removed(self, index: int) -> np.ndarray:
        if index in self.dropped:
            return np.ones(self.outside.shape, bool)
        return grown(self.detection.mask_for(index)) | self.outside  # type: ignore[attr-defined]

    def main_removed(self) -> np.ndarray:
        return grown(self.detection.main_mask) | self.outside  # type: ignore[attr-defined]


def _overlay_hits(truth: ClipTruth, cleaning: _Cleaning, samples: Mapping[int, np.ndarray], med: np.ndarray,
                  black: float, window: Window) -> tuple[int, int]:
    """``(removed, total)`` overlay pixels inside the window, over the kept sample frames."""
    width, height = truth.size
    rows, cols = window.slices()
    image_area = np.zeros((height, width), bool)
    for bx0, by0, bx1, by1 in (truth.fov, *truth.alt_fovs):
        image_area[by0:by1, bx0:bx1] = True
    indices = sorted(samples)
    kept = [i for i in indices if i not in cleaning.dropped and not truth.is_bad(i)]
    hit = total = 0
    coloured = (chroma_of(med) > _COLOUR)[rows, cols]
    grey_on: dict[int, np.ndarray] = {}  # frame -> its pixels that are grey (a colour that comes and goes is gone)
    for overlay in truth.overlays:
        if overlay.frames is None:  # a static mark: every kept frame's mask must remove it
            marks = mark_pixels(med, overlay, black, image_area)[rows, cols]
            for index in kept if marks.any() else ():
                # Colour Doppler inside a box changes from frame to frame: a pixel coloured in the median frame
                # but grey on this one is tissue on this one, not the mark.
                if index not in grey_on:
                    grey_on[index] = chroma_of(np.ascontiguousarray(samples[index][rows, cols])) <= _COLOUR // 2
                on = marks & ~(coloured & grey_on[index])
                total += int(on.sum())
                hit += int((on & cleaning.removed(index)).sum())
            continue
        for a, b in overlay.frames:
            for index in (i for i in indices if a <= i <= b):
                marks = mark_pixels(samples[index], overlay, black, image_area)[rows, cols]
                total += int(marks.sum())
                hit += int((marks & cleaning.removed(index)).sum())
    return hit, total


def _unmarked(truth: ClipTruth, visible: np.ndarray, rim: int = 0) -> np.ndarray:
    """``visible`` without the overlay boxes, each grown by ``rim`` px: a ruler's digits or a vendor's text beside a
    sector's apex, inside the true field's bounding box, are not the top of the field, nor tissue."""
    out = visible.copy()
    for bx0, by0, bx1, by1 in (overlay.box for overlay in truth.overlays):
        out[max(0, by0 - rim):by1 + rim, max(0, bx0 - rim):bx1 + rim] = False
    return out


def _tissue_masked(truth: ClipTruth, fov: Box, cleaning: _Cleaning, gray_med: np.ndarray, black: float,
                   window: Window) -> tuple[int, float, float]:
    """``(tissue pixels, share removed, share of the hand-drawn tissue boxes removed)`` inside the window."""
    width, height = truth.size
    rows, cols = window.slices()
    x0, y0, x1, y1 = fov
    tissue = np.zeros((height, width), bool)  # visible pixels of the field, not in (a rim around) an overlay box
    tissue[y0:y1, x0:x1] = gray_med[y0:y1, x0:x1] > black + 8
    tissue = _unmarked(truth, tissue, rim=3)
    in_window = np.zeros((height, width), bool)
    in_window[rows, cols] = True
    removed = np.zeros((height, width), bool)
    removed[rows, cols] = cleaning.main_removed()
    tissue &= in_window
    n = int(tissue.sum())
    boxes = np.zeros((height, width), bool)
    for bx0, by0, bx1, by1 in truth.tissue:
        boxes[by0:by1, bx0:bx1] = True
    boxes &= in_window
    share = float((removed & tissue).sum()) / n if n else 0.0
    box_share = float((removed & boxes).sum()) / boxes.sum() if boxes.any() else 0.0
    return n, share, box_share


def score_clip(
    detection: object,
    truth: ClipTruth,
    samples: Mapping[int, np.ndarray],
    *,
    window_rule,
) -> ClipScore:
    """Score a detection against ``truth``.

    ``detection`` is a :class:`processing.pixels.autodetect.Detection`; ``samples`` maps frame indices to decoded RGB
    frames (a spread over the clip, plus frames on which moving overlays are drawn); ``window_rule(bbox, probe,
    width, height) -> Window`` is the rule the detector draws its window with, applied here to the true field.
    """
    width, height = truth.size
    window: Window = detection.window  # type: ignore[attr-defined]
    cleaning = _Cleaning.of(detection)
    frame_count = int(getattr(detection, "frame_count", truth.frames))
    # The panel the window went for: the true field, or another panel the truth accepts as well.
    fov, iou = max(((f, window_iou(window, window_rule(box_window(f), truth.probe, width, height)))
                    for f in (truth.fov, *truth.alt_fovs)), key=lambda pair: pair[1])
    indices = sorted(samples)
    med = median_frame([samples[i] for i in indices if not truth.is_bad(i)] or [samples[i] for i in indices])
    gray_med = cv2.cvtColor(med, cv2.COLOR_RGB2GRAY)
    black = float(np.percentile(gray_med, 2))
    hit, total = _overlay_hits(truth, cleaning, samples, med, black, window)
    # A panel whose black was filmed off a monitor lies above the frame's black: its background is not tissue.
    ground = max(black, truth.black) if truth.black is not None else black
    tissue_n, tissue_masked, tissue_box_masked = _tissue_masked(truth, fov, cleaning, gray_med, ground, window)
    bad = [i for i in range(frame_count) if truth.is_bad(i)]
    good = frame_count - len(bad)
    good_dropped = sum(1 for i in range(frame_count) if i in cleaning.dropped and not truth.is_bad(i))
    return ClipScore(
        clip=truth.clip,
        top_ok=holds_top(window, fov, visible=_unmarked(truth, gray_med > ground + 12)),
        iou=iou,
        probe_ok=getattr(detection, "probe", None) == truth.probe,
        overlay_pixels=total,
        overlay_recall=hit / total if total else 1.0,
        tissue_pixels=tissue_n,
        tissue_masked=tissue_masked,
        tissue_box_masked=tissue_box_masked,
        bad_frames=len(bad),
        bad_missed=sum(1 for i in bad if i not in cleaning.dropped),
        good_frames=good,
        good_dropped=good_dropped / good if good else 0.0,
    )
