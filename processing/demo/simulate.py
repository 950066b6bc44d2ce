"""Lung-ultrasound (LUS) clip simulator for the demo and the end-to-end tests, with exact ground truth.

A simulated clip is a black canvas holding one field of view (FOV) -- a convex sector or a linear rectangle -- filled
with speckle, a sliding pleural line and class-specific findings (A-lines, B-lines, consolidations, air bronchograms,
effusions), plus the overlays real clips carry: a depth ruler with tick marks and numbers, preset/TIS/MI text, a
coloured logo dot, an orientation marker and, on chosen frames, a moving pointer that may cross the lung region.

Because the simulator draws every overlay itself, it knows the exact overlay mask of every frame; that truth is what the
simulated release's masks are made from and what automatic FOV/overlay detection is scored against.

Public API
----------
- ``ClipSpec(probe, label, width, height, num_frames, fps, container, overlays, pointer_frames, fov, logo_color,
  seed)``: a frozen, validated description of one clip.
- ``simulate_frames(spec) -> Iterator[tuple[np.ndarray, np.ndarray]]``: ``(frame_rgb uint8 (H,W,3), overlay_mask bool
  (H,W))`` per frame, in memory, no encoding (fast unit tests).
- ``simulate_truth(spec) -> GroundTruth``: the ground truth alone (no pixels rendered).
- ``write_clip(spec, path) -> GroundTruth``: encodes the clip with a real encoder (mp4: H.264, mov: H.264 in QuickTime,
  avi: MJPEG, wmv: WMV2 in ASF, gif: palette GIF) atomically and returns its ground truth.
- ``GroundTruth``: probe, label, fov_window (:class:`processing.windows.Window`, a square around a sector or the
  rectangle of a linear field, as the COVIDx-US paper prescribes), fov_mask (H,W), overlay_masks (T,H,W) -- the pixels
  drawn, exactly -- with ``dilated(radius)`` for scoring against lossy decodes, and ``save(path)`` / ``load(path)``
  (``.npz``).
- ``fov_layout(probe, width, height, seed)``: the default FOV window for a frame size.

Overlay colours are crisp constants (pure white text, saturated colour marks) and are drawn without anti-aliasing so
the truth mask is exactly the set of pixels drawn. Ultrasound pixels are grey (R == G == B) before encoding.

This module must not do HTTP, know about sources or the release files, or import the builder; it only makes pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from processing.errors import ClipError, CovidxError, check_choice
from processing.fileutil import atomic_write
from processing.vocabulary import CLASSES, CONTAINERS, PROBES
from processing.windows import Window

OVERLAYS = ("ruler", "text", "logo", "marker")
LOGO_COLORS = {"green": (0, 200, 0), "orange": (255, 140, 0), "red": (230, 20, 20)}
POINTER_COLOR = (255, 230, 0)  # yellow: coloured where the ultrasound is grey
TEXT_COLOR = (255, 255, 255)
RULER_COLOR = (235, 235, 235)

_CONVEX_HALF_ANGLE_DEG = (24.0, 28.0)  # half-angles for which a sector's bounding box is a square (see _sector)


@dataclass(frozen=True)
class ClipSpec:
    """One simulated clip.

    ``fov`` is the FOV window in frame pixels (default: :func:`fov_layout`); a convex sector is inscribed in it so that
    the sector's bounding box is exactly the (square) window. ``pointer_frames`` are inclusive frame ranges carrying
    the moving pointer. ``overlays`` is a subset of :data:`OVERLAYS`.
    """

    probe: str = "convex"
    label: str = "covid"
    width: int = 160
    height: int = 120
    num_frames: int = 12
    fps: float = 20.0
    container: str = "mp4"
    overlays: tuple[str, ...] = OVERLAYS
    pointer_frames: tuple[tuple[int, int], ...] = ()
    fov: Window | None = None
    logo_color: str = "green"
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("probe", self.probe, PROBES)
        check_choice("label", self.label, CLASSES)
        check_choice("container", self.container, CONTAINERS)
        check_choice("logo_color", self.logo_color, tuple(LOGO_COLORS))
        for name in self.overlays:
            check_choice("overlay", name, OVERLAYS)
        if self.width < 32 or self.height < 32:
            raise CovidxError(f"ClipSpec width/height must be >= 32, got {self.width}x{self.height}")
        if self.container != "gif" and (self.width % 2 or self.height % 2):
            raise CovidxError(
                f"ClipSpec {self.container} needs an even frame size (yuv420p), got {self.width}x{self.height}"
            )
        if self.num_frames < 1:
            raise CovidxError(f"ClipSpec num_frames must be >= 1, got {self.num_frames}")
        if not 1.0 <= self.fps <= 120.0:
            raise CovidxError(f"ClipSpec fps must lie in [1, 120], got {self.fps}")
        for a, b in self.pointer_frames:
            if not 0 <= a <= b < self.num_frames:
                raise CovidxError(f"ClipSpec pointer_frames range {a}-{b} outside frames 0-{self.num_frames - 1}")
        if self.fov is not None and not self.fov.fits(self.width, self.height):
            raise CovidxError(f"ClipSpec fov {self.fov} does not fit a {self.width}x{self.height} frame")

    @property
    def window(self) -> Window:
        return self.fov if self.fov is not None else fov_layout(self.probe, self.width, self.height, self.seed)

    def pointer_set(self) -> frozenset[int]:
        return frozenset(i for a, b in self.pointer_frames for i in range(a, b + 1))


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """What the simulator drew: the FOV and the exact overlay pixels of every frame."""

    probe: str
    label: str
    fov_window: Window
    fov_mask: np.ndarray  # (H, W) bool, True inside the ultrasound image
    overlay_masks: np.ndarray  # (T, H, W) bool, True where an overlay pixel was drawn
    fps: float
    container: str
    pointer_frames: tuple[int, ...] = field(default=())

    @property
    def num_frames(self) -> int:
        return int(self.overlay_masks.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        return int(self.fov_mask.shape[1]), int(self.fov_mask.shape[0])

    @property
    def static_mask(self) -> np.ndarray:
        """Pixels that are overlay on every frame (rulers, text, logo, marker)."""
        return np.logical_and.reduce(self.overlay_masks, axis=0)

    def dilated(self, radius: int = 2) -> np.ndarray:
        """``overlay_masks`` grown by ``radius`` pixels (elliptic kernel): the area a lossy encoder may have touched."""
        if radius <= 0:
            return self.overlay_masks.copy()
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        return np.stack([cv2.dilate(m.astype(np.uint8), kernel).astype(bool) for m in self.overlay_masks])

    def save(self, path: Path | str) -> None:
        """Write to ``path`` (``.npz``, compressed) atomically."""
        w = self.fov_window
        with atomic_write(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(
                    handle,
                    probe=np.array(self.probe),
                    label=np.array(self.label),
                    fov_window=np.array([w.x, w.y, w.w, w.h], dtype=np.int64),
                    fov_mask=self.fov_mask,
                    overlay_masks=self.overlay_masks,
                    fps=np.array(self.fps),
                    container=np.array(self.container),
                    pointer_frames=np.array(self.pointer_frames, dtype=np.int64),
                )

    @classmethod
    def load(cls, path: Path | str) -> GroundTruth:
        try:
            with np.load(path) as data:
                return cls(
                    probe=str(data["probe"]),
                    label=str(data["label"]),
                    fov_window=Window(*(int(v) for v in data["fov_window"])),
                    fov_mask=data["fov_mask"].astype(bool),
                    overlay_masks=data["overlay_masks"].astype(bool),
                    fps=float(data["fps"]),
                    container=str(data["container"]),
                    pointer_frames=tuple(int(v) for v in data["pointer_frames"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise CovidxError(f"cannot read ground truth {path}: {exc}") from exc


# --------------------------------------------------------------------------------------------------------- geometry


def fov_layout(probe: str, width: int, height: int, seed: int = 0) -> Window:
    """Default FOV window for a ``width`` x ``height`` frame: a centred square (convex) or rectangle (linear) leaving
    margins for text above and a depth ruler beside it."""
    check_choice("probe", probe, PROBES)
    rng = np.random.default_rng([seed, 17])
    top = max(4, int(height * rng.uniform(0.08, 0.14)))
    bottom = max(2, int(height * 0.04))
    if probe == "convex":
        side = min(height - top - bottom, int(width * 0.78))
        return Window((width - side) // 2, top, side, side)
    w = min(int(width * rng.uniform(0.55, 0.7)), int((height - top - bottom) * 1.2))
    h = height - top - bottom
    return Window((width - w) // 2, top, w, h)


@dataclass(frozen=True)
class _Geometry:
    """Per-pixel tissue coordinates: depth ``d`` and lateral position ``u`` in [0, 1] inside the FOV."""

    fov_mask: np.ndarray
    depth: np.ndarray  # float32 (H, W)
    lateral: np.ndarray


def _geometry(spec: ClipSpec) -> _Geometry:
    win = spec.window
    ys, xs = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float64) + 0.5
    inside = np.zeros((spec.height, spec.width), dtype=bool)
    inside[win.slices()] = True
    if spec.probe == "linear":
        depth = (ys - win.y) / win.h
        lateral = (xs - win.x) / win.w
        return _Geometry(inside, depth.astype(np.float32), lateral.astype(np.float32))
    # Convex: apex above the window; outer radius R and half-angle theta make the bounding box a square of side s:
    # width 2 R sin(theta) = s, height R - r0 cos(theta) = s.
    rng = np.random.default_rng([spec.seed, 23])
    theta = math.radians(rng.uniform(*_CONVEX_HALF_ANGLE_DEG))
    s = float(min(win.w, win.h))
    radius = s / (2 * math.sin(theta))
    r0 = (radius - s) / math.cos(theta)
    cx = win.x + win.w / 2.0
    ay = win.y + win.h - radius
    dx, dy = xs - cx, ys - ay
    r = np.hypot(dx, dy)
    phi = np.arctan2(dx, dy)
    # A small margin (in pixels) so that the pixels along the window's edges, which the ideal sector only grazes, belong
    # to it: the mask's bounding box is then exactly the window.
    margin = 1.0
    sector = (r >= r0 - margin) & (r <= radius + margin) & (np.abs(phi) <= theta + margin / radius) & inside
    depth = np.clip((r - r0) / (radius - r0), 0.0, 1.0)
    lateral = np.clip((phi + theta) / (2 * theta), 0.0, 1.0)
    return _Geometry(sector, depth.astype(np.float32), lateral.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------- tissue


def _speckle(rng: np.random.Generator, shape: tuple[int, int], blur: tuple[float, float]) -> np.ndarray:
    """Rayleigh speckle, smoothed anisotropically (elongated laterally like a real point-spread function), mean ~1."""
    raw = rng.rayleigh(1.0, size=shape).astype(np.float32)
    smooth = cv2.GaussianBlur(raw, (0, 0), sigmaX=blur[1], sigmaY=blur[0])
    return smooth / max(float(smooth.mean()), 1e-6)


@dataclass(frozen=True)
class _Tissue:
    """The clip's tissue on a (depth x lateral) grid: chest wall above the pleura, lung below it (which slides)."""

    wall: np.ndarray  # (n_d, n_u) float32 intensities in [0, 1]
    lung: np.ndarray  # (n_d, n_u_wide) float32, wider than the view so it can slide
    pleura_row: np.ndarray  # (n_u_wide,) int, pleural line depth per lateral column of the lung grid
    slide_amp: float
    n_u: int


