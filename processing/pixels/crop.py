"""Crop a frame to a window, and fit release masks to the crop size. Pure functions on arrays; no I/O.

Odd crop sizes are kept exactly (upstream's OpenCV writer truncated them to even). The release masks were drawn
on those even-truncated frames (a 1055x1055 crop has a 1054x1054 mask), so :func:`fit_mask` grows a mask that is
exactly one pixel short in a dimension by repeating its last row/column; anything further off is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from processing.errors import ClipError
from processing.windows import Window


def check_window(window: Window, width: int, height: int, clip: object) -> None:
    """Raise :class:`ClipError` naming ``clip`` when ``window`` does not lie inside a ``width`` x ``height`` frame."""
    if not window.fits(width, height):
        raise ClipError(
            f"clip {clip}: crop window {window} (x,y,w,h) lies outside the {width}x{height} frame"
        )


def crop(frame: np.ndarray, window: Window | None) -> np.ndarray:
    """The pixels of ``frame`` inside ``window`` (a view, no copy); the whole frame when ``window`` is None.

    The caller checks the window first (:func:`check_window`); a window past the edge raises ValueError here.
    """
    if window is None:
        return frame
    if not window.fits(frame.shape[1], frame.shape[0]):
        raise ValueError(f"crop window {window} lies outside the {frame.shape[1]}x{frame.shape[0]} frame")
    rows, cols = window.slices()
    return frame[rows, cols]


def fit_mask(mask: np.ndarray, size: tuple[int, int], clip: object, mask_file: Path | str | None) -> np.ndarray:
    """Return ``mask`` at ``size`` = (w, h): unchanged when it matches, edge-padded when one pixel short.

    A mask one pixel narrower (or shorter) than the crop gets its last column (row) repeated, which is what the
    overlay would have been under OpenCV's even truncation. Any other difference raises :class:`ClipError`
    naming the clip, the mask file and both sizes.
    """
    width, height = size
    mask_h, mask_w = mask.shape[:2]
    dw, dh = width - mask_w, height - mask_h
    if dw not in (0, 1) or dh not in (0, 1):
        raise ClipError(
            f"clip {clip}: mask {mask_file} is {mask_w}x{mask_h} but the cropped frame is {width}x{height}; "
            "only a mask one pixel short of the crop (upstream's even truncation) can be fitted"
        )
    if dw or dh:
        mask = np.pad(mask, ((0, dh), (0, dw)), mode="edge")
    return mask
