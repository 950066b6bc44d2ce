"""Crop windows and the one-pixel fit of release masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processing.errors import ClipError
from processing.pixels.crop import check_window, crop, fit_mask
from processing.pixels.masks import read_mask
from processing.windows import Window


def test_crop_returns_the_window_pixels_and_leaves_the_frame_alone() -> None:
    frame = np.arange(20 * 30 * 3, dtype=np.uint32).reshape(20, 30, 3).astype(np.uint8)
    before = frame.copy()
    out = crop(frame, Window(3, 5, 7, 9))
    assert np.array_equal(out, before[5:14, 3:10])
    assert np.array_equal(frame, before)


def test_odd_window_sizes_are_kept_exactly() -> None:
    out = crop(np.zeros((1080, 1928, 3), np.uint8), Window(436, 12, 1055, 1055))
    assert out.shape == (1055, 1055, 3)


def test_no_window_keeps_the_whole_frame() -> None:
    frame = np.ones((4, 5, 3), np.uint8)
    assert crop(frame, None) is frame


def test_window_outside_the_frame_raises_clip_error_naming_the_clip() -> None:
    with pytest.raises(ClipError, match=r"clip a\.mp4.*10,10,60,40.*64x48"):
        check_window(Window(10, 10, 60, 40), 64, 48, "a.mp4")
    check_window(Window(4, 8, 60, 40), 64, 48, "a.mp4")  # touches the edges: fine


def test_mask_one_pixel_short_is_padded_with_its_edge_row_and_column() -> None:
    mask = np.zeros((4, 4), bool)
    mask[3, 1] = True  # last row
    mask[0, 3] = True  # last column
    fitted = fit_mask(mask, (5, 5), "clip", "m.jpg")
    assert fitted.shape == (5, 5)
    assert np.array_equal(fitted[:4, :4], mask)
    assert np.array_equal(fitted[4, :4], mask[3]) and np.array_equal(fitted[:4, 4], mask[:, 3])
    assert fitted[4, 4] == mask[3, 3]


def test_mask_one_pixel_short_in_one_dimension_only() -> None:
    fitted = fit_mask(np.ones((6, 4), bool), (5, 6), "clip", "m.jpg")
    assert fitted.shape == (6, 5) and fitted.all()


def test_matching_mask_is_returned_unchanged() -> None:
    mask = np.eye(5, dtype=bool)
    assert fit_mask(mask, (5, 5), "clip", "m.jpg") is mask


@pytest.mark.parametrize("shape", [(3, 5), (5, 6), (6, 6)])
def test_mask_off_by_more_than_one_pixel_or_larger_raises_naming_clip_mask_and_sizes(shape) -> None:
    with pytest.raises(ClipError) as info:
        fit_mask(np.zeros(shape, bool), (5, 5), "3_butterfly_covid", Path("masks/3_mask.jpg"))
    message = str(info.value)
    assert "3_butterfly_covid" in message and "3_mask.jpg" in message
    assert f"{shape[1]}x{shape[0]}" in message and "5x5" in message


def test_release_mask_for_an_odd_crop_fits_the_exact_crop(reference_release: Path) -> None:
    # 3_butterfly_covid: 1928x1080 source, 1055x1055 crop; upstream's mask is 1054x1054
    mask = read_mask(reference_release / "data" / "mask" / "3_butterfly_covid_prc_convex_frame0_mask.jpg")
    assert mask.shape == (1054, 1054)
    fitted = fit_mask(mask, (1055, 1055), "3_butterfly_covid", "frame0_mask.jpg")
    assert fitted.shape == (1055, 1055)
    assert fitted.sum() == mask.sum() + mask[-1].sum() + mask[:, -1].sum() + mask[-1, -1]
