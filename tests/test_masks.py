"""Masks: JPEG thresholding, dilation, frame-specific masks, user overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processing.errors import ClipError
from processing.pixels.masks import MaskSet, dilate, find_mask, read_mask


def block_mask() -> np.ndarray:
    mask = np.zeros((32, 48), bool)
    mask[9:21, 13:30] = True  # off JPEG's 8x8 grid, so compression rings around the edges
    return mask


def save(mask: np.ndarray, path: Path, **kw) -> Path:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path, **kw)
    return path


def test_jpeg_mask_is_thresholded_back_to_the_drawn_mask(tmp_path: Path) -> None:
    path = save(block_mask(), tmp_path / "m.jpg", quality=90)
    raw = np.asarray(Image.open(path))
    assert set(np.unique(raw)) - {0, 255}  # JPEG noise is present...
    assert np.array_equal(read_mask(path), block_mask())  # ...and thresholding removes it


def test_release_mask_noise_values_are_not_overlay(reference_release: Path) -> None:
    path = reference_release / "data" / "mask" / "2_butterfly_covid_prc_convex_frame0_mask.jpg"
    raw = np.asarray(Image.open(path).convert("L"))
    noise = (raw > 0) & (raw < 10)
    assert noise.any()
    assert not read_mask(path)[noise].any()


def test_unreadable_mask_raises_clip_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "bad_mask.jpg").write_text("not an image")
    with pytest.raises(ClipError, match="bad_mask.jpg"):
        read_mask(tmp_path / "bad_mask.jpg")


def test_dilation_grows_a_pixel_into_a_5x5_square_and_tight_keeps_it() -> None:
    mask = np.zeros((11, 11), bool)
    mask[5, 5] = True
    grown = dilate(mask)
    expected = np.zeros_like(mask)
    expected[3:8, 3:8] = True
    assert np.array_equal(grown, expected)
    assert np.array_equal(dilate(mask, tight=True), mask)


def test_user_mask_folder_overrides_the_release_by_name_and_accepts_png(tmp_path: Path) -> None:
    release, user = tmp_path / "release", tmp_path / "user"
    release.mkdir(), user.mkdir()
    name = "7_litfl_covid_prc_convex_frame0_mask.jpg"
    save(block_mask(), release / name)
    assert find_mask(name, (user,), release) == release / name
    save(block_mask(), user / "7_litfl_covid_prc_convex_frame0_mask.png")
    assert find_mask(name, (user,), release) == user / "7_litfl_covid_prc_convex_frame0_mask.png"
    save(block_mask(), user / name)
    assert find_mask(name, (user,), release) == user / name  # the exact name wins over the png
    assert find_mask("other_mask.jpg", (user,), release) is None


def test_frame_specific_mask_is_combined_with_the_main_mask_for_its_frame(tmp_path: Path) -> None:
    main = np.zeros((32, 48), bool)
    main[0:8, 0:8] = True
    pointer = np.zeros((32, 48), bool)
    pointer[16:24, 32:40] = True
    masks = MaskSet("clip", (48, 32), save(main, tmp_path / "main.png"), {3: save(pointer, tmp_path / "f3.png")},
                    tight=True)
    assert np.array_equal(masks.for_frame(0), main)
    assert np.array_equal(masks.for_frame(3), main | pointer)
    assert masks.for_frame(0) is masks.for_frame(7)  # the main mask is dilated once and reused


def test_mask_set_fits_a_one_pixel_short_mask_and_rejects_a_wrong_one(tmp_path: Path) -> None:
    short = save(np.ones((31, 47), bool), tmp_path / "short.png")
    assert MaskSet("clip", (48, 32), short, {}, tight=True).for_frame(0).shape == (32, 48)
    wrong = save(np.ones((20, 20), bool), tmp_path / "wrong.png")
    with pytest.raises(ClipError, match=r"clip.*wrong\.png.*20x20.*48x32"):
        MaskSet("clip", (48, 32), wrong, {}, tight=True)


def test_no_masks_means_no_inpainting() -> None:
    masks = MaskSet("clip", (48, 32), None, {}, tight=False)
    assert not masks and masks.for_frame(0) is None
