"""Inpainting: regional inpainting equals whole-frame cv2.inpaint; unmasked pixels never change."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from processing.errors import InvalidChoiceError
from processing.pixels.clips import iter_frames
from processing.pixels.inpaint import inpaint, margin, regions
from processing.pixels.masks import dilate


def lus_like_frame(height: int = 180, width: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    base = 90 + 50 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    speckle = rng.gamma(2.0, 12.0, (height, width))
    grey = np.clip(base + speckle, 0, 255)
    return np.stack([grey, grey * 0.95, grey * 0.9 + 5], axis=-1).astype(np.uint8)


def overlay_mask(height: int = 180, width: int = 240) -> np.ndarray:
    """Marks like the release's: corner text, a depth scale on the edge, a dot, two marks close together."""
    mask = np.zeros((height, width), np.uint8)
    mask[2:14, 0:40] = 1  # text touching the left edge
    mask[30:170, width - 6:width] = 1  # depth scale on the right edge
    cv2.circle(mask, (120, 90), 6, 1, -1)  # orientation dot
    mask[150:154, 60:80] = 1
    mask[158:162, 60:80] = 1  # 4 px below the previous mark: their neighbourhoods overlap
    return dilate(mask.astype(bool))


@pytest.mark.parametrize("method,flag", [("ns", cv2.INPAINT_NS), ("telea", cv2.INPAINT_TELEA)])
def test_regional_inpainting_equals_whole_frame_inpainting(method: str, flag: int) -> None:
    frame, mask = lus_like_frame(), overlay_mask()
    whole = cv2.inpaint(frame, mask.astype(np.uint8) * 255, 3, flag)
    assert np.array_equal(inpaint(frame, mask, method), whole)


@pytest.mark.parametrize("method,flag", [("ns", cv2.INPAINT_NS), ("telea", cv2.INPAINT_TELEA)])
def test_regional_inpainting_equals_whole_frame_on_a_real_frame(realdata: Path, method: str, flag: int) -> None:
    frame = next(iter_frames(realdata / "videos" / "litfl__Reg_liftl_pneucase3_clip1.mp4")).image
    h, w = frame.shape[:2]
    mask = np.zeros((h, w), bool)
    mask[10:30, 10:70] = True
    mask[h // 2 - 5:h // 2 + 5, w - 12:w] = True
    mask[h - 20:h, 100:104] = True
    mask = dilate(mask)
    whole = cv2.inpaint(frame, mask.astype(np.uint8) * 255, 3, flag)
    assert np.array_equal(inpaint(frame, mask, method), whole)


@pytest.mark.parametrize("method", ["ns", "telea"])
def test_pixels_outside_the_mask_are_never_changed(method: str) -> None:
    frame, mask = lus_like_frame(seed=3), overlay_mask()
    out = inpaint(frame, mask, method)
    assert np.array_equal(out[~mask], frame[~mask])
    assert not np.array_equal(out[mask], frame[mask])


def test_inpainting_fills_a_white_mark_with_its_surroundings() -> None:
    frame = lus_like_frame()
    frame[80:100, 110:130] = 255
    mask = np.zeros(frame.shape[:2], bool)
    mask[80:100, 110:130] = True
    out = inpaint(frame, dilate(mask))
    assert out[80:100, 110:130].mean() < 200  # no longer the white mark


def test_input_frame_is_not_modified() -> None:
    frame, mask = lus_like_frame(), overlay_mask()
    before = frame.copy()
    inpaint(frame, mask)
    assert np.array_equal(frame, before)


def test_empty_mask_returns_an_equal_copy() -> None:
    frame = lus_like_frame()
    out = inpaint(frame, np.zeros(frame.shape[:2], bool))
    assert np.array_equal(out, frame) and out is not frame


def test_regions_are_padded_merged_and_clipped_to_the_frame() -> None:
    mask = np.zeros((50, 50), bool)
    mask[0:2, 0:2] = True
    mask[0:2, 8:10] = True  # close enough to merge with the first
    mask[40:42, 40:42] = True
    pad = margin(3)
    assert regions(mask, pad) == [(0, 0, 10 + pad, 2 + pad), (40 - pad, 40 - pad, 42 + pad, 42 + pad)]


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidChoiceError, match="ns, telea"):
        inpaint(lus_like_frame(), overlay_mask(), "biharmonic")


def test_precomputed_regions_give_the_same_result() -> None:
    frame, mask = lus_like_frame(), overlay_mask()
    assert np.array_equal(inpaint(frame, mask, boxes=regions(mask, margin())), inpaint(frame, mask))