def _tissue(spec: ClipSpec, n_d: int, n_u: int) -> _Tissue:
    rng = np.random.default_rng([spec.seed, 31, CLASSES.index(spec.label)])
    pad = max(8, n_u // 4)
    n_w = n_u + 2 * pad
    d = (np.arange(n_d, dtype=np.float32) / n_d)[:, None]
    u = (np.arange(n_w, dtype=np.float32) - pad)[None, :] / n_u

    pleura = rng.uniform(0.16, 0.24)
    wobble = 0.004
    if spec.label == "covid":  # irregular, fragmented pleura
        wobble = 0.02
    noise_u = cv2.GaussianBlur(rng.normal(0, 1, (1, n_w)).astype(np.float32), (0, 0), sigmaX=max(2, n_u / 30))
    pleura_d = pleura + wobble * noise_u[0] / max(float(np.abs(noise_u).max()), 1e-6)
    pleura_row = np.clip((pleura_d * n_d).astype(int), 2, n_d - 4)

    sp_wall = _speckle(rng, (n_d, n_w), (0.7, 1.6))
    sp_lung = _speckle(rng, (n_d, n_w), (0.8, 2.2))
    attenuation = np.exp(-1.1 * d)

    # Chest wall: soft tissue with a couple of brighter fascia bands.
    wall = 0.32 * sp_wall
    for depth_frac in rng.uniform(0.25, 0.8, size=2) * pleura:
        wall += 0.25 * np.exp(-(((d - depth_frac) * n_d / 1.2) ** 2)) * sp_wall
    below = np.arange(n_d)[:, None] >= pleura_row[None, :]
    rel = d - pleura_d[None, :]  # depth below the pleural line

    line_sigma = 0.9 if spec.label != "covid" else 1.3
    pleural_line = 0.95 * np.exp(-((rel * n_d / line_sigma) ** 2))
    if spec.label == "covid":  # gaps in the line
        gaps = cv2.GaussianBlur(rng.normal(0, 1, (1, n_w)).astype(np.float32), (0, 0), sigmaX=max(2, n_u / 25))
        pleural_line = pleural_line * np.where(gaps > 0.35 * gaps.std(), 0.35, 1.0)

    lung = 0.10 * sp_lung  # aerated lung: little signal below the line
    if spec.label in ("normal", "other"):  # A-lines: reverberations of the pleura at multiples of its depth
        for k in (2, 3, 4):
            lung += (0.55 / k) * np.exp(-(((d - k * pleura_d[None, :]) * n_d / 1.3) ** 2)) * sp_lung
    if spec.label in ("covid", "pneumonia"):  # B-lines: vertical comet tails from the pleura to the bottom
        count = int(rng.integers(3, 6)) if spec.label == "covid" else int(rng.integers(1, 3))
        for centre in rng.uniform(0.05, 0.95, size=count):
            width = rng.uniform(0.015, 0.04) * (1.0 + 0.6 * np.clip(rel, 0, None))
            lung += 0.7 * np.exp(-(((u - centre) / width) ** 2)) * (0.6 + 0.4 * sp_lung) * (rel > 0)
    if spec.label == "covid":  # small subpleural consolidations
        for centre in rng.uniform(0.1, 0.9, size=int(rng.integers(1, 3))):
            size_u, size_d = rng.uniform(0.04, 0.08), rng.uniform(0.04, 0.08)
            blob = ((u - centre) / size_u) ** 2 + (rel / size_d) ** 2 < 1.0
            lung = np.where(blob & (rel > 0), 0.38 * sp_wall, lung)
    if spec.label == "pneumonia":  # lobar consolidation (tissue-like) with air bronchograms
        c_u = rng.uniform(0.35, 0.65)
        region = (((u - c_u) / rng.uniform(0.3, 0.42)) ** 2 + ((rel - 0.25) / 0.3) ** 2 < 1.0) & (rel > 0)
        lung = np.where(region, 0.42 * sp_wall, lung)
        bronchi = np.zeros((n_d, n_w), dtype=np.float32)
        for _ in range(int(rng.integers(8, 15))):
            y0 = int((pleura + rng.uniform(0.05, 0.45)) * n_d)
            x0 = int((c_u + rng.uniform(-0.25, 0.25)) * n_u) + pad
            length = int(rng.uniform(0.02, 0.07) * n_u)
            angle = rng.uniform(-0.6, 0.6)
            x1, y1 = int(x0 + length * math.cos(angle)), int(y0 + length * math.sin(angle))
            cv2.line(bronchi, (x0, y0), (x1, y1), 1.0, 1)
        lung = np.where(region, np.maximum(lung, 0.95 * bronchi), lung)
    if spec.label == "other":  # pleural effusion: an anechoic region above a bright diaphragm
        top = pleura + rng.uniform(0.08, 0.15)
        bottom = rng.uniform(0.7, 0.85)
        c_u = rng.uniform(0.3, 0.7)
        effusion = (d > top) & (d < bottom - 0.25 * np.abs(u - c_u))
        lung = np.where(effusion, 0.015 * sp_lung, lung)
        diaphragm_d = bottom - 0.25 * np.abs(u - c_u)
        lung += 0.8 * np.exp(-(((d - diaphragm_d) * n_d / 1.5) ** 2)) * (0.5 + 0.5 * sp_wall)

    lung = (lung + pleural_line) * attenuation
    lung = np.where(below | (np.abs(rel * n_d) < 3), lung, 0.0)
    wall_full = wall * attenuation
    slide = {"normal": 0.03, "other": 0.012, "covid": 0.012, "pneumonia": 0.006}[spec.label]
    return _Tissue(
        wall=np.clip(wall_full[:, pad : pad + n_u], 0, 1).astype(np.float32),
        lung=np.clip(lung, 0, 1).astype(np.float32),
        pleura_row=pleura_row,
        slide_amp=slide * n_u,
        n_u=n_u,
    )


class _Renderer:
    """Everything fixed for a clip, computed once; ``frame(t)`` renders frame ``t``."""

    def __init__(self, spec: ClipSpec) -> None:
        self.spec = spec
        self.geo = _geometry(spec)
        win = spec.window
        self.n_d = max(16, win.h)
        self.n_u = max(16, win.w)
        self.tissue = _tissue(spec, self.n_d, self.n_u)
        self.map_x = (self.geo.lateral * (self.n_u - 1)).astype(np.float32)
        self.map_y = (self.geo.depth * (self.n_d - 1)).astype(np.float32)
        self.rng = np.random.default_rng([spec.seed, 41])
        self.static_rgb, self.static_mask = _static_overlays(spec)
        self.pointer_frames = spec.pointer_set()
        pad = (self.tissue.lung.shape[1] - self.n_u) // 2
        self.pad = pad
        rows = np.arange(self.n_d)[:, None]
        self.below = rows >= self.tissue.pleura_row[None, pad : pad + self.n_u]

    def image(self, t: int) -> np.ndarray:
        """The grey ultrasound image of frame ``t`` (H, W) uint8, black outside the FOV."""
        tis = self.tissue
        phase = 2 * math.pi * t / max(8.0, self.spec.fps * 1.6)
        shift = int(round(tis.slide_amp * math.sin(phase)))
        lung = tis.lung[:, self.pad + shift : self.pad + shift + self.n_u]
        grid = np.where(self.below, lung, tis.wall)
        # Speckle decorrelates a little from frame to frame (probe and patient motion).
        grid = grid * (1.0 + 0.08 * self.rng.standard_normal(grid.shape, dtype=np.float32))
        # Electronic noise floor: even anechoic fluid is not pure black on a real scanner.
        grid = grid + np.abs(0.035 + 0.015 * self.rng.standard_normal(grid.shape, dtype=np.float32))
        grey = cv2.remap(grid, self.map_x, self.map_y, cv2.INTER_LINEAR)
        out = np.clip(grey * 255.0, 0, 255).astype(np.uint8)
        out[~self.geo.fov_mask] = 0
        return out

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        grey = self.image(t)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        mask = self.static_mask.copy()
        rgb[self.static_mask] = self.static_rgb[self.static_mask]
        if t in self.pointer_frames:
            p_rgb, p_mask = _pointer(self.spec, t)
            rgb[p_mask] = p_rgb[p_mask]
            mask |= p_mask
        return rgb, mask


# -------------------------------------------------------------------------------------------------------- overlays


def _font_scale(height: int) -> float:
    return max(0.28, min(1.0, height / 520.0))


def _static_overlays(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """Draw the static overlays on an empty canvas; returns ``(rgb, mask)``. Drawn without anti-aliasing (LINE_8)."""
    h, w = spec.height, spec.width
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    drawn = np.zeros((h, w), dtype=np.uint8)
    win = spec.window
    rng = np.random.default_rng([spec.seed, 53])
    scale = _font_scale(h)

    def put(colour: tuple[int, int, int], draw) -> None:
        # Each element is drawn in 255 on its own layer and thresholded: OpenCV 5 anti-aliases text even with LINE_8,
        # and the truth must be exactly the pixels that carry the overlay's colour.
        layer = np.zeros((h, w), dtype=np.uint8)
        draw(layer)
        hit = layer >= 128
        canvas[hit] = colour
        drawn[hit] = 1

    if "text" in spec.overlays:
        _text_layer(spec, rng, put, scale)
    if "ruler" in spec.overlays:
        _ruler_layer(spec, rng, put, scale)

    radius = max(2, int(min(win.w, win.h) * 0.025))
    if "logo" in spec.overlays:
        colour = LOGO_COLORS[spec.logo_color]
        if spec.probe == "convex":  # in the empty top-right corner of the square, beside the sector
            centre = (win.x + win.w - 2 * radius - 1, win.y + 2 * radius + 1)
        else:  # just above the image if there is room, else on it (touching the FOV)
            top = win.y - 2 * radius - 2
            centre = (win.x + win.w - 2 * radius - 1, top if top - radius >= 0 else win.y + 2 * radius + 1)

        def draw_logo(img) -> None:
            cv2.circle(img, centre, radius, 255, -1, cv2.LINE_8)

        put(colour, draw_logo)

    if "marker" in spec.overlays:  # orientation marker: a small white triangle in the window's top-left corner
        size = max(4, 3 * radius)
        x, y = win.x + 1, win.y + 1
        points = np.array([[x, y], [x + size, y], [x, y + size]], dtype=np.int32)

        def draw_marker(img) -> None:
            cv2.fillPoly(img, [points], 255, cv2.LINE_8)

        put(TEXT_COLOR, draw_marker)
    return canvas, drawn > 0


def _text_layer(spec: ClipSpec, rng: np.random.Generator, put, scale: float) -> None:
    """The preset and output-power lines at the top left, the probe frequency at the bottom right."""
    h, w, thick = spec.height, spec.width, 1
    line_h = max(8, int(22 * scale))
    preset = str(rng.choice(["Lung", "Lung Preset", "LUNG"]))
    tis = f"TIS {rng.uniform(0.1, 0.9):.1f} MI {rng.uniform(0.6, 1.4):.1f}"
    for i, text in enumerate((preset, tis)):
        org = (2, line_h * (i + 1))

        def draw_text(img, text=text, org=org) -> None:
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_8)

        put(TEXT_COLOR, draw_text)
    freq = f"{rng.integers(2, 6)}MHz"
    (tw, _), _ = cv2.getTextSize(freq, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)

    def draw_freq(img) -> None:
        cv2.putText(img, freq, (w - tw - 3, h - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_8)

    put(TEXT_COLOR, draw_freq)


def _ruler_layer(spec: ClipSpec, rng: np.random.Generator, put, scale: float) -> None:
    """The depth ruler beside the field of view (right of it when there is room), labelled every 4 cm."""
    win, w, thick = spec.window, spec.width, 1
    right = win.x + win.w + 2
    (nw, _), _ = cv2.getTextSize("16", cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8, thick)
    x0 = right if right + 6 + nw < w else max(0, win.x - 8 - nw)
    depth_cm = int(rng.choice([8, 12, 16]))
    ticks = np.linspace(win.y, win.y + win.h - 1, depth_cm + 1)

    def draw_ruler(img) -> None:
        value = 255
        cv2.line(img, (x0, win.y), (x0, win.y + win.h - 1), value, 1, cv2.LINE_8)
        for k, y in enumerate(ticks):
            length = 5 if k % 2 == 0 else 3
            cv2.line(img, (x0, int(y)), (x0 + length, int(y)), value, 1, cv2.LINE_8)
            if k % 4 == 0 and k > 0:
                cv2.putText(img, str(k), (x0 + 6, int(y) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8, value,
                            thick, cv2.LINE_8)

    put(RULER_COLOR, draw_ruler)


def _pointer(spec: ClipSpec, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The pointer (a yellow arrow) at frame ``t``: it enters from the top right and moves towards the lung centre."""
    h, w = spec.height, spec.width
    win = spec.window
    ranges = [r for r in spec.pointer_frames if r[0] <= t <= r[1]]
    a, b = ranges[0]
    progress = (t - a) / max(1, b - a)
    start = np.array([w - 4.0, 4.0])
    end = np.array([win.x + 0.45 * win.w, win.y + 0.55 * win.h])
    tip = start + (end - start) * (0.2 + 0.8 * progress)
    length = max(8.0, 0.12 * min(w, h))
    tail = tip + np.array([length, -length]) / math.sqrt(2)
    thickness = max(2, min(w, h) // 60)
    layer = np.zeros((h, w), dtype=np.uint8)
    cv2.arrowedLine(layer, (int(tail[0]), int(tail[1])), (int(tip[0]), int(tip[1])), 255, thickness, cv2.LINE_8,
                    tipLength=0.4)
    hit = layer >= 128
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    canvas[hit] = POINTER_COLOR
    return canvas, hit


# -------------------------------------------------------------------------------------------------------- public API


def simulate_frames(spec: ClipSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(frame_rgb, overlay_mask)`` for every frame of ``spec``, in memory (no encoding)."""
    renderer = _Renderer(spec)
    for t in range(spec.num_frames):
        yield renderer.frame(t)


def simulate_truth(spec: ClipSpec) -> GroundTruth:
    """The ground truth of ``spec`` without rendering the ultrasound image."""
    geo = _geometry(spec)
    _, static = _static_overlays(spec)
    pointer = spec.pointer_set()
    masks = np.repeat(static[None], spec.num_frames, axis=0)
    for t in sorted(pointer):
        masks[t] |= _pointer(spec, t)[1]
    return GroundTruth(spec.probe, spec.label, spec.window, geo.fov_mask, masks, float(spec.fps), spec.container,
                       tuple(sorted(pointer)))


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _write_gif(frames: list[np.ndarray], fps: float, path: Path) -> None:
    """Palette GIF: 224 grey levels plus the overlay colours, so grey stays grey and marks keep their exact colour."""
    greys = np.linspace(0, 255, 224).round().astype(np.uint8)
    colours = [LOGO_COLORS[c] for c in LOGO_COLORS] + [POINTER_COLOR, RULER_COLOR]
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:224] = greys[:, None]
    palette[224 : 224 + len(colours)] = np.array(colours, dtype=np.uint8)
    pal_colours = palette[224 : 224 + len(colours)].astype(np.int32)
    images = []
    for frame in frames:
        grey = frame[:, :, 0].astype(np.float32)
        index = np.rint(grey * 223.0 / 255.0).astype(np.uint8)
        coloured = ~((frame[:, :, 0] == frame[:, :, 1]) & (frame[:, :, 1] == frame[:, :, 2]))
        if coloured.any():
            px = frame[coloured].astype(np.int32)
            nearest = np.argmin(((px[:, None, :] - pal_colours[None]) ** 2).sum(-1), axis=1)
            index[coloured] = (224 + nearest).astype(np.uint8)
        for k, colour in enumerate(colours):  # exact overlay colours (the ruler's grey too) keep their own entry
            index[(frame == np.array(colour, dtype=np.uint8)).all(axis=-1)] = 224 + k
        img = Image.fromarray(index, mode="P")
        img.putpalette(palette.ravel().tolist())
        images.append(img)
    duration = int(round(1000.0 / fps / 10.0)) * 10 or 10
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0,
                   optimize=False, disposal=1)


_CODECS = {  # container -> (format, codec, pixel format, options)
    "mp4": ("mp4", "libx264", "yuv420p", {"crf": "16", "preset": "veryfast"}),
    "mov": ("mov", "libx264", "yuv420p", {"crf": "16", "preset": "veryfast"}),
    "avi": ("avi", "mjpeg", "yuvj420p", {}),
    "wmv": ("asf", "wmv2", "yuv420p", {}),
}


def _write_video(frames: list[np.ndarray], spec: ClipSpec, path: Path) -> None:
    fmt, codec, pix_fmt, options = _CODECS[spec.container]
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=_rate(spec.fps), options=options)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, pix_fmt
        stream.thread_count = 1  # identical bytes for identical input
        if codec in ("mjpeg", "wmv2"):
            stream.codec_context.qmin = 1
            stream.codec_context.qmax = 3
            stream.bit_rate = 8_000_000
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_clip(spec: ClipSpec, path: Path | str) -> GroundTruth:
    """Encode ``spec`` to ``path`` with the real encoder of ``spec.container`` (atomically) and return its truth."""
    path = Path(path)
    frames, masks = [], []
    for rgb, mask in simulate_frames(spec):
        frames.append(rgb)
        masks.append(mask)
    try:
        with atomic_write(path, suffix=f".{spec.container}") as tmp:
            if spec.container == "gif":
                _write_gif(frames, spec.fps, tmp)
            else:
                _write_video(frames, spec, tmp)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise ClipError(f"cannot encode simulated {spec.container} clip {path}: {exc}") from exc
    geo = _geometry(spec)
    return GroundTruth(spec.probe, spec.label, spec.window, geo.fov_mask, np.stack(masks), float(spec.fps),
                       spec.container, tuple(sorted(spec.pointer_set())))
