"""Automatic field-of-view crop and overlay masks for lung-ultrasound clips (no hand work per clip).

Upstream cropped every clip with a hand-tuned window and drew 353 masks by hand. This module finds both from the
pixels, so a new source (or a user's own clip) needs no hand work:

1. **Field of view** (:func:`detect_fov`). The ultrasound image is the part of the frame that is *grey* and *alive*:
   speckle changes from frame to frame, while text, rulers, logos and the black background do not. The temporal
   standard deviation of the grey level over a bounded sample of frames, smoothed, thresholded and cleaned with
   morphology, gives candidate regions. Panels that touch (side by side through a ruler, stacked apex to arc) are
   split at valleys of the column profile of live speckle and of the row profile of the region; the region with the
   most live speckle (the left/top panel wins among those within 10% of it) is filled to its convex hull. A clip that
   never changes (a still) falls back to speckle texture, and so does tissue that does not change in a clip that
   does (a held breath, a GIF's unchanged corner): still speckle is rough, where text is strokes. The region is
   accepted only if it is big enough and looks like ultrasound (mostly mid-grey levels, not the two levels of text);
   otherwise :class:`~processing.errors.ClipError` names the clip: ``no ultrasound field of view found``.
   Sectors whose fans touch below their tops are split at the saddle between their apices; static interface
   lines along the region's edges, and a rule drawn wider than its top, are trimmed and the near field (dim
   tissue, a skin line above an anechoic band, a flat top's corners and a pointed apex that the opening took off)
   is given back. The region's top edge gives
   the probe: one that arcs down towards its sides is a ``convex`` sector (also when the clip is already cropped
   to a square around it), a flat one ``linear``. The crop window (:func:`window_for`) is anchored at the top of
   the field: the bounding box of a linear field; a square of the sector's larger extent, giving up depth (never
   the top) when the frame is too small; a field wider than the frame is tall gets its full width.
2. **Overlays** (:func:`detect_overlays`), in the crop window's coordinates (True = overlay to inpaint):
   - static marks outside the field of view but inside the window (ruler ticks and digits, text, logos): pixels that
     are not black in the median frame (or faint and static), and the live speckle of a neighbouring panel beside
     the field;
   - depth rulers drawn over the edge of the image: a column of short, bright, steady, thin strokes at a regular
     spacing, and the bright steady strokes (digits) in a band around it;
   - a dotted depth scale's dot that landed on the field's edge (a sector's corner): a gap in a straight line of
     regularly spaced small dots beside the field, on the field's outer pixels;
   - coloured marks anywhere (orientation dot, coloured triangles, coloured text): chroma (max-min of R, G, B) well
     above the image's own tint, present in most frames -> main mask;
   - static bright text burned into the image (e.g. a vendor logo on the sector): very bright pixels that never
     change while the ultrasound around them does, in the border band of the field (still tissue deep in the
     lung of a quiet patient is static too), and static drawn plates anywhere in it (an icon's disc): bright blobs
     whose surroundings are dark all around, where still bright tissue fades into grey;
   - the outline of a colour-Doppler box (on clips with colour Doppler only): thin ridges on most frames, straight
     sides flanking the colour, and the polygon they span;
   - moving pointers: coloured blobs, or flat near-white blobs with a sharp dark surround (white arrows), that are
     present in some frames only -> frame-specific masks. A pointer that
     touches the lung region (the field of view's core) is masked (``pointer_policy="mask"``) or its frame is
     dropped (``"drop"``), as the release deleted frames with a pointer over the lung.
   Each mark is grown into its faint anti-aliased rim, so inpainting does not leave a halo.
3. **Whole clips** (:func:`detect_clip`): one streaming pass over the decoded frames (``processing.pixels.clips``); at most
   ``max_sample_frames`` evenly spaced frames are kept (the stride doubles whenever the buffer fills), and for every
   frame only the coordinates of its coloured pixels are kept, so memory is bounded whatever the clip length.

Returns :class:`Detection` (window, probe, main mask, frame masks, dropped frames, the field of view in the window
-- outside it clean frames are black --, cut and blank frames, ``summary()``), which the clean CLI and the builder turn
into a ``ClipPlan``.

What this module must not do: read or write files other than decoding the clip it is given (no mask files, no
images; callers write them), touch the network, or know about the catalogue or ``datasets``. It never guesses a
window: a clip without a detectable field of view is an error naming the clip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from processing.errors import ClipError, CovidxError, check_choice
from processing.vocabulary import POINTER_POLICIES, PROBES
from processing.windows import Window

log = logging.getLogger(__name__)


# Tuning constants (grey levels are 0-255). Why each value, in a line:
_DARK = 40  # median grey above this outside the field of view is a mark (video black is < 20 even after coding)
_FAINT = 18  # outside the field of view, a pixel this much above the video black is a mark (dim dotted rulers)
_RIM = 12  # a mark grows into neighbouring pixels brighter than this (anti-aliased edges of text)
_MIN_CHROMA = 40  # grey ultrasound coded as video keeps chroma < ~25; coloured marks are far above
_TINT_MARGIN = 25  # over the image's own tint (p90 chroma inside the field), a pixel is coloured
_STATIC_FREQ = 0.8  # coloured in at least this share of sampled frames -> a static mark (main mask)
_LIVE_STD = 2.0  # smoothed temporal std of grey above this is speckle that changes (coded static marks stay below)
_STATIC_STD = 2.5  # temporal std of a static mark after lossy coding (bright speckle varies more)
_MIN_FOV_SHARE = 0.02  # a field of view covers at least 2% of the frame
_SPECKLE = (5.0, 25.0)  # local grey std (5x5, averaged) of still speckle; marks' edges on black measure 21-50.
# 5, not 6: 1412524263630946310's smooth tissue measures 5.3, and where a coder froze it (CRF 28) it was blanked
_MIN_MIDGREY = 0.45  # share of mid-grey pixels in an ultrasound field (text is two-level)
_ARC = 0.08  # the top edge of a sector's field drops at its sides by >= 8% of the field's height. Measured: linear
# fields <= 1.8% on 7 real clips (the opening rounds the corners of simulated ones: <= 7.3%); sectors, also cropped
# to a square: >= 8.8% on 60 of 62 real clips, median 34% (a trapezoidal linear field, diverging sides, 18%)
_NEAR_BAND = 0.6  # a separate band of tissue above the field, from the frame's top edge, at most 0.6x the field's
# height, within its columns and half as wide, along its top edge, is its near field (a clip cropped to the image:
# chest wall over an anechoic layer); a panel stacked above is as tall, or starts below the frame's edge
_NEAR_STD = 1.5  # near-field tissue changes (temporal std of grey >= ~2.4 on real clips); the background and static
# interface lines above the field do not (<= ~1)
_SADDLE = 0.25  # two apices with the region's top edge >= 25% of its height lower between them: two sectors
_LINE = 4  # an interface line along a panel's edge is at most 4 px thick
_EDGE_STATIC = (0.9, 0.8)  # ... each line this share static; one line inside the run may be at the second ...
_EDGE_LIVE = 0.5  # ... when the line after the run is live: less than this share static
_LINE_SHARE = 0.008  # ... and at most this share of the frame's shorter side thick, when that is more than _LINE
_FRINGE = 2  # a coder's colour fringe along the window's edge lies in its outer 2 lines ...
_FRINGE_STRIP = 8  # ... a pointer against the edge has a body (3x3) within 8 px of it
_FRINGE_FRAMES = 0.1  # ... on at least 10% of the frames with colour (a pointer at the edge: a frame or two)
_PERSISTENT = 0.5  # a moving coloured blob on more than half of the frames is colour Doppler, not a pointer
_CUT_FACTOR = 4.0  # a frame differing from the main scene's median by > 4x its median difference + _CUT_FLOOR
_CUT_FLOOR = 20.0  # ... grey levels (32x32 thumbnails) is a cut to another scene (probe motion: <= 3.5x, <= 62)
_SHOT_STEP = 25.0  # a step between two frames' thumbnails over this (and 4x the steps around it) is a cut: the
# largest of the 90 real clips is 21.2 (a GrepMed clip's probe motion, 3.3x the steps around it); between two of
# them joined, 28-76
_SCENE_LOOK = 12.0  # shots whose median thumbnails differ by at most this are one scene: a scan's two halves around
# an inserted clip, 2.3; two real scans joined, >= 15 (the closest pair of the stills tried), so a scan that changed
# more than this while the insert ran keeps its longer half only
_SCENES = 32  # scenes told apart in one clip (a slideshow's frames past these are cuts without a comparison each)
_BLANK_RANGE = 8  # a frame whose thumbnail spans fewer grey levels than this is blank (black, white, a fade)
_THUMB = 32  # side of the per-frame thumbnail kept to find cuts and blank frames
_MAX_COLOURED_SHARE = 0.05  # a frame with more coloured pixels than this is not annotated greyscale (doppler)
_VALLEY = 0.2  # a column (row) with < 20% of the live pixels of the panels beside it separates two panels (a rib
# shadow under a linear probe dips to ~27%; the neck between stacked sectors to ~15%; a seam or ruler to ~0%)
_RULER_GREY = 90  # ruler ticks and digits are drawn at >= 130 grey; steady pixels this bright are candidate ticks
_RULER_TICKS = 20  # a ruler column has >= 20 regularly spaced ticks (steady tissue: < 17 on the real clips)
_FAINT_TICKS = 12  # a faint ruler (ticks 40-120 grey) has >= 12 regular gaps (one tick a cm, 16 cm deep: 12);
# columns without a ruler score <= 6 on all 90 real clips
_FAINT_GREY = 40  # ... its ticks are at least this bright
_TICK_CONTRAST = 25  # ... and this much brighter than the rows a tick spacing above and below them
_STROKE = 40  # a tick or digit stroke is >= 40 grey above the opening of its neighbourhood
_WHITE = 245  # a white pointer (arrow) is drawn at >= 245 grey, flat
_WHITE_EDGE = 110  # ... and falls to below this grey within 5 px all around (bright tissue fades slowly)
_GLYPHS = 3  # a burned-in word is a row of at least 3 glyphs (a caption, a label); single letters are left to the
# rules for marks near the border
_BADGE_GREY = 180  # a static drawn plate (an icon's disc) or a caption's glyph is at least this bright (the probe
# icon on the real clips: 195-205)
_DOPPLER_SHARE = 0.01  # still colour over >= 1% of the field is colour Doppler (marks and arrows on the real clips:
# <= 0.22%; Doppler loops 0.49-2.8%)
_BOX_RIDGE = 20  # a colour box's outline stands this far above the opening (5x5) of its neighbourhood ...
_BOX_FREQ = 0.8  # ... on at least this share of the sampled frames (speckle ridges come and go)
_BOX_LINE = 0.12  # ... along straight stretches at least this share of the window's side long
_NECK = 0.27  # a row where the region spans (first to last column) at most 27% of the width of the narrower of
# the panels above and below it is the neck between two stacked panels (a sector's apex against the arc above:
# 0.21-0.22 on a six-panel grid coded at other sizes; the final pieces of the 90 real clips: 0.30 once, where a
# saddle cut a piece's corner off, else >= 0.49: dark chambers and effusions lower the pixel count, not the span)
_SEAM_LIT = 0.8  # ... and the valley is darker in the median frame: its columns have at most 0.8x the share of
# lit pixels of the region's median column (seams, rulers and labels on black between real panels: <= 0.63x, also
# coded coarsely; bands of one field that change too little to be live -- still tissue a coarse coder left
# unchanged, colour flow, a dark deep field -- 0.99-1.2x)
_PANEL_SHARE = 0.12  # ... when each side holds >= 12% of the region's live pixels (not a sector's apex or rim)
_STEP = 0.08  # both side edges of a region step inwards by >= 8% of its width within a tenth of its height, still
# above and below: a narrower panel under a wider one that it touches. The three-panel collage 1364981565542047744
# steps 11% each side; the nearest other regions of the 90 real clips meet 0.89 of the rule (a sector with a
# spectral strip touching it below, which would rightly be split) and 0.77 (a trapezoid whose flanks drift)
_STEADY = 0.02  # ... still: an edge moves by at most 2% of the region's width (+2 px) along a tenth of its height
_LIFTED = 6  # a region whose darkest pixels (2nd percentile) lie this far above the frame's black has a black of its own
_PLATEAU = 8  # ... its flat background is within this of that level (a phone's noise over a filmed monitor's black)
_PLATEAU_SHARE = 0.1  # ... covers >= 10% of the region, reaching its top rows, and meets the tissue along
# straight side edges: >= 80% of the rows of the tissue's upper half where it meets the plateau lie within 4% of
# the side's length of a line fitted to that side (left and right apart). Of the 90 real clips only the collage
# 1364981565542047744 passes (plateau 25% of its region, sides 0.95 straight); next: LITFL "Pneumonia"
# crop's rib shadows (23%, sides 0.47); the other plateaus are at most 7% of their regions
_FLANK_FIT = 0.04
_FLANK_SHARE = 0.8
_SCALE_DOT = 12  # a dot of a dotted depth scale stands this far above the opening (7x7) of its neighbourhood
_SCALE_DOTS = 5  # ... and the scale is a straight line of at least 5 of them at a regular spacing


@dataclass(frozen=True)
class FieldOfView:
    """The ultrasound image region of a clip, in source-frame pixels."""

    probe: str  # "convex" | "linear"
    window: Window  # the crop window: square around a sector, rectangle around a linear field
    bbox: Window  # tight box around ``region``
    region: np.ndarray = field(repr=False)  # bool (H, W): the field of view (convex hull of the live region)
    median: np.ndarray | None = field(default=None, repr=False)  # uint8 (H, W): the median grey frame it was found on

    def __post_init__(self) -> None:
        check_choice("probe", self.probe, PROBES)


@dataclass(frozen=True)
class Overlays:
    """Overlay masks in window coordinates (True = overlay to inpaint)."""

    main_mask: np.ndarray = field(repr=False)  # bool (h, w): marks present in (almost) every frame
    frame_masks: Mapping[int, np.ndarray] = field(repr=False)  # frame index -> main mask | that frame's pointer
    dropped_frames: tuple[int, ...] = ()  # frames with a pointer over the lung, under pointer_policy="drop"


@dataclass(frozen=True)
class Detection:
    """What :func:`detect_clip` found for one clip."""

    clip_id: str
    probe: str
    window: Window
    main_mask: np.ndarray = field(repr=False)  # bool (window.h, window.w)
    frame_masks: Mapping[int, np.ndarray] = field(repr=False)  # frame index -> full mask for that frame
    dropped_frames: tuple[int, ...]
    frame_count: int  # frames decoded
    sampled_frames: tuple[int, ...]  # the frames the field of view and main mask were measured on
    frame_size: tuple[int, int]  # (width, height) of the source frames
    pointer_policy: str = "mask"
    fov_mask: np.ndarray | None = field(default=None, repr=False)  # bool (window.h, window.w): the field of view
    unusable_frames: Mapping[int, str] = field(default_factory=dict)  # frame -> "blank" | "cut": not training data

    def mask_for(self, index: int) -> np.ndarray:
        """The mask to inpaint frame ``index`` with (its own mask when it has a pointer, else the main mask)."""
        return self.frame_masks.get(index, self.main_mask)

    @property
    def masked_fraction(self) -> float:
        """Share of the crop window covered by the main mask."""
        return float(self.main_mask.mean())

    def summary(self) -> str:
        """One line for the clean CLI: ``<id>: window x,y,w,h probe convex, masked 3.1%, 4 frame masks, 0 dropped``."""
        return (
            f"{self.clip_id}: window {self.window} probe {self.probe}, masked {100 * self.masked_fraction:.1f}%"
            f", {len(self.frame_masks)} frame masks, {len(self.dropped_frames)} dropped"
            + (f", {len(self.unusable_frames)} cut/blank dropped" if self.unusable_frames else "")
            + f" (of {self.frame_count} frames)"
        )


# ----------------------------------------------------------------------------------------------------------------
# Pixel statistics


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def chroma_of(image: np.ndarray) -> np.ndarray:
    """max(R, G, B) - min(R, G, B): 0 for grey, large for saturated colour (also the scorer's, evaluate.py)."""
    r, g, b = cv2.split(image)  # OpenCV's per-pixel max/min are ~30x faster than numpy's reduction over axis 2
    return cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))


