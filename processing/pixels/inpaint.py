"""Inpainting: fill the overlay pixels of a frame from their surroundings. A pure function on arrays.

Navier-Stokes (``cv2.INPAINT_NS``, Bertalmio et al., what the paper names) by default; Telea
(``cv2.INPAINT_TELEA``, what the upstream code ran) as an option; radius 3 for both.

Only the masked neighbourhood is processed: each connected mask region's bounding box, padded by ``margin(r)`` =
r + 2 pixels, is inpainted on its own (boxes that overlap are merged first) and pasted back. The result is
identical, bit for bit, to ``cv2.inpaint`` on the whole frame (tests/test_inpaint.py checks it for both methods):
OpenCV fills each masked pixel from known pixels at most ``r`` away and from the fast-marching distances of
their 1-pixel neighbours, and pads the image with a 1-pixel border; so pixels farther than r + 1 from the mask
cannot influence it (r + 1 was the smallest exact margin measured; +1 spare). Regions more than 2 * margin apart
never see each other, and within a box OpenCV's heap processes pixels in the same relative order as in the full
frame. Pixels outside the mask are never changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from processing.errors import check_choice

METHODS = {"ns": cv2.INPAINT_NS, "telea": cv2.INPAINT_TELEA}
RADIUS = 3


def margin(radius: int = RADIUS) -> int:
    """Padding around each mask region that makes regional inpainting equal whole-frame inpainting."""
    return int(round(radius)) + 2


def regions(mask: np.ndarray, pad: int) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` (exclusive ends, clipped to the frame) around the mask's 8-connected regions,
    each padded by ``pad``, with overlapping boxes merged until none overlap."""
    height, width = mask.shape
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    boxes = [
        [int(x) - pad, int(y) - pad, int(x + w) + pad, int(y + h) + pad] for x, y, w, h, _a in stats[1:count]
    ]
    merged = True
    while merged:
        merged = False
        boxes.sort()
        out: list[list[int]] = []
        for box in boxes:
            for other in out:
                if box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]:
                    other[:] = [min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]),
                                max(box[3], other[3])]
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return [(max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)) for x0, y0, x1, y1 in boxes]


def inpaint(
    frame: np.ndarray,
    mask: np.ndarray,
    method: str = "ns",
    radius: int = RADIUS,
    boxes: Sequence[tuple[int, int, int, int]] | None = None,
) -> np.ndarray:
    """Return a copy of ``frame`` (RGB uint8) with the True pixels of ``mask`` (bool, same H x W) filled in.

    ``method`` is ``"ns"`` (Navier-Stokes) or ``"telea"``. Equal to whole-frame ``cv2.inpaint``; only the
    padded neighbourhoods of the mask regions are computed. ``boxes`` = ``regions(mask, margin(radius))`` may be
    passed by a caller reusing one mask over many frames, to skip the connected-component analysis.
    """
    check_choice("inpaint method", method, METHODS)
    if mask.shape != frame.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match frame shape {frame.shape[:2]}")
    out = frame.copy()
    if not mask.any():
        return out
    for x0, y0, x1, y1 in boxes if boxes is not None else regions(mask, margin(radius)):
        inside = mask[y0:y1, x0:x1] != 0  # a new contiguous bool array
        # OpenCV inpaints the non-zero mask pixels: the bool bytes (0/1) serve as its 8-bit mask
        patch = cv2.inpaint(np.ascontiguousarray(frame[y0:y1, x0:x1]), inside.view(np.uint8), radius, METHODS[method])
        np.copyto(out[y0:y1, x0:x1], patch, where=inside[..., None])  # outside the mask the frame is kept exactly
    return out
