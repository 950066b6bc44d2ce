"""Where a copy of a clip sits in the original: its pixels and its frames, and the release's plan moved into it.

The release's crop window, masks, frame-specific masks and deleted frame ranges are in the original file's pixels
and frame numbers. A copy (POCOVID's, for instance) shows a square ``crop`` of the original frame, resized to the
copy's ``width`` x ``height``, and the original's frames from ``first`` on: one copy frame per original frame
(``timing="frames"``, fps relabelled at most) or resampled in time (``timing="time"``: copy frame k shows the
original at ``first / original_fps + k / copy_fps``, i.e. the original frame displayed then).

Pure functions on arrays and numbers; no I/O, no HTTP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from processing.errors import CovidxError
from processing.release.copies import TIMINGS  # how a copy's frames map onto the original's
from processing.windows import Window


@dataclass(frozen=True)
class CopyMap:
    """A copy's place in its original (see the module docstring)."""

    crop: Window  # in original pixels
    first: int  # the original frame of copy frame 0
    timing: str  # "frames" | "time"
    original_fps: float
    copy_fps: float
    width: int  # the copy's frame size
    height: int
    frames: int  # the copy's frame count

    def __post_init__(self) -> None:
        if self.timing not in TIMINGS:
            raise CovidxError(f"invalid copy timing {self.timing!r}; valid values: {', '.join(TIMINGS)}")
        if min(self.crop.w, self.crop.h, self.width, self.height, self.frames) < 1 or self.first < 0:
            raise CovidxError(f"invalid copy map {self}")
        if self.timing == "time" and not (self.original_fps > 0 and self.copy_fps > 0):
            raise CovidxError(f"copy map with timing 'time' needs both frame rates, got {self}")

    @property
    def scale(self) -> tuple[float, float]:
        """Copy pixels per original pixel, (x, y)."""
        return self.width / self.crop.w, self.height / self.crop.h

    def original_frame(self, k: int) -> int:
        """The original frame number copy frame ``k`` shows."""
        if self.timing == "frames":
            return self.first + k
        return self.first + math.floor(k * self.original_fps / self.copy_fps + 0.5)

    def window(self, window: Window) -> Window:
        """A window in original pixels as a window in the copy's pixels (clipped to the copy)."""
        sx, sy = self.scale
        x0 = max(0, round((window.x - self.crop.x) * sx))
        y0 = max(0, round((window.y - self.crop.y) * sy))
        x1 = min(self.width, round((window.x + window.w - self.crop.x) * sx))
        y1 = min(self.height, round((window.y + window.h - self.crop.y) * sy))
        if x1 <= x0 or y1 <= y0:
            raise CovidxError(f"window {window} lies outside the copy's part of the original ({self.crop})")
        return Window(x0, y0, x1 - x0, y1 - y0)

    def mask(self, mask: np.ndarray, window: Window) -> np.ndarray:
        """``mask`` drawn on ``window`` (original pixels) as a mask on :meth:`window` of it (copy pixels).

        The mask is laid on the copy's crop of the original and resized with area averaging, so a one-pixel
        overlay line survives a downscale (any covered part marks the copy pixel)."""
        if mask.shape != (window.h, window.w):
            raise CovidxError(f"mask of shape {mask.shape} does not match its window {window}")
        canvas = np.zeros((self.crop.h, self.crop.w), np.uint8)
        x0, y0 = max(window.x, self.crop.x), max(window.y, self.crop.y)
        x1 = min(window.x + window.w, self.crop.x + self.crop.w)
        y1 = min(window.y + window.h, self.crop.y + self.crop.h)
        if x1 > x0 and y1 > y0:
            canvas[y0 - self.crop.y:y1 - self.crop.y, x0 - self.crop.x:x1 - self.crop.x] = \
                mask[y0 - window.y:y1 - window.y, x0 - window.x:x1 - window.x].astype(np.uint8) * 255
        interpolation = cv2.INTER_AREA if self.width < self.crop.w else cv2.INTER_NEAREST
        scaled = cv2.resize(canvas, (self.width, self.height), interpolation=interpolation) > 0
        target = self.window(window)
        return scaled[target.y:target.y + target.h, target.x:target.x + target.w]

    def frame_sources(self) -> dict[int, int]:
        """Copy frame -> the original frame it shows, for every copy frame."""
        return {k: self.original_frame(k) for k in range(self.frames)}

    def deleted(self, ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        """The copy frames showing an original frame of the inclusive ``ranges``, as inclusive ranges."""
        hit = [k for k, n in self.frame_sources().items() if any(a <= n <= b for a, b in ranges)]
        out: list[tuple[int, int]] = []
        for k in hit:
            if out and k == out[-1][1] + 1:
                out[-1] = (out[-1][0], k)
            else:
                out.append((k, k))
        return tuple(out)


__all__ = ["CopyMap", "TIMINGS"]