def _check_frames(frames: Sequence[np.ndarray], clip_id: str) -> tuple[int, int]:
    if len(frames) == 0:
        raise ClipError(f"{clip_id}: no frames to detect a field of view on")
    shape = frames[0].shape
    for frame in frames:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or frame.shape != shape:
            raise ClipError(
                f"{clip_id}: frames must all be RGB uint8 arrays of shape {shape}; got {frame.dtype} {frame.shape}"
            )
    return shape[1], shape[0]


def _odd(n: float) -> int:
    n = max(3, int(round(n)))
    return n if n % 2 else n + 1


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _temporal_std(grays: Sequence[np.ndarray]) -> np.ndarray:
    total = np.zeros(grays[0].shape, np.float32)
    squares = np.zeros(grays[0].shape, np.float32)
    for g in grays:
        f = g.astype(np.float32)
        total += f
        squares += f * f
    mean = total / len(grays)
    return np.sqrt(np.maximum(squares / len(grays) - mean * mean, 0.0))


def _median(stack: Sequence[np.ndarray]) -> np.ndarray:
    return np.median(np.stack(stack), axis=0).astype(np.uint8)


def _spread(grays: Sequence[np.ndarray]) -> np.ndarray:
    """Per pixel, the range of grey over the frames (int16): small for burned-in marks, large for speckle."""
    stack = np.stack(grays)
    return stack.max(axis=0).astype(np.int16) - stack.min(axis=0)


def _opening_size(height: int, width: int) -> int:
    """Side of the opening that takes thin marks off the candidate regions (:func:`_candidates`)."""
    return _odd(min(height, width) / 60)


def _tint_threshold(chroma: np.ndarray, gray: np.ndarray, where: np.ndarray | None = None) -> float:
    """Chroma above which a pixel is a coloured mark rather than (tinted) ultrasound."""
    sel = gray > 30 if where is None else where & (gray > 30)
    values = chroma[sel]
    tint = float(np.percentile(values, 90)) if values.size else 0.0
    return max(_MIN_CHROMA, tint + _TINT_MARGIN)


def _grow(seeds: np.ndarray, allowed: np.ndarray, steps: int = 2) -> np.ndarray:
    """Grow ``seeds`` into 8-connected ``allowed`` pixels, ``steps`` pixels at most (anti-aliased rims)."""
    grown = seeds.copy()
    k = np.ones((3, 3), np.uint8)
    for _ in range(steps):
        grown = (cv2.dilate(grown.astype(np.uint8), k) > 0) & (allowed | grown)
    return grown


# ----------------------------------------------------------------------------------------------------------------
# Field of view


def _hull(mask: np.ndarray) -> np.ndarray:
    points = cv2.findNonZero(mask.astype(np.uint8))
    hull = cv2.convexHull(points)
    out = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(out, hull, 1)
    return out > 0


def _roughness(gray: np.ndarray, box: int) -> np.ndarray:
    """Local standard deviation, averaged over ``box`` pixels: speckle is rough, black and flat fills are not.

    The window follows the frame's size (5x5 up to ~600 px, 7x7 to ~800, 9x9 to ~1000): speckle of a clip scaled
    up is as rough over a window scaled with it (Butterfly "Normal Lung A lines" at 1.5x: its still near field
    measured 3.5 over 5x5, below the speckle line of 6, and a corner of it was blanked)."""
    g = gray.astype(np.float32)
    k = max(5, _odd(min(gray.shape) / 110))
    mean = cv2.blur(g, (k, k))
    rough = np.sqrt(np.maximum(cv2.blur(g * g, (k, k)) - mean * mean, 0))
    return cv2.blur(rough, (box, box))


def _candidates(
    grays: Sequence[np.ndarray], chromas: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """``(labels, live, gray_med, black, image)``: candidate regions (grey, not black or alive, cleaned of thin
    marks), the per-pixel evidence of ultrasound (speckle that changes, or is rough in a still), the background
    level, and the image pixels before the cleaning (bool; the opening that takes thin marks off also rounds the
    field's corners)."""
    height, width = grays[0].shape
    scale = min(height, width)
    box = _odd(scale / 40)
    gray_med = _median(grays) if len(grays) > 1 else grays[0]
    chroma_max = np.max(np.stack(chromas), axis=0) if len(chromas) > 1 else chromas[0]
    black = float(np.percentile(gray_med, 2))
    std_raw = _temporal_std(grays) if len(grays) > 1 else np.zeros((height, width), np.float32)
    std = cv2.blur(std_raw, (box, box))
    grey = chroma_max < _MIN_CHROMA  # a pointer crossing the image is not evidence of ultrasound
    roughness = _roughness(gray_med, box)
    textured = (roughness > _SPECKLE[0]) & (cv2.blur(gray_med, (box, box)) > black + 12)  # speckle, not a flat fill
    if float(np.percentile(std, 99)) >= _LIVE_STD:
        # The box blur spreads activity box // 2 pixels beyond the image; erode it back.
        live = cv2.erode((std > _LIVE_STD).astype(np.uint8), np.ones((box, box), np.uint8)) > 0
        # Dim, slow tissue (aerated lung below the pleura) barely changes, so non-black pixels count too, except
        # static bright marks and their coded halo (text and rulers touching the image would extend it).
        marks = cv2.dilate(((std_raw <= _STATIC_STD) & (gray_med > 60)).astype(np.uint8), _kernel(3)) > 0
        candidate = (live | ((gray_med > black + 6) & ~marks)) & grey
        # Still tissue is speckle too (a held breath, a short loop, a GIF that kept unchanged pixels): static but
        # rough, where the edges of text and markers on black are rougher still and thin (the opening takes them off)
        candidate |= textured & (roughness < _SPECKLE[1]) & marks & grey
        evidence = (std_raw > _LIVE_STD) & grey  # unblurred: a ruler or seam between two panels stays a valley
    else:  # a still: no change over time, fall back to speckle texture
        live = textured
        candidate = live & grey
        evidence = candidate
    image = candidate
    # Opening removes thin marks (ruler ticks, digits, text) that touch the image; closing fills speckle gaps.
    candidate = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN, _kernel(_opening_size(height, width)))
    # A small closing: side-by-side panels a few pixels apart must stay apart; the convex hull fills the rest.
    candidate = cv2.morphologyEx(candidate, cv2.MORPH_CLOSE, _kernel(_odd(scale / 100)))
    _, labels = cv2.connectedComponents(candidate, connectivity=8)
    labels = _split_panels(labels, evidence, gray_med > black + 12, min_size=_MIN_FOV_SHARE * height * width)
    return labels, live & grey, gray_med, black, image


def _valleys(profile: np.ndarray, share: float = _VALLEY) -> np.ndarray:
    """Positions (bool) of interior valleys of a live-pixel profile that separate two substantial panels.

    A valley is a run where the profile drops below ``share`` of the smaller of the two peaks around it, with at
    least ``_PANEL_SHARE`` of the live pixels on either side (a sector's narrow apex or a rib shadow is no valley).
    """
    profile = profile.astype(np.float64)  # unsmoothed: the seam between touching panels can be 1-2 pixels wide
    total = profile.sum()
    cuts = np.zeros(profile.size, bool)
    if total <= 0:
        return cuts
    cumulative = np.cumsum(profile)
    n = profile.size
    low = profile <= share * profile.max()
    start = None
    for i in range(n + 1):
        if i < n and low[i]:
            start = i if start is None else start
            continue
        if start is not None:
            stop = i  # run [start, stop)
            before = cumulative[start - 1] if start > 0 else 0.0
            after = total - cumulative[stop - 1]
            if start > 0 and stop < n and min(before, after) >= _PANEL_SHARE * total:
                level = share * min(profile[:start].max(), profile[stop:].max())
                cuts[start:stop] = profile[start:stop] <= level  # the narrowest part of a neck; none if too wide
            start = None
    return cuts


def _saddle(part: np.ndarray) -> np.ndarray:
    """The column (bool) between two sector apices of one region: panels whose fans touch below their tops.

    The first row of the region in each column dips to a minimum at each apex; between two apices it rises to a
    saddle. A saddle at least ``_SADDLE`` of the region's height below both apices, with ``_PANEL_SHARE`` of the
    region on either side, separates two panels (one sector's top edge is a single dip).
    """
    height, width = part.shape
    cut = np.zeros(width, bool)
    filled = part.any(axis=0)
    if filled.sum() < 20:
        return cut
    first = np.where(filled, part.argmax(axis=0), height).astype(np.float64)
    first = np.convolve(first, np.ones(5) / 5, mode="same")
    area = np.cumsum(part.sum(axis=0))
    total = float(area[-1])
    left = np.minimum.accumulate(first)  # left[x]: the highest top at or left of column x
    right = np.minimum.accumulate(first[::-1])[::-1]  # right[x]: at or right of it
    x = np.arange(1, width - 1)
    depth = first[x] - np.maximum(left[x - 1], right[x + 1])
    depth[np.minimum(area[x], total - area[x]) < _PANEL_SHARE * total] = 0.0  # a side too small to be a panel
    if depth.size and depth.max() > 0 and depth.max() >= _SADDLE * height:
        where = int(x[np.argmax(depth)])  # the first column of the deepest saddle
        cut[max(0, where - 1):where + 2] = True
    return cut


def _dark_runs(columns: np.ndarray, lit: np.ndarray, part: np.ndarray) -> np.ndarray:
    """The runs of ``columns`` (bool, the part's columns) where the median frame is dark (``lit``, bool, the part's
    bounding box: pixels above the background): a seam between two panels, not a band of one field that changes
    too little to count as live (a coarse coder skips still blocks; colour flow is not grey)."""
    share = lit.mean(axis=0)
    typical = float(np.median(share[part.any(axis=0)]))
    out = columns.copy()
    n, runs = cv2.connectedComponents(columns.astype(np.uint8)[None, :], connectivity=4)
    for k in range(1, n):
        run = runs[0] == k
        if share[run].mean() > _SEAM_LIT * typical:
            out[run] = False
    return out


def _row_edges(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first column of ``box`` (bool) and the column after its last (0 and the width in an empty row)."""
    return box.argmax(axis=1), box.shape[1] - box[:, ::-1].argmax(axis=1)


def _step(box: np.ndarray) -> np.ndarray:
    """The cut (bool, ``box``'s shape) around a narrower panel stacked below a wider one in one region.

    Both side edges of the region (its first and last column in each row) hold still along a band of rows (a tenth
    of its height), step inwards by at least ``_STEP`` of its width within the next tenth, and hold still again
    along the band below; "still" is at most ``_STEADY`` of the width, and a quarter of the smaller step: a
    sector's or a trapezoid's flanks drift steadily. Each side holds ``_PANEL_SHARE`` of the region, and the lower
    panel stays narrow to its end (a waist of one field, its dark flanks, widens again). The cut runs along the
    seam (the first row where an edge has made half its step) and down both sides of the lower panel, so the
    wider panel's bottom corners beside it stay with the wider one.

    A narrower panel *above* a wider one is not looked for: that is also the shape of a sector whose flanks reach
    the frame's sides (two LITFL crops among the real clips).
    """
    height, width = box.shape
    cut = np.zeros(box.shape, bool)
    band = max(8, int(0.1 * height))
    rows = np.arange(band, height - 2 * band)  # r: the band above is rows r - band .. r, the band below r + band ..
    if rows.size == 0:
        return cut
    filled = box.any(axis=1)
    left, right = (edge.astype(np.float64) for edge in _row_edges(box))
    least = _STEP * width
    area = np.cumsum(box.sum(axis=1))
    # Every band of rows at once: window i holds rows i .. i + band; the band above r is window r - band, below r
    # is window r + band.
    bands = [np.lib.stride_tricks.sliding_window_view(a, band) for a in (left, right)]
    medians = [np.median(b, axis=1) for b in bands]
    spans = [np.ptp(b, axis=1) for b in bands]
    whole = np.lib.stride_tricks.sliding_window_view(filled, band).all(axis=1)
    above, below = rows - band, rows + band
    left_a, right_a = medians[0][above], medians[1][above]
    left_b, right_b = medians[0][below], medians[1][below]
    step = np.minimum(left_b - left_a, right_a - right_b)
    drift = np.max([spans[0][above], spans[1][above], spans[0][below], spans[1][below]], axis=0)
    sides = np.minimum(area[rows - 1], area[-1] - area[rows + band - 1])
    ok = (whole[above] & whole[below] & (step >= least) & (drift <= np.minimum(_STEADY * width + 2, step / 4))
          & (sides >= _PANEL_SHARE * area[-1]))
    for i in np.flatnonzero(ok):
        r = int(rows[i])
        la, ra, lb, rb, st = (float(v[i]) for v in (left_a, right_a, left_b, right_b, step))
        rest = slice(r + band, height)
        inside = filled[rest]
        if (left[rest][inside] < la + st / 2).any() or (right[rest][inside] > ra - st / 2).any():
            continue
        moved = (left[r:r + band] - la >= (lb - la) / 2) | (ra - right[r:r + band] >= (ra - rb) / 2)
        seam = r + int(np.argmax(moved)) if moved.any() else r + band // 2
        x0, x1 = max(0, int(lb) - 2), min(width, int(rb) + 2)
        cut[max(0, seam - 1):seam + 1, x0:x1] = True
        cut[seam:, x0:x0 + 2] = True
        cut[seam:, max(x0, x1 - 2):x1] = True
        return cut
    return cut


def _split_panels(labels: np.ndarray, live: np.ndarray, lit: np.ndarray, *, min_size: float) -> np.ndarray:
    """Split candidate regions that join side-by-side (or stacked) panels at valleys of their column (row) profile
    of live speckle that are dark in the median frame (``lit``, bool: above the background): panels touching
    through a ruler, a label or a thin seam come apart; a single sector does not. Failing those, sectors touching
    below their tops part between their apices (``_saddle``), stacked panels at a neck of the region's span, and a
    narrower panel under a wider one where both side edges step in (``_step``)."""
    out = np.zeros(labels.shape, np.int32)
    queue = [labels == i for i in range(1, int(labels.max()) + 1)]
    count = 0
    for _ in range(64):  # panels of a grid: a few splits each
        if not queue:
            break
        part = queue.pop()
        if part.sum() < min_size:
            continue
        evidence = part & live
        ys, xs = np.nonzero(part)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        cut = np.zeros(part.shape, bool)
        columns = _valleys(evidence[y0:y1, x0:x1].sum(axis=0))
        if columns.any():
            columns = _dark_runs(columns, lit[y0:y1, x0:x1], part[y0:y1, x0:x1])
        if not columns.any():  # sectors side by side, touching at depth: two apices, a high saddle between them
            columns = _saddle(part[y0:y1, x0:x1])
        if columns.any():
            cut[:, x0:x1] = columns[None, :]
        else:  # stacked panels: the region itself narrows (a label row, apex against arc); dim, still bands
            # under the pleura (aerated lung between A-lines) keep the region's width and are no valley
            box = part[y0:y1, x0:x1]
            rows = _valleys(box.sum(axis=1))
            if not rows.any():  # a neck the dark chambers and effusions of one field cannot make: its span
                first, end = _row_edges(box)
                rows = _valleys(np.where(box.any(axis=1), end - first, 0), _NECK)
            if rows.any():
                cut[y0:y1, :] = rows[:, None]
            else:  # a narrower panel stacked under a wider one, touching: both side edges step in at one row
                cut[y0:y1, x0:x1] = _step(box)
        if not cut.any():
            count += 1
            out[part] = count
            continue
        n, pieces = cv2.connectedComponents((part & ~cut).astype(np.uint8), connectivity=8)
        queue.extend(pieces == i for i in range(1, n))
    else:  # pragma: no cover - guard against pathological masks: keep what is left as it is
        for part in queue:
            count += 1
            out[part] = count
    return out


def _best_component(labels: np.ndarray, live: np.ndarray) -> np.ndarray | None:
    """The candidate with the most live pixels; among panels within 10% of it, the left/top one (the release kept
    the left panel of side-by-side clips)."""
    n = int(labels.max()) + 1
    if n <= 1:
        return None
    counts = np.bincount(labels[live], minlength=n)[1:]
    if counts.max() == 0:
        return None
    lefts = [int(np.flatnonzero((labels == i).any(axis=0))[0]) for i in range(1, n)]
    best = max(range(1, n), key=lambda i: (counts[i - 1] >= 0.9 * counts.max(), -lefts[i - 1], counts[i - 1]))
    return labels == best


def _probe_of(region: np.ndarray, bbox: Window, gray_med: np.ndarray | None = None, black: float = 0.0) -> str:
    """``convex`` when the top edge of the field arcs down towards its sides, ``linear`` when it is flat.

    The arc is measured as how much lower the field starts in its outer tenths of columns than in its central
    fifth, over the field's height. A sector keeps that arc when it was cropped to a square around it (the corners
    above the arc stay black), where the fill of its bounding box no longer tells it from a rectangle.

    Where the region's black is lifted (its darkest pixels ``_LIFTED`` above the frame's ``black``: a screen filmed
    by a phone), the corners above a sector's arc are that flat black, inside the region: the arc is read on the
    region's lit part (``gray_med`` smoothed 5x5 more than ``_PLATEAU`` above that level, opened 5x5) instead.
    Measured on the 90 real clips, the 90 simulated ones and the 50 truth clips' seven variants, this changes 15
    probes, all to the right one: 13 filmed copies, one letterboxed, and LITFL's "Pneumonia" crop.
    """
    level = _own_black(region, gray_med, black) if gray_med is not None else None
    if level is not None:
        lit = (region & (cv2.blur(gray_med, (5, 5)) > level + _PLATEAU)).astype(np.uint8)
        lit = cv2.morphologyEx(lit, cv2.MORPH_OPEN, _kernel(5))
        x, y, w, h = cv2.boundingRect(lit)
        if w and h:
            region, bbox = lit > 0, Window(x, y, w, h)
    sub = region[bbox.y:bbox.y + bbox.h, bbox.x:bbox.x + bbox.w]
    columns = np.flatnonzero(sub.any(axis=0))
    if columns.size < 10:
        return "linear"
    first = sub[:, columns].argmax(axis=0).astype(np.float64)  # first row of the field in each column
    n = columns.size
    centre = first[n // 2 - n // 10: n // 2 + n // 10 + 1].mean()
    sides = np.concatenate([first[: n // 10], first[n - n // 10:]]).mean()
    return "convex" if (sides - centre) / bbox.h >= _ARC else "linear"


def window_for(bbox: Window, probe: str, width: int, height: int) -> Window:
    """The crop window for a field of view ``bbox`` in a ``width`` x ``height`` frame.

    Linear: the field's bounding box. Convex: a square (the paper's crops) of side the field's larger extent, as
    far as the frame allows, anchored at the top of the field: the skin line and the pleural line are what lung
    ultrasound is read for, so a field taller than the frame is wide gives up depth, never its top. The square is
    centred on the field across, shifted to stay inside the frame, and moves up from the top of the field only as
    far as it must to fit the frame. A field wider than the frame is tall cannot fit a square without losing the
    sides of its top: its window is the field's width by as much depth as the frame holds below its top.
    """
    if probe == "linear":
        return bbox
    if bbox.w > height:
        return Window(bbox.x, bbox.y, bbox.w, height - bbox.y)
    side = min(max(bbox.w, bbox.h), width, height)
    x = int(round(min(max(bbox.x + bbox.w / 2 - side / 2, 0), width - side)))
    y = min(bbox.y, height - side)
    return Window(x, y, side, side)


def _fov_from(grays: Sequence[np.ndarray], chromas: Sequence[np.ndarray], clip_id: str) -> FieldOfView:
    height, width = grays[0].shape
    labels, live, gray_med, black, image = _candidates(grays, chromas)
    part = _best_component(labels, live)
    if part is None or part.sum() < _MIN_FOV_SHARE * width * height:
        raise ClipError(f"{clip_id}: no ultrasound field of view found (nothing grey that changes like speckle)")
    part = _without_panel_black(part, gray_med, black)
    part = _near_field_above(part, labels)
    part = _cut_at_rulers(part, (labels > 0) & ~part, gray_med, grays)
    region = _extend_top(_trim_static_edges(_hull(part), grays), grays, gray_med, black)
    # The near field given back can end in the interface line drawn on the image's first row (coding noise from
    # the tissue under it makes it look alive): take it off again.
    region = _trim_static_edges(region, grays)
    opening = _opening_size(height, width)
    region = _restore_apex(_restore_corners(region, image, opening), image, opening)
    region = _trim_top_rule(region, gray_med, black)
    inside = gray_med[region]
    midgrey = float(((inside > black + 4) & (inside < 235)).mean())
    if midgrey < _MIN_MIDGREY:
        raise ClipError(
            f"{clip_id}: no ultrasound field of view found (the candidate region is {100 * midgrey:.0f}% mid-grey;"
            " text or a blank frame, not speckle)"
        )
    x, y, w, h = cv2.boundingRect(region.astype(np.uint8))
    bbox = Window(x, y, w, h)
    probe = _probe_of(region, bbox, gray_med, black)
    return FieldOfView(probe=probe, window=window_for(bbox, probe, width, height), bbox=bbox, region=region,
                       median=gray_med)


def _own_black(region: np.ndarray, gray_med: np.ndarray, black: float) -> float | None:
    """The level of ``region``'s own black (its darkest pixels, 2nd percentile of ``gray_med``) when it lies
    ``_LIFTED`` or more above the frame's ``black`` (a screen filmed by a phone); None when it does not."""
    level = float(np.percentile(gray_med[region], 2))
    return level if level >= black + _LIFTED else None


def _without_panel_black(part: np.ndarray, gray_med: np.ndarray, black: float) -> np.ndarray:
    """``part`` without the panel's own black, where that black lies above the frame's.

    A phone filming a monitor (or a screen grab pasted into a collage) lifts a panel's black to ~10 grey while the
    collage around it stays at 0: the whole panel rectangle is then above the background, and the field found is
    the rectangle, with the depth scale and labels beside the sector inside it. That black is a flat plateau at
    the region's darkest level (``_PLATEAU``) that reaches the region's top rows (the panel's top corners beside
    the sector's apex, or the screen's margin above its panels) and meets the tissue along straight side edges (a
    sector's flanks, a rectangle's sides). The field is then the largest piece left. Dark tissue is not taken: a
    deep field that fades to the noise (POCUS Atlas "suspected Covid": 31% of its region, not in its top rows),
    dark chambers and effusions (inside the field, not at its edge), rib shadows under the pleura (ragged edges,
    not one straight flank).
    Real clip 1364981565542047744 (a three-panel cardiac collage filmed off a monitor): the field was the bottom
    panel's rectangle, probe linear, its dotted depth scale and "A"/"B" labels inside the field."""
    level = _own_black(part, gray_med, black)
    if level is None:
        return part
    flat = (part & (gray_med <= level + _PLATEAU)).astype(np.uint8)
    edge = part & ~(cv2.erode(part.astype(np.uint8), _kernel(3)) > 0)
    rows = np.flatnonzero(part.any(axis=1))
    top = np.zeros_like(part)
    top[rows[0]:rows[0] + max(3, (rows[-1] + 1 - rows[0]) // 10)] = True
    n, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=8)
    area = float(part.sum())
    # The plateau: flat pieces of some size on the region's edge that reach its top rows.
    on_edge, on_top = np.zeros(n, bool), np.zeros(n, bool)
    on_edge[labels[edge]] = True
    on_top[labels[top]] = True
    keep = on_edge & on_top & (stats[:, cv2.CC_STAT_AREA] >= 0.02 * area)
    keep[0] = False
    plateau = keep[labels]
    if plateau.sum() < _PLATEAU_SHARE * area:
        return part
    rest = _largest(cv2.morphologyEx((part & ~plateau).astype(np.uint8), cv2.MORPH_OPEN, _kernel(5)) > 0) & part
    return rest if _straight_flank(plateau, rest) >= _FLANK_SHARE else part


def _largest(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _straight_flank(plateau: np.ndarray, tissue: np.ndarray) -> float:
    """The share of the rows where the plateau meets ``tissue``'s side edges, in the tissue's upper half (a
    sector's flanks; its arc is below), whose edge column lies within ``_FLANK_FIT`` of the side's length (at least
    3 px) of a line fitted to that side: the left edge and the right edge each get their own line (a wedge either
    side of an apex, or a screen's black all round a panel)."""
    rows = np.flatnonzero(tissue.any(axis=1))
    if rows.size == 0:
        return 0.0
    width = tissue.shape[1]
    upper = rows[rows <= (rows[0] + rows[-1]) // 2]
    first, stop = _row_edges(tissue[upper])
    near = total = 0
    for edge, out in ((first, -1), (stop - 1, 1)):
        beside = [plateau[upper, np.clip(edge + step * out, 0, width - 1)] for step in (1, 2)]
        meets = beside[0] | beside[1]
        if meets.sum() < 10:
            continue
        points = np.column_stack([edge[meets], upper[meets]]).astype(np.float32)
        vx, vy, x0, y0 = cv2.fitLine(points, cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        off = np.abs((points[:, 0] - x0) * vy - (points[:, 1] - y0) * vx)
        near += int((off <= max(3.0, _FLANK_FIT * float(np.hypot(*np.ptp(points, axis=0))))).sum())
        total += len(points)
    return near / total if total else 0.0


def _near_field_above(part: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``part`` with the candidate regions above it that are its near field (see ``_NEAR_BAND``).

    A clip cropped to the image starts at the skin: the chest wall reaches the frame's top edge, and a dark layer
    under it (fat, an anechoic band, the intercostal space) can leave it a candidate region of its own, too far
    above the field for :func:`_extend_top`. Each such band lies within the field's columns, spans at least half
    its width and lies along its top edge: the dark layer between them (the median gap between the band's last row
    and the field's first row, over their shared columns) is at most a fifth of the field's height (24 px of 140
    on the clip below).
    Real clip POCUS Atlas "Pneu-Atlas-pneumonia" re-coded, or at 0.6x: the window began at the pleura, the chest
    wall above it blanked (15-19% of the tissue)."""
    height, width = part.shape
    ys, xs = np.nonzero(part)
    top, tall = int(ys.min()), int(ys.max()) + 1 - int(ys.min())
    left, right = int(xs.min()), int(xs.max()) + 1
    slack = max(2, int(0.02 * width))
    out = part.copy()
    for k in range(1, int(labels.max()) + 1):
        band = (labels == k) & ~part
        if band.sum() < _MIN_FOV_SHARE * height * width:
            continue
        by, bx = np.nonzero(band)
        b_top, b_bottom, b_left, b_right = int(by.min()), int(by.max()) + 1, int(bx.min()), int(bx.max()) + 1
        if (b_top > max(2, 0.01 * height) or b_top >= top or b_bottom - b_top > _NEAR_BAND * tall
                or b_left < left - slack or b_right > right + slack or b_right - b_left < 0.5 * (right - left)):
            continue
        shared = np.flatnonzero(band.any(axis=0) & part.any(axis=0))
        if shared.size == 0:
            continue
        last = band.shape[0] - 1 - band[::-1, shared].argmax(axis=0)  # the band's last row in each shared column
        first = part[:, shared].argmax(axis=0)  # the field's first row there
        if float(np.median(first - last)) <= 0.2 * tall:
            out |= band
    return out


def _restore_corners(region: np.ndarray, image: np.ndarray, size: int) -> np.ndarray:
    """Give back the corners of the field that the opening of :func:`_candidates` rounded off (``size``: its
    kernel) at the top of the field: image pixels (``image``) within ``size`` of the region, inside the top fifth of
    the region's bounding box but below its first ``_LINE`` rows (an interface line drawn across the panel's top
    runs on past the image's corners). The box does not grow, so the window does not move, and a neighbouring
    panel is not taken in; lower down, what the opening took off beside the field is mostly ruler ticks drawn
    over its edge, which the blank outside the field removes.
    Real clips 1412524263630946310, 1460700066201669638 (flat-topped trapezoids) and LITFL H1N1 case 2 (a sector's
    near-field corner): the blank outside the field took the first rows of tissue at the top corners."""
    x, y, w, h = cv2.boundingRect(region.astype(np.uint8))
    grown = cv2.dilate(region.astype(np.uint8), _kernel(size)) > 0
    inside = np.zeros_like(region)
    inside[y + _LINE:y + max(size, h // 5), x:x + w] = True  # not the rows of an interface line on its top
    return _hull(region | (grown & image & inside))


def _restore_apex(region: np.ndarray, image: np.ndarray, size: int) -> np.ndarray:
    """Give back the tip of a sector's apex that the opening of :func:`_candidates` (``size``: its kernel) took
    off: where the field is narrower than the kernel, the opening removes it, so a phased-array sector started a
    few rows below its apex and the window cut the near field. Only for a pointed top (the region's first ``size``
    rows span less than half of its width; a flat top has no tip to lose, and rows above it may be an interface
    line). Row by row upwards, at most ``size`` rows: the image pixels (``image``) that touch the row below, while
    they are at least 3 px wide (a thin cursor line drawn up from the apex is not the field).
    Real clips 1346901214101958661, 1447995907203649537, 1550611179852050432 (phased-array sectors): the window
    began 4-7 rows below the apex."""
    x, y, w, h = cv2.boundingRect(region.astype(np.uint8))
    below = region[y]
    if y == 0 or np.ptp(np.flatnonzero(region[y:y + size].any(axis=0))) + 1 >= w / 2:
        return region
    out, top = region.copy(), y
    for row in range(y - 1, max(-1, y - size - 1), -1):
        touching = image[row] & (cv2.dilate(below.astype(np.uint8)[None], np.ones((1, 3), np.uint8))[0] > 0)
        if touching.sum() < 3:
            break
        out[row], below, top = touching, touching, row
    return region if top == y else _hull(out)


def _trim_top_rule(region: np.ndarray, gray_med: np.ndarray, black: float) -> np.ndarray:
    """Take off the field's first rows (at most ``_LINE``) where they are a rule drawn wider than the image: lit
    beyond both ends of the field a few rows lower (``2 * _LINE + 1``, below the corners), where that row is black.
    An image's row ends where its field does; a rule runs on past it. Coding blends the rule's last row with the
    tissue under it, so that row changes like tissue and :func:`_trim_static_edges` keeps it.
    Real clip 1460700066201669638 (a Butterfly trapezoid under a grey rule 400 px wide): the window began on the rule.
    """
    ys = np.flatnonzero(region.any(axis=1))
    top = int(ys[0])
    lit = black + _RIM // 2
    margin = 2  # past the blurred edge of the image
    out = region.copy()
    for row in range(top, top + _LINE):
        lower = row + 2 * _LINE + 1
        xs = np.flatnonzero(region[lower]) if lower < region.shape[0] else np.empty(0, int)
        if xs.size == 0:
            break
        dark = np.flatnonzero(gray_med[lower] <= lit)  # the image's row runs on to its blurred edge
        x0 = int(dark[dark < xs[0]].max(initial=-1)) + 1 - margin
        x1 = int(dark[dark > xs[-1]].min(initial=region.shape[1])) + margin
        if x0 < _LINE or x1 + _LINE > region.shape[1]:
            break
        sides = (slice(x0 - _LINE, x0), slice(x1, x1 + _LINE))
        if not all(bool((gray_med[row, s] > lit).all() and (gray_med[lower, s] <= lit).all()) for s in sides):
            break
        out[row] = False
    return out


def _trim_static_edges(region: np.ndarray, grays: Sequence[np.ndarray]) -> np.ndarray:
    """Take off static lines along the region's four edges: an interface rule drawn along a panel's top, a coloured
    border line beside it. At most ``_LINE`` rows or columns a side, each with >= 90% of its pixels in the region
    barely changing; a side static deeper than that is left as it is (a still clip, or still tissue)."""
    if len(grays) < 4:
        return region
    for axis in (0, 1):  # rows (top, bottom), then columns (left, right)
        for reverse in (False, True):
            region = _trim_side(region, grays, axis, reverse)
    return region


def _trim_side(region: np.ndarray, grays: Sequence[np.ndarray], axis: int, reverse: bool) -> np.ndarray:
    """One side of :func:`_trim_static_edges`. A line is static with >= 90% of its pixels barely changing
    (``_EDGE_STATIC``). Also a run with one line inside it at >= 80% (coding noise flickers where a drawn line meets
    moving tissue), when it ends on a static line and the next line is live (< ``_EDGE_LIVE`` static): a drawn line
    stops where the image starts to change; a field's still edge fades. A run is at most ``_LINE`` lines, or
    ``_LINE_SHARE`` of the frame's shorter side where that is more (a line is thicker in a clip scaled up).
    Real clip 1423818531095842818: mirrored, the panel's grey UI line read 94%, 89%, 93%, 93% static over an image
    13% static; at 1.5x it is 5 rows. The window began on the line."""
    thickest = max(_LINE, int(round(_LINE_SHARE * min(region.shape))))
    lines = np.flatnonzero(region.any(axis=1 - axis))  # rows (axis 0) or columns (axis 1) the region has
    if reverse:
        lines = lines[::-1]  # from the side in
    shares = []
    for index in lines[:thickest + 2]:
        inside = region[index] if axis == 0 else region[:, index]
        values = np.stack([(g[index] if axis == 0 else g[:, index])[inside] for g in grays]).astype(np.float32)
        shares.append(float((values.std(axis=0) <= _STATIC_STD).mean()))
        if shares[-1] < _EDGE_STATIC[1]:
            break
    static = [share >= _EDGE_STATIC[0] for share in shares]
    strict = static.index(False) if False in static else len(static)
    run = strict if 0 < strict <= thickest else 0
    if 0 < strict < len(shares) - 1 and shares[strict] >= _EDGE_STATIC[1]:  # one flickering line inside a run
        rest = static[strict + 1:]
        end = strict + 1 + (rest.index(False) if False in rest else len(rest))
        if end > strict + 1 and end <= thickest and end < len(shares) and shares[end] < _EDGE_LIVE:
            run = end
    if run == 0:
        return region
    order = lines[:run]
    out = region.copy()
    if axis == 0:
        out[order, :] = False
    else:
        out[:, order] = False
    return out


def _extend_top(region: np.ndarray, grays: Sequence[np.ndarray], gray_med: np.ndarray, black: float) -> np.ndarray:
    """Give back the near field the region lost: dim tissue under the probe, the skin line above an anechoic band.

    Right under the probe the image is often dark (subcutaneous fat, an anechoic band) and barely changes, so the
    live region can start below the skin line. Rows above the region's top, up to 10% of its height, with at least
    30% of their pixels across the top of the field alive (3 levels above the background and changing from frame
    to frame, unlike a static interface line or text; a sector's faint apex is narrower than its top), are tissue:
    the region grows up to the highest of them, unless they run on to the top of the search (a panel stacked above,
    not a near field).
    """
    ys, xs = np.nonzero(region)
    top, height = int(ys.min()), int(ys.max()) - int(ys.min()) + 1
    limit = max(0, top - int(0.1 * height))
    if limit >= top or len(grays) < 2:
        return region
    band = region[top:top + max(3, height // 50)]
    columns = np.flatnonzero(band.any(axis=0))  # the width of the field's top: the whole width or the apex
    x0, x1 = int(columns.min()), int(columns.max()) + 1
    std = _temporal_std([g[limit:top, x0:x1] for g in grays])
    alive = (gray_med[limit:top, x0:x1] > black + 3) & (std > _NEAR_STD)
    rows = np.flatnonzero(alive.mean(axis=1) >= 0.3)
    # The near field ends at the top of the frame or below background; tissue all the way up is another panel.
    if rows.size == 0 or (limit > 0 and rows.min() == 0):
        return region
    out = region.copy()
    out[limit + int(rows.min()):top, x0:x1] = True
    return out


def detect_fov(frames: Sequence[np.ndarray], *, clip_id: str = "clip") -> FieldOfView:
    """Find the ultrasound field of view in a sample of RGB uint8 frames of one clip.

    Raises :class:`ClipError` naming ``clip_id`` when no field of view is found (blank, text only, a photograph).
    """
    _check_frames(frames, clip_id)
    return _fov_from([_gray(f) for f in frames], [chroma_of(f) for f in frames], clip_id)


# ----------------------------------------------------------------------------------------------------------------
# Overlays


def _static_marks(
    grays: Sequence[np.ndarray], chromas: Sequence[np.ndarray], region: np.ndarray, colour_level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Main mask (window coordinates) and the static-colour part of it, from sampled frames already cut to the window."""
    gray_med = _median(grays) if len(grays) > 1 else grays[0]
    chroma_med = _median(chromas) if len(chromas) > 1 else chromas[0]
    spread = _spread(grays)
    height, width = gray_med.shape

    # Outside the field of view: anything not black is a mark. Keep a 2-pixel margin so the blurred sector edge
    # is not taken for one.
    outside = ~(cv2.dilate(region.astype(np.uint8), _kernel(5)) > 0)
    # Seeds: not black, or faint but static (dotted ruler lines of some vendors are ~25 grey); rims grown 3 px
    # (no ghost digits).
    black = float(np.percentile(gray_med, 2))
    std = _temporal_std(grays) if len(grays) >= 4 else None
    seeds = gray_med > _DARK
    if std is not None:
        seeds |= (gray_med > black + _FAINT) & (std <= 2 * _STATIC_STD)
    marks_out = _grow(outside & seeds, outside & (gray_med > _RIM // 2), steps=3)
    if std is not None:
        # Live grey speckle beside the field of view is a neighbouring panel that the square window takes in
        # (side-by-side clips): not this image, so inpainted too, dark parts included. Not above or below it:
        # a still image can fall apart into stacked pieces at a dark band, and its lung is not a neighbour.
        chroma_max = np.max(np.stack(chromas), axis=0)
        neighbour = outside & (std > 2 * _LIVE_STD) & (chroma_max < colour_level)
        neighbour = cv2.morphologyEx(neighbour.astype(np.uint8), cv2.MORPH_OPEN, _kernel(5))
        neighbour = cv2.morphologyEx(neighbour, cv2.MORPH_CLOSE, _kernel(_odd(min(height, width) / 30))) > 0
        beside = ~region.any(axis=0)[None, :]  # only columns left or right of the field (side-by-side panels)
        marks_out |= neighbour & outside & beside

    # Coloured marks present in most frames, anywhere in the window.
    coloured_share = np.mean(np.stack([c > colour_level for c in chromas]), axis=0)
    colour = coloured_share >= _STATIC_FREQ
    colour = _grow(colour, chroma_med > colour_level / 2)

    # Static bright text burned into a moving image.
    marks_in = np.zeros_like(colour)
    if std is not None:
        inner = ~outside  # the field of view and its margin
        rims = inner & (std <= 2 * _STATIC_STD) & (gray_med > _DARK)  # what a mark's coded rim may take
        bright_still = _bright_still(gray_med, std, inner)
        moving = float(np.percentile(spread[region], 90)) if region.any() else 0.0
        if moving >= 15:
            seeds = inner & (gray_med >= 200) & (std <= _STATIC_STD)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(seeds.astype(np.uint8), connectivity=8)
            # Text and markers are small but not single pixels; still speckle grains of a coded video are tiny.
            smallest, largest = max(8, 0.0002 * region.sum()), max(16, 0.01 * region.sum())
            keep = np.zeros(n, bool)
            areas = stats[1:, cv2.CC_STAT_AREA]
            # A large static component is a mark only near the border (a ruler touching the image), never deep
            # inside the lung; a small one only within the border band where vendors burn in logos and labels
            # (still, bright tissue deep in the lung of a quiet patient is static too: real clip 1451609510347513859).
            deep = cv2.erode(region.astype(np.uint8), _kernel(_odd(min(region.shape) / 50))) > 0
            depth_share = np.bincount(labels[deep], minlength=n)[1:] / np.maximum(areas, 1)
            core = cv2.erode(region.astype(np.uint8), _kernel(_odd(max(min(region.shape) / 8, 31)))) > 0
            core_share = np.bincount(labels[core], minlength=n)[1:] / np.maximum(areas, 1)
            keep[1:] = (areas >= smallest) & (((areas <= largest) & (core_share < 0.5)) | (depth_share < 0.2))
            for k in np.flatnonzero(keep):
                keep[k] = not _on_bright_ground(labels, k, stats[k], gray_med)
            marks_in = _grow(keep[labels], rims, steps=1)
            marks_in |= _badges(bright_still, gray_med, smallest)
        # Words anywhere over the field, moving or still (a caption across the lung)
        marks_in |= _grow(_text_lines(bright_still), rims, steps=2)
    rulers = colour & False
    if std is not None:
        rulers = _ruler_marks(gray_med, spread)
        rulers |= _faint_ruler_marks(gray_med, spread, region, found=rulers)
    return marks_out | colour | marks_in | rulers, colour


def _ground(blob: np.ndarray, gray: np.ndarray) -> float | None:
    """The median grey of ``gray`` in a ring 3-5 px around ``blob`` (uint8, ``gray``'s shape, with room around
    it), what a blob stands on; None when the ring is empty."""
    ring = (cv2.dilate(blob, _kernel(11)) > 0) & (cv2.dilate(blob, _kernel(5)) == 0)
    return float(np.median(gray[ring])) if ring.any() else None


def _on_bright_ground(labels: np.ndarray, k: int, stat: np.ndarray, gray_med: np.ndarray) -> bool:
    """True when component ``k`` of ``labels`` (``stat``: its row of connected-component stats) stands on bright
    ground: a ring 3-5 px out has median grey >= ``_BADGE_GREY``. That is the clipped crest of bright tissue --
    speckle at 255 cannot get brighter, so it is as static as a mark -- fading into the bright tissue around it; a
    burned-in mark stands on darker ground. Of the static components the 90 real clips keep inside the field, the
    marks' ground is 38 grey, the crest's 252 (collage 1364981565542047744 once its field is the sector: a
    reflector at the sector's bottom edge, 1.3% of the tissue masked)."""
    x, y, w, h = (int(v) for v in stat[:4])
    box = (slice(max(0, y - 5), y + h + 5), slice(max(0, x - 5), x + w + 5))
    ground = _ground((labels[box] == k).astype(np.uint8), gray_med[box])
    return ground is not None and ground >= _BADGE_GREY


def _bright_still(gray_med: np.ndarray, std: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Pixels of ``inner`` bright enough to be drawn (>= ``_BADGE_GREY``) that do not change (temporal std <=
    ``_STATIC_STD``): what drawn plates (:func:`_badges`) and words (:func:`_text_lines`) are made of."""
    return inner & (std <= _STATIC_STD) & (gray_med >= _BADGE_GREY)


def _text_lines(bright_still: np.ndarray) -> np.ndarray:
    """Words burned in anywhere over the field (a caption, a label across the lung): rows of at least
    ``_GLYPHS`` glyphs. A glyph is a component of ``bright_still`` (:func:`_bright_still`) shaped like a
    character: at least 5 px and at most 12% of the window tall, at most 1.5x as wide as tall (an A-line's still
    pieces are long). Glyphs of one word have heights within 1.6x, share 60% of the smaller height,
    and stand at most 1.2 heights apart; a word takes the static bright pieces inside its box (half a glyph taller):
    the dots of i and j, its punctuation. Still tissue can be as bright and static as text (a held breath, a GIF),
    but its bright static pieces do not line up in rows of character-sized strokes: no word is found on any of the
    90 real clips, while captions drawn across each of them went from a median 14-90% masked to 100%
    (``benchmarks/bench_captions.py``).
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright_still.astype(np.uint8), connectivity=8)
    tallest = 0.12 * bright_still.shape[0]
    glyphs = [i for i in range(1, n) if 5 <= stats[i, cv2.CC_STAT_HEIGHT] <= tallest
              and stats[i, cv2.CC_STAT_WIDTH] <= 1.5 * stats[i, cv2.CC_STAT_HEIGHT]]
    word = list(range(len(glyphs)))  # union-find over neighbouring glyphs

    def root(k: int) -> int:
        while word[k] != k:
            word[k] = word[word[k]]
            k = word[k]
        return k

    glyphs.sort(key=lambda i: stats[i, cv2.CC_STAT_LEFT])
    xs, ys, ws, hs = (stats[glyphs, c].astype(np.float64) for c in range(4))
    for p in range(len(glyphs)):
        # neighbours lie to the right within 1.2 x 1.6 of this glyph's height (x sorted): a band, not all glyphs
        end = int(np.searchsorted(xs, xs[p] + ws[p] + 1.92 * hs[p], side="right"))
        x2, y2, w2, h2 = xs[p + 1:end], ys[p + 1:end], ws[p + 1:end], hs[p + 1:end]
        taller, shorter = np.maximum(hs[p], h2), np.minimum(hs[p], h2)
        near = ((taller <= 1.6 * shorter)
                & (np.minimum(ys[p] + hs[p], y2 + h2) - np.maximum(ys[p], y2) >= 0.6 * shorter)
                & (np.maximum(xs[p], x2) - np.minimum(xs[p] + ws[p], x2 + w2) <= 1.2 * taller))
        for q in np.flatnonzero(near) + p + 1:
            word[root(p)] = root(int(q))
    words: dict[int, list[int]] = {}
    for k, i in enumerate(glyphs):
        words.setdefault(root(k), []).append(i)
    keep = np.zeros(n, bool)
    x, y, w, h = (stats[1:, c] for c in range(4))
    for members in (m for m in words.values() if len(m) >= _GLYPHS):
        # the word's box, half a glyph taller: the dots of i and j, punctuation and thin strokes in it are its own
        top = min(stats[i, 1] for i in members)
        bottom = max(stats[i, 1] + stats[i, 3] for i in members)
        left = min(stats[i, 0] for i in members)
        right = max(stats[i, 0] + stats[i, 2] for i in members)
        pad = (bottom - top) // 2
        keep[1:] |= (x >= left - pad) & (x + w <= right + pad) & (y >= top - pad) & (y + h <= bottom + pad)
    return keep[labels]


def _badges(bright_still: np.ndarray, gray_med: np.ndarray, smallest: float) -> np.ndarray:
    """Static drawn plates inside the field (an icon's disc, a label's box), of any size up to 40% of the window:
    blobs of ``bright_still`` (:func:`_bright_still`) that look drawn as a white pointer does
    (:func:`_isolated_blobs`: they fill at least half of their hull, and their surroundings, a few pixels out, are
    dark all around), compact (at most twice as long as wide: a bright pleural segment over dark lung is long) and
    flat (70% of their pixels within 15 grey levels of their median: a still bright echo is graded; the icon: 91%). Still bright tissue is as static,
    but fades into grey over many pixels (its surroundings measure >= 132 on the real clips; 1378797632240414723's
    probe icon, a grey 195-205 disc 30 px across: 17). The mark is the blob's hull (the glyph drawn inside it too),
    grown over its rim."""
    out = np.zeros(gray_med.shape, bool)
    for box, blob, hull in _isolated_blobs(bright_still, gray_med, max(smallest, 30)):
        tall, wide = (int(np.ptp(a)) + 1 for a in np.nonzero(blob))
        if max(tall, wide) > 2 * min(tall, wide):  # a bright line over dark lung (a pleural segment) is long
            continue
        values = gray_med[box][blob > 0].astype(np.int16)
        if np.mean(np.abs(values - np.median(values)) <= 15) < 0.7:  # drawn flat; a bright echo is graded
            continue
        plate = np.zeros_like(blob)
        cv2.fillConvexPoly(plate, hull, 1)
        out[box] |= _grow(plate > 0, gray_med[box] > _RIM, steps=1)
    return out


def _regular_ticks(column: np.ndarray, longest: int, least: int = _RULER_TICKS) -> int:
    """How many short runs of ``column`` (bool) start at the regular spacing of a ruler's ticks (0 if < ``least``)."""
    edges = np.diff(np.concatenate(([0], column.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    starts = starts[stops - starts <= longest]
    if starts.size < least:
        return 0
    gaps = np.diff(starts)
    step = float(np.median(gaps))
    return int((np.abs(gaps - step) <= max(2.0, 0.15 * step)).sum())


def _ruler_ticks(gray_med: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """``(steady, rulers)``: bright steady thin strokes (bool), and each vertical depth ruler among them as
    ``(first column, end column, first row, end row)`` of its ticks.

    A ruler is a column of short, bright, steady tick marks at a regular spacing (speckle is neither steady nor
    regular; a bright echo of still tissue is steady too, but not a column of regularly spaced short runs).
    """
    height, width = gray_med.shape
    # Ticks and digits are thin strokes: they stand out of a small opening (bright tissue is broad and does not).
    strokes = cv2.morphologyEx(gray_med, cv2.MORPH_TOPHAT, _kernel(_odd(0.012 * min(height, width)) + 2))
    steady = (gray_med >= _RULER_GREY) & (spread <= np.maximum(30, 0.4 * gray_med)) & (strokes >= _STROKE)
    longest = max(3, int(round(0.015 * height)))
    score = np.array([_regular_ticks(steady[:, x], longest) for x in range(width)])
    columns = np.flatnonzero(score >= _RULER_TICKS)
    rulers = []
    # contiguous clusters of ruler columns (a ruler's line and tick ends are a few pixels wide)
    for cluster in np.split(columns, np.flatnonzero(np.diff(columns) > 3) + 1) if columns.size else ():
        a, b = int(cluster[0]), int(cluster[-1]) + 1
        rows = np.flatnonzero(steady[:, a:b].any(axis=1))
        rulers.append((a, b, int(rows[0]), int(rows[-1]) + 1))
    return steady, rulers


def _ruler_marks(gray_med: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Depth rulers (vertical), in the window, also where they are drawn over the edge of the image: everything
    bright and steady in a band around a ruler's columns (its ticks, and the digits beside them), over the rows its
    ticks span, is a mark."""
    height, width = gray_med.shape
    steady, rulers = _ruler_ticks(gray_med, spread)
    marks = np.zeros((height, width), bool)
    reach = max(4, int(round(0.05 * min(height, width))))
    for a, b, top, end in rulers:
        r0, r1 = max(0, top - reach // 2), min(height, end + reach // 2)
        c0, c1 = max(0, a - reach), min(width, b + reach)
        band = np.zeros((height, width), bool)
        band[r0:r1, c0:c1] = True
        seeds = band & steady
        marks |= _grow(seeds, band & (gray_med > _DARK), steps=2)
    return marks


def _cut_at_rulers(
    part: np.ndarray, others: np.ndarray, gray_med: np.ndarray, grays: Sequence[np.ndarray]
) -> np.ndarray:
    """A panel ends at its depth ruler. A piece of the candidate region beyond a ruler that runs down half of the
    region's rows, on the side with less of it, that touches another candidate panel (``others``, bool) is the
    flank of that panel, met below the ruler: it is taken off. The ruler's own columns stay (devices draw it over
    the edge of the image), and so does field beyond a ruler with no panel next to it (a ruler drawn over a
    sector's flank). A ruler is a few pixels wide; a wide block of regular stripes is not one.
    Real clip 1418762440221790210: three sector panels side by side; the middle one took in its right
    neighbour's flank under its ruler."""
    if len(grays) < 2 or not others.any():
        return part
    width = part.shape[1]
    _, rulers = _ruler_ticks(gray_med, _spread(grays))
    ys = np.flatnonzero(part.any(axis=1))
    y0, y1 = int(ys[0]), int(ys[-1]) + 1
    near = _kernel(9)  # across the seam a split leaves between two pieces of one candidate (3 columns)
    for a, b, top, end in rulers:
        if b - a > max(8, 0.02 * width) or min(end, y1) - max(top, y0) < 0.5 * (y1 - y0):
            continue
        left, right = int(part[:, :a].sum()), int(part[:, b:].sum())
        if min(left, right) == 0:
            continue
        beyond = part.copy()
        if left >= right:
            beyond[:, :b] = False
        else:
            beyond[:, a:] = False
        if (cv2.dilate(beyond.astype(np.uint8), near).astype(bool) & others).any():
            part = part & ~beyond
    return part


def _faint_ruler_marks(
    gray_med: np.ndarray, spread: np.ndarray, region: np.ndarray, *, found: np.ndarray | None = None
) -> np.ndarray:
    """Small, faint depth rulers (ticks 40-120 grey, a few pixels apart) at the border of the field of view.

    The scale-aware second pass of :func:`_ruler_marks`: a tick is a short steady stroke brighter than the rows a
    tick spacing above and below it (a vertical top-hat whose length follows the window's height), and a ruler is
    a column of >= ``_FAINT_TICKS`` of them at a regular spacing, outside the lung core of the field. Its digits
    (bright, steady, thin) and ticks in a band around it are marks; live lung beside it changes and is left alone
    (real clip 1390908611967193088: digits "1"-"4" beside a 7-grey-level tick column on the image's right edge).
    A column that the first pass already masked (``found``) is left to it: its band is wider here and would take in
    bright lung beside a big ruler's digits (real clip 1451609510347513859). A deep field's ruler may have one tick
    a centimetre and no minor ticks (real clip 1379512336206159879, 16 cm: 13 ticks, 12 regular gaps).
    """
    height, width = gray_med.shape
    marks = np.zeros((height, width), bool)
    steady = spread <= np.maximum(30, 0.6 * gray_med)
    vertical = cv2.getStructuringElement(cv2.MORPH_RECT, (1, _odd(0.04 * height)))
    lifted = gray_med.astype(np.int16) - cv2.morphologyEx(gray_med, cv2.MORPH_OPEN, vertical)
    ticks = (lifted >= _TICK_CONTRAST) & (gray_med >= _FAINT_GREY) & steady
    # the lung core, also away from the window's edges (a linear field fills its window)
    core = cv2.erode(region.astype(np.uint8), _kernel(_odd(max(min(height, width) / 8, 31))),
                     borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    ticks &= ~core
    longest = max(3, int(round(0.015 * height)))
    # A 1-px tick of a resized clip lands in one column or its neighbour, tick by tick: read pairs of columns.
    paired = ticks.copy()
    paired[:, 1:] |= ticks[:, :-1]
    score = np.array([_regular_ticks(paired[:, x], longest, _FAINT_TICKS) for x in range(width)])
    columns = np.flatnonzero(score >= _FAINT_TICKS)
    if columns.size == 0:
        return marks
    strokes = cv2.morphologyEx(gray_med, cv2.MORPH_TOPHAT, _kernel(_odd(0.012 * min(height, width)) + 2))
    digits = steady & (gray_med >= _RULER_GREY) & (strokes >= _STROKE) & ~core
    reach = max(4, int(round(0.05 * min(height, width))))
    for cluster in np.split(columns, np.flatnonzero(np.diff(columns) > 3) + 1):
        a, b = int(cluster[0]), int(cluster[-1]) + 1
        if found is not None and found[:, a:b].any():
            continue
        rows = np.flatnonzero(paired[:, a:b].any(axis=1))
        r0, r1 = max(0, rows[0] - reach), min(height, rows[-1] + 1 + reach)
        band = np.zeros((height, width), bool)
        band[r0:r1, max(0, a - reach):min(width, b + reach)] = True
        seeds = band & (digits | ticks)
        marks |= _grow(seeds, band & (gray_med > _DARK), steps=2)
    return marks


def _pointer(
    coloured: np.ndarray, static_colour: np.ndarray, colour_level_mask: np.ndarray | None, min_area: int
) -> np.ndarray | None:
    """The moving coloured blob(s) of one frame, or None."""
    moving = coloured & ~(cv2.dilate(static_colour.astype(np.uint8), _kernel(5)) > 0)
    if moving.sum() < min_area:
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(moving.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    if not keep.any():
        return None
    blob = keep[labels]
    if colour_level_mask is not None:
        blob = _grow(blob, colour_level_mask)
    return blob


def _isolated_blobs(
    seeds: np.ndarray, gray: np.ndarray, min_area: float
) -> Iterator[tuple[tuple[slice, slice], np.ndarray, np.ndarray]]:
    """``(box, blob, hull)`` for each blob of ``seeds`` (bool) that looks drawn rather than echoed: at least
    ``min_area`` px, at most 40% of the image's smaller side across (a mark, not a panel), filling at least half of
    its convex hull, with surroundings a few pixels out that are dark all around (median grey <= ``_WHITE_EDGE``:
    bright tissue fades into grey over many pixels). ``box`` slices ``gray`` around the blob with an 8-px margin;
    ``blob`` (uint8) and ``hull`` (OpenCV points) are in the box's coordinates."""
    height, width = gray.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(seeds.astype(np.uint8), connectivity=8)
    # Size first, for all blobs at once: a bright frame has thousands of saturated speckle grains, one pixel each.
    sized = (stats[:, cv2.CC_STAT_AREA] >= min_area) & (
        np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) <= 0.4 * min(height, width))
    for i in np.flatnonzero(sized[1:]) + 1:
        x, y, w, h, area = (int(v) for v in stats[i])
        box = (slice(max(0, y - 8), min(height, y + h + 8)), slice(max(0, x - 8), min(width, x + w + 8)))
        blob = (labels[box] == i).astype(np.uint8)
        ground = _ground(blob, gray[box])
        if ground is None or ground > _WHITE_EDGE:
            continue
        hull = cv2.convexHull(cv2.findNonZero(blob))
        if area < 0.5 * max(cv2.contourArea(hull), 1.0):
            continue
        yield box, blob, hull


def _white_pointer(gray: np.ndarray, chroma: np.ndarray, min_area: int) -> np.ndarray | None:
    """White drawn pointers (arrows) of one frame, or None: blobs of flat near-white grey whose surroundings, a few
    pixels out, are dark all around, and which fill much of their convex hull (:func:`_isolated_blobs`). Bright
    tissue (pleura, consolidation) fades into grey over many pixels and is rarely flat white; static white marks
    are removed by the caller."""
    white = (gray >= _WHITE) & (chroma < _MIN_CHROMA)
    if int(white.sum()) < min_area:
        return None
    out = np.zeros(gray.shape, bool)
    for box, blob, _hull in _isolated_blobs(white, gray, min_area):
        out[box] |= _grow(blob > 0, gray[box] > _WHITE_EDGE, steps=3)
    return out if out.any() else None


def _min_pointer_area(window: Window) -> int:
    return max(6, int(0.0002 * window.w * window.h))


def _lung_core(region_win: np.ndarray) -> np.ndarray:
    size = _odd(min(region_win.shape) / 20)
    return cv2.erode(region_win.astype(np.uint8), _kernel(size)) > 0


def detect_overlays(
    frames: Sequence[np.ndarray],
    window: Window,
    *,
    region: np.ndarray | None = None,
    indices: Sequence[int] | None = None,
    pointer_policy: str = "mask",
    clip_id: str = "clip",
) -> Overlays:
    """Overlay masks, in ``window`` coordinates, for RGB uint8 ``frames`` of one clip.

    ``region`` is the field of view (bool, source-frame shape; default: :func:`detect_fov` on the same frames).
    ``indices`` numbers the frames (default 0, 1, ...); frame masks and dropped frames use these numbers.
    """
    check_choice("pointer_policy", pointer_policy, POINTER_POLICIES)
    width, height = _check_frames(frames, clip_id)
    if not window.fits(width, height):
        raise CovidxError(f"{clip_id}: window {window} does not fit the {width}x{height} frames")
    indices = list(range(len(frames))) if indices is None else list(indices)
    if len(indices) != len(frames):
        raise CovidxError(f"{clip_id}: {len(indices)} indices for {len(frames)} frames")
    median = None  # the full frames' median grey, which detect_fov computes on the same frames
    if region is None:
        fov = detect_fov(frames, clip_id=clip_id)
        region, median = fov.region, fov.median
    rows, cols = window.slices()
    grays = [_gray(f[rows, cols]) for f in frames]
    full_chromas = [chroma_of(f) for f in frames]  # the window's, and the ring around it (_rims_from_beyond)
    chromas = [c[rows, cols] for c in full_chromas]
    region_win = region[rows, cols]
    level = _tint_threshold(_median(chromas), _median(grays), region_win)
    main, static_colour = _static_marks(grays, chromas, region_win, level)
    main |= _rims_from_beyond(full_chromas, window, region, level)
    if median is None:
        median = _median([_gray(f) for f in frames])
    main |= _scale_gaps(median, region, window)
    core = _lung_core(region_win)
    frame_masks: dict[int, np.ndarray] = {}
    dropped: list[int] = []
    min_area = _min_pointer_area(window)
    still = _still_bright(grays, main)
    for index, chroma, gray in zip(indices, chromas, grays, strict=True):
        blob = _pointer(chroma > level, static_colour, chroma > level / 2, min_area)
        white = _white_pointer(gray, chroma, 4 * min_area)
        if white is not None and (white & ~still).sum() >= 4 * min_area:
            blob = (white & ~still) if blob is None else blob | (white & ~still)
        if blob is not None:
            _apply_pointer_policy(index, blob, main, core, pointer_policy, frame_masks, dropped)
    return Overlays(main_mask=main, frame_masks=frame_masks, dropped_frames=tuple(dropped))


def _colour_box(grays: Sequence[np.ndarray], blobs: Iterable[np.ndarray], main: np.ndarray) -> np.ndarray:
    """The outline of a colour-Doppler box (window coordinates): the thin line the scanner draws around the region it
    colours. Coded over changing tissue, it is not static in grey level, but it is a thin ridge on almost every frame
    (``_BOX_FREQ``), unlike speckle. Near the colour seen on the clip (``blobs``, within a third of the window
    around it: the flow may fill a corner of its box) and not already masked (``main``: rulers), the ridges that
    run straight for ``_BOX_LINE`` of the window (a Hough transform) are the box when two of them, steeper than 45
    degrees, flank the colour (its sides; the pleura and A-lines are flat). With the straight stretches at the
    sides' ends (its top and bottom), each run on along its ridge, they span a polygon, and the ridges along its
    boundary (on half of the frames: the arcs of a sector's box break up in coding) are the outline. Not grown:
    the line is 1-2 px, its rim is in the dilation every mask gets.
    Only on colour-Doppler clips: on B-mode, ridges on most frames that run straight are the pleura and A-lines.
    Real clips 1379512336206159879, 1418762440221790210, 1447995907203649537, 1609635280687865857: the outline was
    left in (a third to a half of each box's marks)."""
    envelope = np.zeros(grays[0].shape, bool)
    for blob in blobs:
        envelope |= blob
    out = np.zeros_like(envelope)
    if not envelope.any() or len(grays) < 4:
        return out
    side = min(envelope.shape)
    kernel = _kernel(5)
    freq = np.mean([cv2.morphologyEx(g, cv2.MORPH_TOPHAT, kernel) > _BOX_RIDGE for g in grays], axis=0)
    x, y, w, h = cv2.boundingRect(envelope.astype(np.uint8))
    margin = side // 3
    unmasked = ~(cv2.dilate(main.astype(np.uint8), kernel) > 0)
    near = np.zeros_like(envelope)
    near[max(0, y - margin):y + h + margin, max(0, x - margin):x + w + margin] = True
    ridge = ((freq >= _BOX_FREQ) & near & unmasked).astype(np.uint8) * 255
    lines = cv2.HoughLinesP(ridge, 1, np.pi / 180, threshold=30,
                            minLineLength=max(10, int(_BOX_LINE * side)), maxLineGap=3)
    if lines is None:
        return out
    lines = lines.reshape(-1, 4).astype(int)
    centre = x + w / 2

    def flanks(found: np.ndarray) -> tuple[bool, bool]:
        steep_ones = found[_steep(found)]
        return (bool((steep_ones[:, [0, 2]].max(axis=1) < centre).any()),
                bool((steep_ones[:, [0, 2]].min(axis=1) > centre).any()))

    left, right = flanks(lines)
    broken = None
    if left != right:
        # One side found: the other may be broken where it crosses bright tissue (its pieces shorter than the
        # length asked for). Its longest piece, at half that length, on the side still missing.
        more = cv2.HoughLinesP(ridge, 1, np.pi / 180, threshold=15,
                               minLineLength=max(10, int(_BOX_LINE * side / 2)), maxLineGap=3)
        if more is not None:
            more = more.reshape(-1, 4).astype(int)
            wanted = (more[:, [0, 2]].min(axis=1) > centre) if left else (more[:, [0, 2]].max(axis=1) < centre)
            pieces = more[_steep(more) & wanted]
            if pieces.size:
                broken = pieces[np.argmax(np.hypot(pieces[:, 2] - pieces[:, 0], pieces[:, 3] - pieces[:, 1]))]
                lines = np.vstack([lines, broken[None, :]])
                left, right = flanks(lines)
    if not (left and right):
        return out
    steep = _steep(lines)
    sides = lines[steep]
    ends = sides[:, [1, 3]]
    mid_y = (lines[:, 1] + lines[:, 3]) / 2
    at_ends = np.minimum(np.abs(mid_y - ends.min()), np.abs(mid_y - ends.max())) <= max(3, side // 20)
    between = (lines[:, [0, 2]].min(axis=1) >= sides[:, [0, 2]].min() - 3) & (
        lines[:, [0, 2]].max(axis=1) <= sides[:, [0, 2]].max() + 3)
    loose = (freq >= _BOX_FREQ / 2) & unmasked
    box = [_extend_line(loose, line) for line in lines[steep | (at_ends & between)]]
    if broken is not None:  # the broken side spans the box's height too: straight on to the other side's rows
        others = np.array(box[:-1])
        rows = others[_steep(others)][:, [1, 3]]  # the other sides' rows, run on along their ridges
        box[-1] = _to_rows(box[-1], int(rows.min()), int(rows.max()))
    hull = cv2.convexHull(np.array(box, np.int32).reshape(-1, 2))
    boundary = np.zeros(envelope.shape, np.uint8)
    band = 2 * max(3, side // 40) + 1
    cv2.polylines(boundary, [hull], True, 1, band)
    if broken is not None:  # a fitted straight line, not a hull over arcs: 3 px either side of it, not the band
        x0, y0, x1, y1 = box[-1]
        wide, narrow = np.zeros_like(boundary), np.zeros_like(boundary)
        cv2.line(wide, (x0, y0), (x1, y1), 1, band)
        cv2.line(narrow, (x0, y0), (x1, y1), 1, 7)
        boundary[(wide > 0) & (narrow == 0)] = 0
    return (boundary > 0) & loose


def _steep(segments: np.ndarray) -> np.ndarray:
    """Which segments ``(N, 4)``: x0, y0, x1, y1 run more down than across (a box's sides, not its top or bottom)."""
    return np.abs(segments[:, 3] - segments[:, 1]) > np.abs(segments[:, 2] - segments[:, 0])


def _to_rows(line: tuple[int, int, int, int], top: int, bottom: int) -> tuple[int, int, int, int]:
    """A steep segment ``(x0, y0, x1, y1)`` prolonged along its direction to rows ``top`` and ``bottom``."""
    x0, y0, x1, y1 = line
    if y0 == y1:
        return line
    slope = (x1 - x0) / (y1 - y0)
    return (int(round(x0 + slope * (top - y0))), top, int(round(x0 + slope * (bottom - y0))), bottom)


def _extend_line(ridge: np.ndarray, line: np.ndarray, gap: int = 4) -> tuple[int, int, int, int]:
    """A Hough segment ``(x0, y0, x1, y1)`` run on along its direction, both ways, while ``ridge`` continues
    within a pixel of it (gaps of at most ``gap`` px): the probabilistic transform often finds part of a side."""
    height, width = ridge.shape
    start, end = np.array(line[:2], float), np.array(line[2:], float)
    length = float(np.hypot(*(end - start)))
    if length < 1:
        return tuple(int(v) for v in line)  # no direction to run on
    step = (end - start) / length
    normal = np.array([-step[1], step[0]])

    def run(point: np.ndarray, direction: np.ndarray) -> np.ndarray:
        last, missed, here = point, 0, point
        while missed <= gap:
            here = here + direction
            on = False
            for offset in (-1, 0, 1):
                x, y = np.rint(here + offset * normal).astype(int)
                if not (0 <= x < width and 0 <= y < height):
                    return last
                on = on or bool(ridge[y, x])
            last, missed = (here, 0) if on else (last, missed + 1)
        return last

    a, b = run(start, -step), run(end, step)
    return int(round(a[0])), int(round(a[1])), int(round(b[0])), int(round(b[1]))


def _apply_pointer_policy(index: int, blob: np.ndarray, main: np.ndarray, core: np.ndarray, policy: str,
                          frame_masks: dict[int, np.ndarray], dropped: list[int]) -> None:
    """The release's rule for a pointer: drop its frame when it covers the lung core (policy "drop"), else mask it."""
    if policy == "drop" and (blob & core).any():
        dropped.append(index)
    else:
        frame_masks[index] = main | blob


def _rims_from_beyond(chromas: Sequence[np.ndarray], window: Window, region: np.ndarray, level: float) -> np.ndarray:
    """The coded rims (window coordinates) of coloured marks drawn just outside the window: a border line beside
    the field, a pixel beyond the window's edge, blurs into the window's edge pixels, which no seed inside the
    window reaches. Seeds: pixels in a ring ``_LINE`` px wide around the window, outside the field (``region``),
    coloured (over ``level``) on most sampled frames (``chromas``, whole frames); their rim is the pixel they grow
    into the window. Not grey marks: beside a field, a still grey pixel is as often the blurred edge of the field
    itself (with grey seeds, precision fell below 0.9 on 22 of the 90 simulated clips).
    Real clip grepmed Reg-Grep-Alines: a green border line at the field's last column left its rim in the window.
    """
    height, width = region.shape
    y0, y1 = max(0, window.y - _LINE), min(height, window.y + window.h + _LINE)
    x0, x1 = max(0, window.x - _LINE), min(width, window.x + window.w + _LINE)
    inner = (slice(window.y - y0, window.y - y0 + window.h), slice(window.x - x0, window.x - x0 + window.w))
    seeds = np.mean([c[y0:y1, x0:x1] > level for c in chromas], axis=0) >= _STATIC_FREQ
    seeds &= ~region[y0:y1, x0:x1]
    seeds[inner] = False
    return (cv2.dilate(seeds.astype(np.uint8), _kernel(3)) > 0)[inner]


def _scale_dots(gray_med: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(centres, sizes)``: the small bright dots outside the field of view (``region``) on dark ground, as
    ``(x, y)`` centres (float, n x 2) and their larger side in px: the dots a dotted depth scale is drawn with.
    Ground: the median grey within 6 px of a dot, off the field and 2 px clear of every bright spot."""
    height, width = gray_med.shape
    bright = (cv2.morphologyEx(gray_med, cv2.MORPH_TOPHAT, _kernel(7)) >= _SCALE_DOT).astype(np.uint8)
    n, labels, stats, centres = cv2.connectedComponentsWithStats(bright & ~region, connectivity=8)
    ground = ~region & (cv2.dilate(bright, _kernel(5)) == 0)
    sizes = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = []
    for i in np.flatnonzero(sizes[1:] <= max(4, 0.02 * min(height, width))) + 1:
        x, y, w, h = (int(v) for v in stats[i, :4])
        box = (slice(max(0, y - 6), y + h + 6), slice(max(0, x - 6), x + w + 6))
        around = gray_med[box][ground[box]]
        if around.size and np.median(around) <= _DARK:
            keep.append(i)
    return centres[keep].reshape(-1, 2), sizes[keep]


def _dotted_lines(
    centres: np.ndarray, longest: float, seeds: np.ndarray
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """``(dots, gaps)`` of each straight line of at least ``_SCALE_DOTS`` regularly spaced ``centres`` (n x 2)
    through one of the ``seeds`` (indices): the indices of its dots, and where the dots it misses (at most two in
    a row) should be. A dot and one of its 4 nearest neighbours, 4 to ``longest`` px apart, set the line and its
    spacing; a dot lies within 2 px of the line and within a quarter of a spacing of where the spacing puts it."""
    seen: set[frozenset[int]] = set()
    if len(centres) < _SCALE_DOTS:
        return
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    nearest = np.argsort(distances, axis=1)[:, 1:5]
    for i in seeds:
        offsets = centres - centres[i]
        for j in nearest[i]:
            step = float(distances[i, j])
            if not 4 <= step <= longest:
                continue
            along = offsets[j] / step
            on = np.flatnonzero(np.abs(offsets @ np.array([-along[1], along[0]])) <= 2)
            t = offsets[on] @ along
            order = np.argsort(t)
            on, t = on[order], t[order]
            start = int(np.flatnonzero(on == i)[0])
            dots, gaps = [int(i)], []
            for direction, end in ((1, len(t)), (-1, -1)):
                base = t[start]
                for k in range(start + direction, end, direction):
                    spacings = abs(t[k] - base) / step
                    if spacings < 0.75:  # a second blob of the same dot
                        continue
                    count = round(spacings)
                    if count > 3 or abs(spacings - count) > 0.25:
                        break
                    gaps += [centres[i] + along * (base + direction * g * abs(t[k] - base) / count)
                             for g in range(1, count)]
                    dots.append(int(on[k]))
                    base = t[k]
            key = frozenset(dots)
            if len(key) >= _SCALE_DOTS and key not in seen:
                seen.add(key)
                yield sorted(key), gaps


def _scale_gaps(gray_med: np.ndarray, region: np.ndarray, window: Window) -> np.ndarray:
    """The dots of a dotted depth scale drawn beside the field of view that landed on its edge (window
    coordinates). Beside the field, a dot is a small bright dot on black; where the scale touches the field (a
    sector's corner, a flank) the dot joins the field's region and no rule for marks outside the field sees it.
    The scale's other dots place it: a gap of one or two spacings in a line of regularly spaced dots, on the
    field's outer 3 px, is masked with a disc of the scale's dot size.
    Real clip 1364981565542047744: a filmed collage's slanted scale of dots 12 px apart, one on the sector's
    corner; elsewhere on the 90 real clips the gaps fall on the ticks of rulers drawn along a field's edge."""
    height, width = region.shape
    centres, sizes = _scale_dots(gray_med, region)
    rim = region & ~(cv2.erode(region.astype(np.uint8), _kernel(7)) > 0)
    marks = np.zeros((height, width), np.uint8)
    longest = 0.1 * min(height, width)
    # A line with a gap on the field has a dot within two spacings of it: start lines there only.
    off_field = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)
    xs, ys = (np.clip(np.rint(centres[:, k]).astype(int), 0, side - 1) for k, side in ((0, width), (1, height)))
    seeds = np.flatnonzero(off_field[ys, xs] <= 2 * longest + 2)
    for dots, gaps in _dotted_lines(centres, longest, seeds):
        radius = int(np.median(sizes[dots])) // 2 + 1
        for x, y in (np.rint(g).astype(int) for g in gaps):
            if 0 <= x < width and 0 <= y < height and rim[y, x]:
                cv2.circle(marks, (int(x), int(y)), radius, 1, -1)
    rows, cols = window.slices()
    return marks[rows, cols] > 0


def _still_bright(grays: Sequence[np.ndarray], main: np.ndarray) -> np.ndarray:
    """Where a white blob is not a moving pointer: bright in the median frame (a static mark, still tissue) or
    already in the main mask."""
    gray_med = _median(grays) if len(grays) > 1 else grays[0]
    return cv2.dilate(((gray_med >= 150) | main).astype(np.uint8), _kernel(5)) > 0


# ----------------------------------------------------------------------------------------------------------------
# Whole clips


@dataclass
class _Sampler:
    """Keeps at most ``capacity`` evenly spaced frames of a stream whose length is unknown (stride doubles)."""

    capacity: int
    stride: int = 1
    kept: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)  # (index, gray, chroma)

    def offer(self, index: int, gray: np.ndarray, chroma: np.ndarray) -> None:
        if index % self.stride:
            return
        self.kept.append((index, gray, chroma))
        if len(self.kept) > self.capacity:
            self.stride *= 2
            self.kept = [k for k in self.kept if k[0] % self.stride == 0]


def _frame_items(frames: Iterable[object]) -> Iterable[tuple[int, np.ndarray]]:
    for position, item in enumerate(frames):
        if isinstance(item, np.ndarray):
            yield position, item
        elif isinstance(item, tuple):
            yield int(item[0]), item[1]
        else:  # processing.pixels.clips.Frame
            yield int(item.index), item.image  # type: ignore[attr-defined]


def _coloured_blob(
    index: int,
    coloured_at: Mapping[int, tuple[np.ndarray, np.ndarray]],
    inside_flat: np.ndarray,
    static_flat: np.ndarray,
    level: float,
    min_area: int,
    sample_chroma: Mapping[int, np.ndarray],
    slices: tuple[slice, slice],
    size: tuple[int, int],
    static_colour: np.ndarray,
) -> np.ndarray | None:
    """The coloured pointer of frame ``index`` in window coordinates, from its kept coloured pixels, or None."""
    if index not in coloured_at:
        return None
    hot, values = coloured_at[index]
    keep = inside_flat[hot] & ~static_flat[hot] & (values > level)
    if int(keep.sum()) < min_area:
        return None
    chroma_w = _frame_chroma(index, hot, values, sample_chroma, slices, size)
    return _pointer(chroma_w > level, static_colour, chroma_w > level / 2, min_area)


def _frame_chroma(index: int, hot: np.ndarray, values: np.ndarray, sample_chroma: Mapping[int, np.ndarray],
                  slices: tuple[slice, slice], size: tuple[int, int]) -> np.ndarray:
    """Frame ``index``'s chroma in the window: the sampled frame's, or rebuilt from the coloured pixels the scan
    kept (``hot`` flat indices, their ``values``: only those above ``_MIN_CHROMA``)."""
    rows, cols = slices
    if index in sample_chroma:
        return sample_chroma[index][rows, cols]
    height, width = size
    full = np.zeros(height * width, np.uint8)
    full[hot] = values
    return full.reshape(height, width)[rows, cols]


def _flow(
    scan: _Scan, window: Window, level: float, region_win: np.ndarray, sample_chroma: Mapping[int, np.ndarray],
    skip: Mapping[int, str],
) -> Iterable[tuple[int, np.ndarray]]:
    """Frame index -> every coloured pixel of that frame in the field (window coordinates), grown into its fainter
    rim: on a colour-Doppler clip all colour in the field is flow, whatever its size (the pointer rule wants blobs of
    a pointer's size, away from the still colour, and left the flow's small and shifting parts in: real clip
    1609635280687865857, 90 coloured pixels per clean frame). Only the frames whose colour the scan kept (at most
    ``_MAX_COLOURED_SHARE`` of the frame coloured)."""
    assert scan.shape is not None
    size, slices = scan.shape[:2], window.slices()
    field = cv2.dilate(region_win.astype(np.uint8), _kernel(5)) > 0
    for index, (hot, values) in scan.coloured_at.items():
        if index in skip:
            continue
        chroma = _frame_chroma(index, hot, values, sample_chroma, slices, size)
        colour = (chroma > level) & field
        if colour.any():
            yield index, _grow(colour, (chroma > level / 2) & field)


def _unusable_frames(indices: Sequence[int], thumbs: Sequence[np.ndarray]) -> dict[int, str]:
    """Frames that are not training data: ``"blank"`` (black, white, a fade: the thumbnail is nearly flat) and
    ``"cut"`` (another scene than the clip's main one, see :func:`_main_scene`, or a frame that differs from the main
    scene's median thumbnail by more than ``_CUT_FACTOR`` times the main scene's median difference plus
    ``_CUT_FLOOR``: far more than probe motion does). With no two frames of one scene, every frame is a cut."""
    if not thumbs:
        return {}
    stack = np.stack(thumbs).astype(np.float32)
    spread = stack.max(axis=(1, 2)) - stack.min(axis=(1, 2))
    out = {i: "blank" for i, s in zip(indices, spread, strict=True) if s < _BLANK_RANGE}
    good = [k for k, i in enumerate(indices) if i not in out]
    if len(good) < 3:
        return out
    usable = stack[good]
    main = _main_scene(usable)
    if main.sum() < 2:  # a slideshow: no scene lasts
        out.update({indices[k]: "cut" for k in good})
        return out
    median = np.median(usable[main], axis=0)
    distance = np.abs(usable - median).mean(axis=(1, 2))
    limit = _CUT_FACTOR * float(np.median(distance[main])) + _CUT_FLOOR
    out.update({indices[k]: "cut" for k, d, m in zip(good, distance, main, strict=True) if d > limit or not m})
    return out


def _main_scene(stack: np.ndarray) -> np.ndarray:
    """Which of the thumbnails ``stack`` (frames in order, none blank) belong to the scene with the most frames.

    The clip is cut into shots where a thumbnail differs from the one before it by more than ``_SHOT_STEP`` grey
    levels and ``_CUT_FACTOR`` times the steps around it (plus one level): a cut, not probe motion. Where the median
    step is itself over ``_CUT_FLOOR`` (the real clips: <= 7.3), the frames are no continuous scan (a slideshow)
    and any step over ``_CUT_FLOOR`` starts a shot. Shots whose median thumbnails differ by at most
    ``_SCENE_LOOK`` are one scene (a scan an inserted clip interrupts comes back; the longest shots found the
    scenes, at most ``_SCENES`` of them). A clip joined from several scans keeps its longest scene, even when none
    holds half of the clip.
    """
    steps = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2))
    if float(np.median(steps)) > _CUT_FLOOR:
        starts = np.flatnonzero(steps > _CUT_FLOOR) + 1
    else:
        around = np.array([np.median(np.delete(steps[max(0, i - 8):i + 9], min(i, 8))) if steps.size > 1 else 0.0
                           for i in range(steps.size)])
        starts = np.flatnonzero((steps > _SHOT_STEP) & (steps > _CUT_FACTOR * (around + 1))) + 1
    bounds = [0, *starts.tolist(), len(stack)]
    shots = sorted((np.arange(a, b) for a, b in zip(bounds, bounds[1:], strict=False)), key=len, reverse=True)
    looks: list[np.ndarray] = []  # each scene's first (longest) shot's median thumbnail
    scene_of = np.full(len(stack), -1)
    for shot in shots:
        look = np.median(stack[shot], axis=0)
        near = [k for k, other in enumerate(looks) if float(np.abs(look - other).mean()) <= _SCENE_LOOK]
        if near:
            scene_of[shot] = near[0]
        elif len(looks) < _SCENES:
            scene_of[shot] = len(looks)
            looks.append(look)
    sizes = np.bincount(scene_of[scene_of >= 0], minlength=1)
    return scene_of == int(np.argmax(sizes))


@dataclass
class _Scan:
    """What one streaming pass over a clip keeps: sampled frames, each frame's coloured and white pointer pixels,
    one thumbnail per frame (bounded whatever the clip's length)."""

    sampler: _Sampler
    coloured_at: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # index -> (flat, chroma)
    crowded: set[int] = field(default_factory=set)  # frames with too much colour to keep (photos, insets, tint)
    white_at: dict[int, np.ndarray] = field(default_factory=dict)  # index -> flat indices of white candidates
    thumbs: list[np.ndarray] = field(default_factory=list)
    thumb_indices: list[int] = field(default_factory=list)
    shape: tuple[int, ...] | None = None
    count: int = 0

    def add(self, index: int, image: np.ndarray, clip_id: str) -> None:
        if self.shape is None:
            self.shape = image.shape
            _check_frames([image], clip_id)
        elif image.shape != self.shape:
            raise ClipError(f"{clip_id}: frame {index} has shape {image.shape}, frame 0 had {self.shape}")
        self.count += 1
        gray, chroma = _gray(image), chroma_of(image)
        self.thumbs.append(cv2.resize(gray, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA))
        self.thumb_indices.append(index)
        self.sampler.offer(index, gray, chroma)
        # A generous per-frame level; the final, tint-aware level is applied once the field is known.
        if not self._keep_colour(index, chroma.ravel(), chroma.size):
            self.crowded.add(index)
        white = _white_pointer(gray, chroma, max(24, int(0.0008 * gray.size)))
        if white is not None:
            self.white_at[index] = np.flatnonzero(white.ravel()).astype(np.int32)

    def rescan(self, frames: Iterable[object], window: Window, clip_id: str) -> None:
        """Keep the coloured pixels of the crowded frames inside ``window`` only, from a second pass over the
        clip (``frames``): a colour photo or inset beside the panel (real clip 1447995907203649537: two colour
        photos over a Doppler panel, 12% of each frame coloured) is no reason to lose the panel's own colour."""
        assert self.shape is not None
        inside = np.zeros(self.shape[:2], bool)
        inside[window.slices()] = True
        for index, image in _frame_items(frames):
            if index not in self.crowded:
                continue
            if image.shape != self.shape:
                raise ClipError(f"{clip_id}: frame {index} has shape {image.shape} on a second read, "
                                f"{self.shape} on the first")
            self._keep_colour(index, np.where(inside, chroma_of(image), 0).ravel(), int(inside.sum()))

    def _keep_colour(self, index: int, flat: np.ndarray, area: int) -> bool:
        """Keep frame ``index``'s coloured pixels (``flat`` chroma) when there are at most ``_MAX_COLOURED_SHARE`` of
        ``area``; False when there are more (the frame is crowded)."""
        hot = np.flatnonzero(flat > _MIN_CHROMA)
        if hot.size > _MAX_COLOURED_SHARE * area:
            return False
        if hot.size:
            self.coloured_at[index] = (hot.astype(np.int32), flat[hot])
        return True


def _edge_fringe(scan: _Scan, window: Window, level: float, skip: Mapping[int, str]) -> np.ndarray:
    """The coder's colour fringe along the window's edge (window coordinates, bool): where the window cuts an image
    a column or two short of its edge, the colour that coding smears there comes and goes like a pointer. It stays
    in the same ``_FRINGE`` lines next to an edge, at most 2 px thick, on many frames (``_FRINGE_FRAMES`` of those
    with colour, and at least 3); a pointer there has a body inside (a 3x3 erosion leaves something of it within
    ``_FRINGE_STRIP`` px of the edge), or is there for a frame or two. Its pixels, on any frame, are a static mark
    (masked on every frame), not a pointer.
    Real clip GrepMed Pneu-grep-pneumonia4 in black bars: 17 of its 149 frames were dropped for it."""
    assert scan.shape is not None
    width = scan.shape[1]
    h, w = window.h, window.w
    out = np.zeros((h, w), bool)
    frames = [i for i in scan.coloured_at if i not in skip]
    if len(frames) < 3 or min(h, w) < 2 * _FRINGE_STRIP:
        return out
    # Each side's strip (rows, columns) and, inside the strip, the side's outer lines.
    near, far = slice(0, _FRINGE), slice(_FRINGE_STRIP - _FRINGE, None)
    every = slice(None)
    sides = {"left": ((every, slice(0, _FRINGE_STRIP)), (every, near)),
             "right": ((every, slice(w - _FRINGE_STRIP, w)), (every, far)),
             "top": ((slice(0, _FRINGE_STRIP), every), (near, every)),
             "bottom": ((slice(h - _FRINGE_STRIP, h), every), (far, every))}
    seen = {side: np.zeros((h, w), bool) for side in sides}
    counts = dict.fromkeys(sides, 0)
    for index in frames:
        hot, values = scan.coloured_at[index]
        ys, xs = np.divmod(hot[values > level], width)
        ys, xs = ys - window.y, xs - window.x
        inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        ys, xs = ys[inside], xs[inside]
        if not ((xs < _FRINGE) | (xs >= w - _FRINGE) | (ys < _FRINGE) | (ys >= h - _FRINGE)).any():
            continue
        here = np.zeros((h, w), np.uint8)
        here[ys, xs] = 1
        for side, (strip, outer) in sides.items():
            part = here[strip]
            if not part[outer].any():
                continue
            n, labels = cv2.connectedComponents(part, connectivity=8)
            body = np.zeros(n, bool)
            eroded = cv2.erode(part, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
            body[labels[eroded > 0]] = True
            thin = np.zeros(part.shape, bool)
            thin[outer] = (labels[outer] > 0) & ~body[labels[outer]]
            if thin.any():
                counts[side] += 1
                seen[side][strip] |= thin
    for side, n in counts.items():
        if n >= max(3, _FRINGE_FRAMES * len(frames)):
            out |= seen[side]
    return out


def _pointer_blobs(scan: _Scan, fov: FieldOfView, main: np.ndarray, static_colour: np.ndarray, level: float,
                   samples: Mapping[int, tuple[np.ndarray, np.ndarray]], skip: Mapping[int, str]) -> dict[int, np.ndarray]:
    """Frame index -> the pointer (coloured or white blob, window coordinates) seen on that frame."""
    assert scan.shape is not None
    height, width = scan.shape[:2]
    window = fov.window
    rows, cols = window.slices()
    min_area = _min_pointer_area(window)
    static_full = np.zeros((height, width), bool)
    static_full[rows, cols] = cv2.dilate(static_colour.astype(np.uint8), _kernel(5)) > 0
    inside_window = np.zeros((height, width), bool)
    inside_window[rows, cols] = True
    inside_flat, static_flat = inside_window.ravel(), static_full.ravel()
    sample_chroma = {i: chroma for i, (_gray_s, chroma) in samples.items()}
    still = _still_bright([g[rows, cols] for g, _c in samples.values()], main)
    whites: dict[int, np.ndarray] = {}
    for index, flat_white in scan.white_at.items():
        full = np.zeros(height * width, bool)
        full[flat_white] = True
        white = full.reshape(height, width)[rows, cols] & ~still
        if int(white.sum()) >= 4 * min_area:
            whites[index] = white
    blobs: dict[int, np.ndarray] = {}
    for index in sorted(set(scan.coloured_at) | set(whites)):
        if index in skip:
            continue
        blob = _coloured_blob(index, scan.coloured_at, inside_flat, static_flat, level, min_area, sample_chroma,
                              (rows, cols), (height, width), static_colour)
        if index in whites:
            blob = whites[index] if blob is None else blob | whites[index]
        if blob is not None:
            blobs[index] = blob
    return blobs


def detect_frames(
    frames: Iterable[object],
    *,
    clip_id: str = "clip",
    max_sample_frames: int = 32,
    pointer_policy: str = "mask",
    again: Callable[[], Iterable[object]] | None = None,
) -> Detection:
    """:func:`detect_clip` on an iterable of frames (``Frame`` objects, ``(index, image)`` pairs or bare arrays).

    One pass; memory is bounded by ``max_sample_frames`` frames plus each frame's coloured-pixel coordinates, kept
    for frames with at most ``_MAX_COLOURED_SHARE`` of their pixels coloured. ``again`` (a function that iterates
    the same frames anew) lets the frames with more colour be read a second time, their colour kept inside the
    crop window only; without it their pointers and colour flow are not found.
    """
    check_choice("pointer_policy", pointer_policy, POINTER_POLICIES)
    if not isinstance(max_sample_frames, int) or max_sample_frames < 2:
        raise CovidxError(f"invalid max_sample_frames {max_sample_frames!r}; expected an integer >= 2")
    scan = _Scan(_Sampler(max_sample_frames))
    for index, image in _frame_items(frames):
        scan.add(index, image, clip_id)
    if scan.shape is None:
        raise ClipError(f"{clip_id}: the clip has no frames")
    height, width = scan.shape[:2]
    count = scan.count
    unusable = _unusable_frames(scan.thumb_indices, scan.thumbs)
    if len(unusable) == count:
        raise ClipError(f"{clip_id}: no ultrasound field of view found: every frame is blank or a cut ({count} frames)")
    kept = [k for k in scan.sampler.kept if k[0] not in unusable] or scan.sampler.kept
    samples = {k[0]: (k[1], k[2]) for k in kept}
    fov = _fov_from([k[1] for k in kept], [k[2] for k in kept], clip_id)
    window = fov.window
    rows, cols = window.slices()
    grays_w = [g[rows, cols] for g, _c in samples.values()]
    chromas_w = [c[rows, cols] for _g, c in samples.values()]
    region_win = fov.region[rows, cols]
    level = _tint_threshold(_median(chromas_w), _median(grays_w), region_win)
    main, static_colour = _static_marks(grays_w, chromas_w, region_win, level)
    main |= _rims_from_beyond([c for _g, c in samples.values()], window, fov.region, level)
    main |= _scale_gaps(fov.median, fov.region, window)
    if scan.crowded and again is not None:
        scan.rescan(again(), window, clip_id)
    fringe = _edge_fringe(scan, window, level, unusable)
    main |= fringe
    static_colour |= fringe
    blobs = _pointer_blobs(scan, fov, main, static_colour, level, samples, unusable)
    # Colour Doppler, not a pointer shown for a moment: a moving coloured blob on most frames, or still colour over
    # a share of the field (a loop of a single flow frame) that no orientation mark or arrow covers. Its colour is
    # masked frame by frame and never drops a frame (dropping "pointer" frames would drop the clip).
    still_colour = static_colour & (cv2.erode(region_win.astype(np.uint8), _kernel(9)) > 0)
    doppler = (len(blobs) > _PERSISTENT * (count - len(unusable))
               or still_colour.sum() >= _DOPPLER_SHARE * region_win.sum())
    policy = "mask" if doppler else pointer_policy
    if doppler:
        main = main | _colour_box(grays_w, [still_colour, *blobs.values()], main)
        sample_chroma = {i: chroma for i, (_gray, chroma) in samples.items()}
        for index, colour in _flow(scan, window, level, region_win, sample_chroma, unusable):
            blobs[index] = colour | blobs[index] if index in blobs else colour
    frame_masks: dict[int, np.ndarray] = {}
    dropped: list[int] = []
    core = _lung_core(region_win)
    for index, blob in blobs.items():
        _apply_pointer_policy(index, blob, main, core, policy, frame_masks, dropped)
    # Slack at the faint sides of the field, 1% of the window (its top is set by _trim_static_edges and
    # _extend_top); overlays in that margin are in the masks.
    slack = np.ones((1, _odd(0.02 * min(window.w, window.h))), np.uint8)
    detection = Detection(
        clip_id=clip_id, probe=fov.probe, window=window, main_mask=main, frame_masks=frame_masks,
        dropped_frames=tuple(dropped), frame_count=count, sampled_frames=tuple(samples),
        frame_size=(width, height), pointer_policy=pointer_policy,
        fov_mask=cv2.dilate(region_win.astype(np.uint8), slack) > 0, unusable_frames=unusable,
    )
    log.debug("%s", detection.summary())
    return detection


def detect_clip(
    path: Path | str,
    *,
    clip_id: str | None = None,
    max_sample_frames: int = 32,
    pointer_policy: str = "mask",
) -> Detection:
    """Detect the field of view, probe, crop window and overlay masks of the clip at ``path``.

    ``clip_id`` names the clip in errors and the summary (default: the file name without extension).
    Raises :class:`ClipError` for an unreadable clip or one without an ultrasound field of view.
    """
    from processing.pixels.clips import iter_frames  # imported here so array users need no decoder

    path = Path(path)
    return detect_frames(
        iter_frames(path),
        clip_id=clip_id or path.stem,
        max_sample_frames=max_sample_frames,
        pointer_policy=pointer_policy,
        again=lambda: iter_frames(path),
    )


# ----------------------------------------------------------------------------------------------------------------
# Scoring against ground truth (benchmarks and regression tests)


@dataclass(frozen=True)
class Score:
    """How a :class:`Detection` compares with the truth of a clip whose overlays are known exactly."""

    crop_iou: float  # intersection over union of the detected and the true crop window
    probe_ok: bool
    recall: float  # share of true overlay pixels inside the detected window that are masked (or whose frame is dropped)
    precision: float  # share of masked pixels that lie on (or within ``tolerance`` px of) a true overlay pixel
    masked_frames: int  # frames with a frame-specific mask
    dropped_frames: int


def window_iou(a: Window, b: Window) -> float:
    """Intersection over union of two windows."""
    w = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    h = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = w * h
    union = a.w * a.h + b.w * b.h - inter
    return inter / float(union) if union else 0.0


def score_detection(
    detection: Detection, window: Window, probe: str, overlay_masks: np.ndarray, *, tolerance: int = 2
) -> Score:
    """Score ``detection`` against the true ``window``, ``probe`` and per-frame ``overlay_masks`` (T, H, W) bool.

    Recall counts true overlay pixels inside the detected window (pixels outside it are cropped away); a dropped
    frame counts as fully cleaned. Precision forgives ``tolerance`` pixels around each true mark, the rim a lossy
    encoder smears the mark into (the simulator draws marks without anti-aliasing; codecs blur them).
    """
    rows, cols = detection.window.slices()
    kernel = _kernel(2 * tolerance + 1) if tolerance > 0 else None
    hit = total = on_mark = masked = 0
    dropped = set(detection.dropped_frames)
    for index in range(min(len(overlay_masks), detection.frame_count)):
        truth = overlay_masks[index][rows, cols]
        if index in dropped:
            continue
        mask = detection.mask_for(index)
        near = truth if kernel is None else cv2.dilate(truth.astype(np.uint8), kernel) > 0
        hit += int((mask & truth).sum())
        total += int(truth.sum())
        on_mark += int((mask & near).sum())
        masked += int(mask.sum())
    return Score(
        crop_iou=window_iou(detection.window, window),
        probe_ok=detection.probe == probe,
        recall=hit / total if total else 1.0,
        precision=on_mark / masked if masked else 1.0,
        masked_frames=len(detection.frame_masks),
        dropped_frames=len(dropped),
    )
