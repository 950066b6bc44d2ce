"""Specification of processing.pixels.autodetect: automatic field-of-view crop and overlay masks.

Simulated clips (processing.demo.simulate) carry exact ground truth; real clips with burned-in overlays are read from
../shared/realdata in place and the tests skip when it is absent.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import cv2
import numpy as np
import pytest

from processing.demo.simulate import ClipSpec, simulate_frames, write_clip
from processing.errors import ClipError, InvalidChoiceError
from processing.pixels.autodetect import (
    Detection,
    _probe_of,
    _trim_static_edges,
    _without_panel_black,
    detect_clip,
    detect_fov,
    detect_frames,
    detect_overlays,
    score_detection,
    window_iou,
)
from processing.pixels.inpaint import inpaint
from processing.windows import Window

# ------------------------------------------------------------------------------------------------ hand-made frames


def _sector(width: int = 96, height: int = 72) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    r = np.hypot(xs - width / 2, ys + 14.0)
    return (r >= 20) & (r <= 66) & (np.abs(np.arctan2(xs - width / 2, ys + 14.0)) <= 0.45)


def _fan_clip(n: int = 10, width: int = 96, height: int = 72, *, pointer: tuple[int, ...] = ()) -> list[np.ndarray]:
    """A speckled sector on black, white text top-left, a static blue dot, and a red blob on ``pointer`` frames."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width]
    sector = _sector(width, height)
    frames = []
    for t in range(n):
        grey = (rng.rayleigh(40, (height, width)) + 20).clip(0, 255).astype(np.uint8)
        grey[~sector] = 0
        frame = np.repeat(grey[:, :, None], 3, axis=2)
        # in the empty top corners of the square around the sector
        cv2.putText(frame, "L5", (66, 9), cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 255), 1, cv2.LINE_8)
        cv2.circle(frame, (24, 6), 3, (40, 90, 255), -1)
        if t in pointer:
            cv2.circle(frame, (width // 2, 30 + 2 * t), 3, (255, 30, 30), -1)
        frames.append(frame)
    return frames


def test_fov_of_a_sector_is_a_convex_probe_with_a_square_window_around_it():
    frames = _fan_clip()
    fov = detect_fov(frames)
    assert fov.probe == "convex"
    assert fov.window.w == fov.window.h
    ys, xs = np.nonzero(_sector())
    true = Window(int(xs.min()), int(ys.min()), int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1)
    side = max(true.w, true.h)
    square = Window(true.x + true.w // 2 - side // 2, true.y + true.h // 2 - side // 2, side, side)
    assert window_iou(fov.window, square) >= 0.85


def test_fov_of_a_rectangle_is_a_linear_probe_with_its_bounding_box():
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(8):
        frame = np.zeros((60, 80, 3), np.uint8)
        frame[10:55, 20:70] = rng.integers(30, 220, (45, 50, 1), dtype=np.uint8)
        frames.append(frame)
    fov = detect_fov(frames)
    assert fov.probe == "linear"
    assert window_iou(fov.window, Window(20, 10, 50, 45)) >= 0.95


def test_static_text_and_coloured_dot_are_masked_and_the_sector_is_not():
    frames = _fan_clip()
    fov = detect_fov(frames)
    overlays = detect_overlays(frames, fov.window, region=fov.region)
    rows, cols = fov.window.slices()
    blue = (frames[0][:, :, 2].astype(int) - frames[0][:, :, 0] > 100)[rows, cols]
    assert blue.any() and overlays.main_mask[blue].all()
    white = (frames[0].min(axis=2) > 200)[rows, cols] & ~_sector()[rows, cols]
    assert white.sum() > 10 and overlays.main_mask[white].all()
    core = cv2.erode(fov.region.astype(np.uint8), np.ones((7, 7), np.uint8))[rows, cols] > 0
    assert overlays.main_mask[core].mean() < 0.01


def test_moving_pointer_gets_frame_masks_only_on_its_frames():
    frames = _fan_clip(pointer=(3, 4, 5))
    fov = detect_fov(frames)
    overlays = detect_overlays(frames, fov.window, region=fov.region)
    assert sorted(overlays.frame_masks) == [3, 4, 5]
    rows, cols = fov.window.slices()
    red = ((frames[4][:, :, 0].astype(int) - frames[4][:, :, 2]) > 150)[rows, cols]
    assert overlays.frame_masks[4][red].all()
    assert not overlays.main_mask[red].any()


def _white_arrow(frame: np.ndarray, tip: tuple[int, int]) -> np.ndarray:
    """Draw a white arrow (anti-aliased, pointing left) with its tip at ``tip``; returns the arrow's pixels."""
    x, y = tip
    shape = np.array([[x, y], [x + 7, y - 5], [x + 7, y - 2], [x + 14, y - 2], [x + 14, y + 2], [x + 7, y + 2],
                      [x + 7, y + 5]], np.int32)
    cv2.fillPoly(frame, [shape], (255, 255, 255), cv2.LINE_AA)
    drawn = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(drawn, [shape], 1)
    return drawn > 0


def test_moving_white_arrow_gets_frame_masks_only_on_its_frames():
    frames = _fan_clip(n=12)
    arrows = {t: _white_arrow(frames[t], (38 + 2 * t, 30 + t)) for t in (4, 5, 6)}
    for detection in (detect_frames(frames), None):
        if detection is None:  # the array API on the same frames
            fov = detect_fov(frames)
            overlays = detect_overlays(frames, fov.window, region=fov.region)
            window, frame_masks, main = fov.window, overlays.frame_masks, overlays.main_mask
        else:
            window, frame_masks, main = detection.window, detection.frame_masks, detection.main_mask
        assert sorted(frame_masks) == [4, 5, 6]
        rows, cols = window.slices()
        for t, arrow in arrows.items():
            inside = arrow[rows, cols]
            assert frame_masks[t][inside].mean() > 0.95
            assert (frame_masks[t] & ~main).sum() <= 3 * inside.sum()  # the arrow and its rim, not the lung
        assert not main[arrows[5][rows, cols]].any()


def test_pointer_over_the_lung_drops_the_frame_under_drop_policy():
    frames = _fan_clip(pointer=(3, 4, 5))
    overlays = detect_overlays(frames, detect_fov(frames).window, pointer_policy="drop", indices=range(10, 20))
    assert overlays.dropped_frames == (13, 14, 15)
    assert not overlays.frame_masks


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: [np.zeros((48, 64, 3), np.uint8)] * 6, id="blank"),
        pytest.param(
            lambda: [cv2.putText(np.zeros((48, 64, 3), np.uint8), "TEXT", (2, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                                 (255, 255, 255), 1)] * 6,
            id="text-only",
        ),
        pytest.param(
            lambda: [np.random.default_rng(t).integers(0, 255, (48, 64, 3), dtype=np.uint8) for t in range(6)],
            id="colour-noise-photo",
        ),
    ],
)
def test_clip_without_field_of_view_is_an_error_naming_the_clip(make):
    with pytest.raises(ClipError, match=r"clip-42: no ultrasound field of view found"):
        detect_frames(make(), clip_id="clip-42")


def test_invalid_pointer_policy_lists_the_valid_values():
    with pytest.raises(InvalidChoiceError, match="mask, drop"):
        detect_frames(_fan_clip(), pointer_policy="blur")


def test_sampling_is_bounded_and_evenly_spaced():
    frames = _fan_clip(n=40)
    detection = detect_frames(frames, max_sample_frames=8)
    assert 4 <= len(detection.sampled_frames) <= 8
    gaps = np.diff(detection.sampled_frames)
    assert len(set(gaps.tolist())) == 1
    assert detection.frame_count == 40


def test_a_pointer_beside_a_colour_photo_is_found_when_the_frames_can_be_read_again():
    # A colour photo (an inset of the patient) to the right of the sector colours 30% of every frame: too many
    # coloured pixels to keep per frame in one pass, so the pointer on frame 4 was not seen
    def frames(photo_width: int = 40) -> list[np.ndarray]:
        photo = np.random.default_rng(5).integers(0, 255, (72, photo_width, 3), dtype=np.uint8)
        photo[..., 0] = 230  # reddish: chroma well over 40
        return [np.concatenate([frame, photo], axis=1) for frame in _fan_clip(pointer=(4,))]

    one_pass = detect_frames(frames(), pointer_policy="drop")
    twice = detect_frames(frames(), pointer_policy="drop", again=frames)
    assert one_pass.window == twice.window and twice.window.x + twice.window.w <= 96  # the sector, not the photo
    assert one_pass.dropped_frames == ()
    assert twice.dropped_frames == (4,)
    with pytest.raises(ClipError, match=r"^clip-9: frame 0 has shape .* on a second read"):
        detect_frames(frames(), clip_id="clip-9", again=lambda: frames(30))  # the file changed under us


def test_summary_names_window_probe_and_frame_counts():
    detection = detect_frames(_fan_clip(pointer=(2,)), clip_id="7_demo")
    text = detection.summary()
    assert text.startswith(f"7_demo: window {detection.window} probe convex")
    assert "1 frame masks, 0 dropped (of 10 frames)" in text


def test_masks_leave_ultrasound_outside_them_untouched_by_inpainting():
    frames = _fan_clip()
    detection = detect_frames(frames)
    crop = frames[0][detection.window.slices()]
    clean = inpaint(crop, detection.main_mask)
    assert np.array_equal(clean[~detection.main_mask], crop[~detection.main_mask])


# ------------------------------------------------------------------------------------------------ simulated clips

# (probe, container, label, width, height, pointer frames): the regression set; targets on the median clip.
SIMULATED = [
    ("convex", "mp4", "covid", 160, 120, ((5, 9),)),
    ("convex", "gif", "normal", 320, 240, ()),
    ("convex", "avi", "pneumonia", 320, 240, ((3, 6),)),
    ("convex", "wmv", "normal", 160, 120, ()),
    ("linear", "mp4", "covid", 320, 240, ()),
    ("linear", "gif", "pneumonia", 160, 120, ((5, 9),)),
    ("linear", "avi", "covid", 320, 240, ()),
    ("linear", "mov", "normal", 320, 240, ()),
]


@pytest.fixture(scope="module")
def simulated_scores(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("sim")
    scores = []
    for seed, (probe, container, label, w, h, pointer) in enumerate(SIMULATED):
        spec = ClipSpec(probe=probe, label=label, width=w, height=h, num_frames=14, container=container,
                        seed=seed, pointer_frames=pointer)
        truth = write_clip(spec, root / f"c{seed}.{container}")
        detection = detect_clip(root / f"c{seed}.{container}")
        scores.append(score_detection(detection, truth.fov_window, truth.probe, truth.overlay_masks))
    return scores


def test_simulated_median_crop_iou_reaches_target(simulated_scores):
    assert statistics.median(s.crop_iou for s in simulated_scores) >= 0.95
    assert min(s.crop_iou for s in simulated_scores) >= 0.85


def test_simulated_probe_is_always_right(simulated_scores):
    assert all(s.probe_ok for s in simulated_scores)


def test_simulated_median_overlay_recall_and_precision_reach_targets(simulated_scores):
    assert statistics.median(s.recall for s in simulated_scores) >= 0.98
    assert statistics.median(s.precision for s in simulated_scores) >= 0.9


def test_simulated_pointer_frames_get_their_own_masks(tmp_path):
    spec = ClipSpec(probe="convex", width=160, height=120, num_frames=14, container="gif", pointer_frames=((4, 8),))
    truth = write_clip(spec, tmp_path / "p.gif")
    detection = detect_clip(tmp_path / "p.gif", clip_id="p")
    assert set(detection.frame_masks) <= set(truth.pointer_frames)
    assert len(detection.frame_masks) >= 4
    dropped = detect_clip(tmp_path / "p.gif", pointer_policy="drop")
    assert set(dropped.dropped_frames) | set(dropped.frame_masks) <= set(truth.pointer_frames)
    assert dropped.dropped_frames


def test_in_memory_simulated_frames_match_the_file_path_result():
    spec = ClipSpec(probe="convex", width=160, height=120, num_frames=10)
    frames = [rgb for rgb, _ in simulate_frames(spec)]
    detection = detect_frames(frames)
    assert window_iou(detection.window, spec.window) >= 0.95


# Detection speed is measured by benchmarks/bench_autodetect.py (BENCHMARKS.md), not by a timed test.


# ------------------------------------------------------------------------------------------------ real clips


def _overlay_clip(realdata: Path, stem: str) -> Path:
    path = realdata / "videos" / f"twitter_taotepocus__{stem}.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="module")
def single_sector(realdata) -> tuple[Path, Detection]:
    path = _overlay_clip(realdata, "1457933751766421505")  # one sector, ruler right, 'B' dot, watermark
    return path, detect_clip(path, max_sample_frames=16)


def test_real_single_sector_is_convex_and_crop_excludes_ruler_and_watermark(single_sector):
    _path, detection = single_sector
    w = detection.window
    assert detection.probe == "convex"
    # depth ruler digits start at x ~ 670 of 910; the TaotePOCUS watermark lies in the bottom-right corner
    # (x > 690, y > 640): a square around the sector keeps the ruler partly but never the watermark
    assert w.x + w.w <= 800 and w.y + w.h <= 660
    assert w.w >= 550  # the sector is ~ 500 px wide and 610 px tall


def test_real_single_sector_masks_the_orientation_dot(single_sector):
    path, detection = single_sector
    from processing.pixels.clips import iter_frames

    frame = next(iter(iter_frames(path))).image[detection.window.slices()]
    blue = (frame[:, :, 2].astype(int) - frame[:, :, 0]) > 80
    assert blue.sum() > 50
    assert detection.main_mask[blue].mean() > 0.95


def test_real_single_sector_masks_little_inside_the_lung(single_sector):
    _path, detection = single_sector
    rows, cols = detection.window.slices()
    h, w = detection.main_mask.shape
    core = detection.main_mask[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3]
    assert core.mean() < 0.002


_DETECTIONS: dict[str, Detection] = {}


def _detected(realdata: Path, stem: str) -> tuple[Path, Detection]:
    """Detection of a real overlay clip, computed once per test session (16 sampled frames)."""
    path = _overlay_clip(realdata, stem)
    if stem not in _DETECTIONS:
        _DETECTIONS[stem] = detect_clip(path, max_sample_frames=16)
    return path, _DETECTIONS[stem]


def _first_frame(path: Path) -> np.ndarray:
    from processing.pixels.clips import iter_frames

    return next(iter(iter_frames(path))).image


def _sector_core_masked(detection: Detection, frame: np.ndarray, right: int | None = None) -> float:
    """Share of the kept sector's inner lung (bright-enough pixels well inside the crop, left of source column
    ``right``) that the main mask covers."""
    crop = frame[detection.window.slices()]
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    tissue = cv2.erode((cv2.blur(gray, (15, 15)) > 25).astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    if right is not None:
        tissue[:, max(0, right - detection.window.x) :] = False
    assert tissue.sum() > 0.2 * tissue.size
    return float(detection.main_mask[tissue].mean())


def test_real_ruler_drawn_over_the_sector_edge_is_masked(realdata):
    # 1457933751766421505: the depth ruler (line at x ~ 700 of 910, digits at x ~ 670-685) overlaps the sector's
    # right edge from depth 6 cm down; the dim lung there is < 90 grey, the ruler strokes > 150.
    path, detection = _detected(realdata, "1457933751766421505")
    frame = _first_frame(path)
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    w = detection.window
    band = np.zeros(gray.shape, bool)
    band[330:630, 662:706] = True
    strokes = (band & (gray >= 150))[w.slices()]
    assert strokes.sum() > 300  # ticks and the digits 6-12
    assert detection.main_mask[strokes].mean() > 0.97
    assert _sector_core_masked(detection, frame) < 0.003


@pytest.mark.parametrize("stem, seam", [("1451609510347513859", 482), ("1467637736802861062", 485)])
def test_real_touching_side_by_side_panels_keep_the_left_panel(realdata, stem, seam):
    # Two sectors whose edges meet at the left panel's ruler (column ``seam``): the crop is a square around the
    # left sector only, the probe is convex, and the left sector's lung is not masked (the sliver of the right
    # panel that the square takes in is not part of the field of view: masked, and not counted here).
    path, detection = _detected(realdata, stem)
    w = detection.window
    assert detection.probe == "convex"
    assert w.w == w.h and w.x < seam // 4
    assert seam - 10 <= w.x + w.w <= seam + 70  # the square reaches just past the seam, never across the right panel
    assert _sector_core_masked(detection, _first_frame(path), right=seam - 50) < 0.003  # left of the ruler digits


def test_real_six_panel_grid_keeps_one_panel(realdata):
    # 1351168003455516676: 3 rows x 2 columns of sectors (636x960) with labels between; the top-left panel spans
    # y ~ 30-415, x ~ 0-265 (the ruler beside it at x ~ 270): the window holds that panel and no other.
    path, detection = _detected(realdata, "1351168003455516676")
    w = detection.window
    assert w.y <= 40 and w.y + w.h <= 425
    assert w.x + w.w <= 420 and w.w >= 350
    assert _sector_core_masked(detection, _first_frame(path)) < 0.003


def test_real_six_panel_grid_inside_black_bars_keeps_one_panel(realdata):
    # The same grid inside black bars (15% of the width each side, 5% of the height above and below, as a phone
    # export to 16:9 would be): the kernels follow the frame's size, the right column's lower sector then met the
    # sector above it through a neck 23% as wide as the narrower of the two (20% was the line), and the pair, two
    # panels tall, became the field. The neck between stacked panels is also where the region's span narrows.
    from processing.pixels.clips import iter_frames

    path = _overlay_clip(realdata, "1351168003455516676")
    frames = [f.image for f, _ in zip(iter_frames(path), range(32), strict=False)]
    height, width = frames[0].shape[:2]
    dx, dy = round(0.15 * width), round(0.05 * height)
    padded = [cv2.copyMakeBorder(f, dy, dy, dx, dx, cv2.BORDER_CONSTANT, value=0) for f in frames]
    w = detect_frames(padded, max_sample_frames=16).window
    panels_tall = w.h / 0.4 / height  # a panel is ~40% of the grid's height
    assert panels_tall < 1.1, w


def test_real_small_faint_ruler_at_the_field_edge_is_masked(realdata):
    # 1390908611967193088 (554x316, three linear panels): the kept left panel's depth ruler is tiny and faint --
    # ticks 40-120 grey every ~8 px at x ~ 175-177, digits "1"-"4" (1-2 px strokes, 110-190 grey) at x ~ 169-170,
    # y ~ 74, 115, 157, 198 -- below the first ruler pass's thresholds; the scale-aware second pass masks them.
    path, detection = _detected(realdata, "1390908611967193088")
    frame = _first_frame(path)
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    w = detection.window
    assert w.x + w.w >= 176  # the crop takes in the ruler column (the field widens to it)
    band = np.zeros(gray.shape, bool)
    band[70:205, 168:172] = True  # the digit columns (bright lung echoes reach x = 166-168)
    digits = (band & (gray >= 100))[w.slices()]
    assert digits.sum() > 15  # the digits 1-4 are in the crop
    assert detection.main_mask[digits].mean() > 0.9
    assert _sector_core_masked(detection, frame, right=162) < 0.003  # the lung left of the ruler band


def test_real_small_faint_ruler_at_0_6x_is_masked(realdata):
    # The same clip at 0.6x (area resampling, as a social-media copy would be): each 1-px tick lands in one column
    # or its neighbour, tick by tick, so no single column held 12 regular ticks and 12% of the ruler's marks were
    # masked (3% of these pixels of the first frame). Pairs of columns are read now.
    from processing.pixels.clips import iter_frames

    path = _overlay_clip(realdata, "1390908611967193088")
    frames = [cv2.resize(f.image, (332, 190), interpolation=cv2.INTER_AREA) for f in iter_frames(path)]
    detection = detect_frames(frames)
    w = detection.window
    gray = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    tophat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    band = np.zeros(gray.shape, bool)
    band[40:125, 100:107] = True  # the ruler's ticks and digits, at 0.6x
    marks = (band & (tophat > 30))[w.slices()]
    assert marks.sum() > 20
    grown = cv2.dilate(detection.main_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (grown | ~detection.fov_mask)[marks].mean() >= 0.6  # 0.67 (bright lung echoes touch the band)


def _speckle_frames(count: int = 12, size: int = 200) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [cv2.GaussianBlur(rng.integers(40, 120, (size, size)).astype(np.uint8), (3, 3), 0) for _ in range(count)]


def test_a_colour_doppler_box_outline_is_found_between_its_sides_and_flat_lines_are_not():
    from processing.pixels.autodetect import _colour_box

    blob = np.zeros((200, 200), bool)
    blob[90:120, 95:110] = True  # the colour seen on the clip
    no_main = np.zeros((200, 200), bool)
    boxed = []
    for frame in _speckle_frames():
        frame = frame.copy()
        cv2.polylines(frame, [np.array([[70, 50], [130, 50], [150, 160], [50, 160]], np.int32)], True, 230, 1)
        boxed.append(frame)
    outline = _colour_box(boxed, [blob], no_main)
    assert outline[50, 100] and outline[160, 100] and outline[105, 60]  # top, bottom, a side
    assert not outline[105, 100] and outline.sum() < 0.05 * outline.size
    # Flat bright lines (a pleura, A-lines) near the colour are not a box: no sides flank the colour.
    flat = []
    for frame in _speckle_frames():
        frame = frame.copy()
        for y in (60, 100, 140):
            cv2.line(frame, (40, y), (160, y), 230, 2)
        flat.append(frame)
    assert not _colour_box(flat, [blob], no_main).any()


def test_a_box_side_is_run_on_along_its_ridge_and_a_point_is_left_as_it_is():
    from processing.pixels.autodetect import _extend_line

    ridge = np.zeros((40, 40), bool)
    ridge[5:35, 20] = True  # a vertical side, found only in part
    ridge[18:21, 20] = False  # a 3-px break in coding
    assert _extend_line(ridge, np.array([20, 10, 20, 14])) == (20, 5, 20, 34)
    assert _extend_line(np.ones((20, 20), bool), np.array([5, 5, 5, 5])) == (5, 5, 5, 5)  # no direction


def test_a_rule_drawn_wider_than_the_fields_first_row_is_taken_off_it_and_nothing_else():
    from processing.pixels.autodetect import _trim_top_rule

    # a trapezoid 60 px wide at its top row (20), widening by a pixel a row, under a rule on row 20 from x 10 to 190
    gray = np.zeros((120, 200), np.uint8)
    region = np.zeros(gray.shape, bool)
    for row in range(20, 110):
        half = 30 + (row - 20)
        region[row, 100 - half:100 + half] = True
    gray[region] = 80
    plain = _trim_top_rule(region, gray, 0.0)
    assert (plain == region).all()  # the image's first row ends where the field does
    gray[20, 10:190] = 45
    ruled = _trim_top_rule(region, gray, 0.0)
    assert not ruled[20].any() and (ruled[21:] == region[21:]).all()
    # a rule as wide as the field lower down (a rectangle's top row) is not told apart: left as it is
    square = np.zeros(gray.shape, bool)
    square[20:110, 40:160] = True
    gray = np.where(square, 80, 0).astype(np.uint8)
    gray[20, 40:160] = 45
    assert (_trim_top_rule(square, gray, 0.0) == square).all()


def test_still_speckle_belongs_to_the_field_and_still_text_beside_it_does_not():
    # a sector whose near field does not change over the frames (a held breath), with a static text block beside it
    rng = np.random.default_rng(7)
    height, width = 240, 320
    sector = np.zeros((height, width), np.uint8)
    cv2.ellipse(sector, (160, -40), (260, 260), 0, 55, 125, 1, -1)
    cv2.circle(sector, (160, -40), 60, 0, -1)
    sector = sector > 0
    still = np.clip(rng.normal(110, 25, (height, width)), 0, 255)  # speckle that stays put
    frames = []
    for _ in range(12):
        gray = np.clip(rng.normal(110, 25, (height, width)), 0, 255)  # speckle that changes
        gray[:110] = still[:110]
        gray = np.where(sector, cv2.GaussianBlur(gray, (3, 3), 0), 0).astype(np.uint8)
        cv2.putText(gray, "L1 12cm", (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 230, 1)
        frames.append(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB))
    fov = detect_fov(frames)
    assert fov.bbox.y <= 20  # the middle of the top arc (its thin tips reach row 10): the still near field is in
    assert (fov.region & sector).sum() >= 0.95 * sector.sum()
    assert not fov.region[15:35, 4:60].any()  # the text stays out



def _field_and_dotted_scale(spacing=(12.0,), dots=9, start=40.0):
    """A sector-like field whose right corner (x 125, y 100) a slanted dotted scale beside it touches: dots 2x2 at
    150 grey, ``spacing`` px apart along the line (cycled), on black; the dot that lands on the corner is drawn
    over the field. ``dots`` dots from row ``start``. Returns ``(gray, region, (x, y) of that dot)``."""
    height, width = 200, 160
    gray = np.full((height, width), 10, np.uint8)
    region = np.zeros((height, width), np.uint8)
    cv2.fillPoly(region, [np.array([[40, 20], [100, 20], [125, 100], [60, 180]])], 1)
    region = region > 0
    rng = np.random.default_rng(0)
    gray[region] = rng.integers(40, 60, int(region.sum()))
    y, corner = start, None
    for k in range(dots):
        x = 121 + 1.0 - (y - 100) / 12  # slanted: one column per dot spacing
        cx, cy = int(round(x)), int(round(y))
        gray[cy:cy + 2, cx - 1:cx + 1] = 150
        if region[cy, cx - 1]:
            corner = (cx - 1, cy)
        y += spacing[k % len(spacing)]
    return gray, region, corner


def test_a_dotted_scale_dot_that_landed_on_the_fields_corner_is_masked():
    from processing.pixels.autodetect import _scale_gaps

    gray, region, corner = _field_and_dotted_scale()
    assert corner is not None  # the dot at y 100 joins the corner of the field
    marks = _scale_gaps(gray, region, Window(0, 0, 160, 200))
    x, y = corner
    assert marks[y:y + 2, x:x + 2].all()  # the dot on the corner
    assert marks.sum() <= 25 and not marks[:, :110].any()  # and only around it, not the field's inside
    # a window that ends before the scale: the same dot, in the window's coordinates
    assert _scale_gaps(gray, region, Window(20, 10, 110, 150))[y - 10, x - 20]


@pytest.mark.parametrize("spacing, dots, start", [
    ((12.0, 7.0, 9.0), 9, 40.0),  # dots at irregular spacings: speckle or text, not a scale
    ((12.0,), 4, 76.0),  # too few dots to be a scale: two above the corner, one on it, one below
])
def test_dots_that_are_not_a_scale_mask_nothing_on_the_field(spacing, dots, start):
    from processing.pixels.autodetect import _scale_gaps

    gray, region, corner = _field_and_dotted_scale(spacing, dots, start)
    assert corner is not None
    assert not _scale_gaps(gray, region, Window(0, 0, 160, 200)).any()


def test_a_coloured_line_just_outside_the_window_has_its_rim_in_the_window_masked():
    from processing.pixels.autodetect import _rims_from_beyond

    height, width = 60, 80
    region = np.zeros((height, width), bool)
    region[:, :60] = True  # the field; the window is columns 0-61
    window = Window(0, 0, 62, height)
    chromas = []
    for i in range(6):
        chroma = np.zeros((height, width), np.uint8)
        chroma[10:50, 62:64] = 80  # a coloured line just beyond the window's edge, on every frame
        chroma[52:56, 62:64] = 80 if i % 2 else 0  # colour there on half of the frames: a pointer passing
        chroma[5:8, 30:33] = 80  # colour inside the window: not this rule's (the window's own masks)
        chromas.append(chroma)
    rim = _rims_from_beyond(chromas, window, region, 40.0)
    assert rim.shape == (height, 62)
    assert rim[10:50, 61].all() and rim.sum() == 40  # the line's rim, one column, and nothing else
    region[:, 60:64] = True  # a field that runs on under the colour: colour there is not beyond it
    assert not _rims_from_beyond(chromas, window, region, 40.0).any()


def test_a_word_burned_in_over_the_field_is_masked_and_rows_of_bright_tissue_are_not():
    from processing.pixels.autodetect import _bright_still, _text_lines

    rng = np.random.default_rng(4)
    gray = np.clip(rng.normal(90, 25, (240, 320)), 0, 255).astype(np.uint8)  # lung
    std = np.full(gray.shape, 8.0, np.float32)  # that changes
    word = np.zeros(gray.shape, np.uint8)
    cv2.putText(word, "B-lines", (60, 120), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2, cv2.LINE_AA)
    for x in range(20, 300, 24):  # an A-line drawn as still bright dashes: long, not character-shaped
        cv2.line(gray, (x, 200), (x + 16, 200), 230, 5)
    for x, y in [(40, 40), (100, 48), (160, 36), (230, 44)]:  # still bright echoes, round, spread out
        cv2.circle(gray, (x, y), 4, 235, -1)
    for y in range(150, 185, 6):  # a column of short bright dashes: not a row
        cv2.line(gray, (280, y), (284, y), 230, 2)
    still = (gray >= 180) | (word > 0)
    std[still] = 0.5
    gray[word > 128] = 255
    found = _text_lines(_bright_still(gray, std, np.ones(gray.shape, bool)))
    letters = word > 128
    assert found[letters].mean() > 0.9
    assert not (found & ~(cv2.dilate(word, np.ones((3, 3), np.uint8)) > 0)).any()  # nothing but the word
    gray[word > 128] = 90  # the same field without the word: nothing
    std[word > 0] = 8.0
    assert not _text_lines(_bright_still(gray, std, np.ones(gray.shape, bool))).any()


def test_a_static_drawn_plate_inside_the_field_is_masked_and_still_bright_tissue_is_not():
    from processing.pixels.autodetect import _badges, _bright_still

    rng = np.random.default_rng(3)
    gray = np.clip(rng.normal(40, 10, (200, 200)), 0, 255).astype(np.uint8)  # dark lung
    std = np.full(gray.shape, 6.0, np.float32)  # speckle that changes
    cv2.circle(gray, (60, 60), 14, 200, -1)  # an icon's disc, with a glyph drawn inside
    cv2.line(gray, (52, 60), (68, 60), 60, 3)
    std[44:77, 44:77] = 0.5
    # still bright tissue: a blob that fades into grey over many pixels
    yy, xx = np.mgrid[:200, :200]
    blob = 230 * np.exp(-((yy - 140) ** 2 + (xx - 140) ** 2) / (2 * 18.0 ** 2))
    gray = np.maximum(gray, blob.astype(np.uint8))
    std[110:170, 110:170] = 0.5
    gray[150:156, 20:80] = 210  # a still, bright pleural segment over dark lung: dark around too, but long
    std[140:166, 10:90] = 0.5
    # a still, bright echo over dark lung (an air bronchogram in a held breath): dark around too, but graded
    echo = 240 * np.exp(-((yy - 40) ** 2 + (xx - 160) ** 2) / (2 * 6.0 ** 2))
    gray = np.maximum(gray, echo.astype(np.uint8))
    std[20:60, 140:180] = 0.5
    found = _badges(_bright_still(gray, std, np.ones(gray.shape, bool)), gray, 8)
    disc = np.zeros(gray.shape, np.uint8)
    cv2.circle(disc, (60, 60), 14, 1, -1)
    assert found[disc > 0].all()  # the glyph inside too
    assert not found[100:180, 100:180].any()
    assert not found[140:166, 10:90].any()
    assert not found[20:60, 140:180].any()


def _fan_mask(height: int, width: int, apex: tuple[int, int], radius: int, half_angle: float) -> np.ndarray:
    out = np.zeros((height, width), np.uint8)
    cv2.ellipse(out, apex, (radius, radius), 90, -half_angle, half_angle, 1, -1)
    return out > 0


def _step_cut(part: np.ndarray) -> np.ndarray:
    """``_step`` on the part's bounding box, as ``_split_panels`` calls it, back in the frame."""
    from processing.pixels.autodetect import _step

    ys, xs = np.nonzero(part)
    cut = np.zeros(part.shape, bool)
    cut[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = _step(part[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
    return cut


def _stacked(top: tuple[int, int, int, int], bottom: tuple[int, int, int, int]) -> np.ndarray:
    part = np.zeros((400, 400), bool)
    for x0, y0, x1, y1 in (top, bottom):
        part[y0:y1, x0:x1] = True
    return part


def test_a_narrower_panel_stacked_under_a_wider_one_is_cut_off_at_the_seam():
    part = _stacked((20, 20, 380, 200), (70, 200, 330, 380))
    part[196:206, 20:70] = True  # the wider panel's arc dips past the seam beside the narrower one
    n, pieces = cv2.connectedComponents((part & ~_step_cut(part)).astype(np.uint8), connectivity=8)
    sizes = sorted(int((pieces == i).sum()) for i in range(1, n))
    assert len(sizes) == 2 and sizes[0] > 0.9 * 180 * 260
    lower = pieces == pieces[300, 200]
    ys, xs = np.nonzero(lower)
    assert 198 <= ys.min() <= 206 and xs.min() >= 68 and xs.max() <= 331
    assert not lower[196:206, 20:66].any()  # the dip beside it stays with the wider panel


def _waist() -> np.ndarray:
    part = np.zeros((400, 400), bool)
    part[20:380, 20:380] = True
    part[200:300, 20:70] = part[200:300, 330:380] = False  # dark lung at both flanks, then the field widens again
    return part


@pytest.mark.parametrize("part", [
    _fan_mask(400, 400, (200, 10), 380, 40),  # a sector: its flanks drift steadily, its bottom arc is small
    _fan_mask(400, 400, (200, -200), 590, 25),  # a wide convex field: flat arcs, straight flanks
    _stacked((50, 50, 350, 350), (50, 50, 350, 350)),  # a rectangle
    _stacked((70, 20, 330, 200), (20, 200, 380, 380)),  # a narrower panel above a wider one: as a clipped sector
    _waist(),
])
def test_a_single_field_a_waist_or_a_narrower_panel_above_has_no_step(part):
    assert not _step_cut(part).any()


def test_a_thin_colour_streak_along_the_windows_edge_on_many_frames_is_a_fringe_and_a_pointer_there_is_not():
    from types import SimpleNamespace

    from processing.pixels.autodetect import _edge_fringe

    width, window = 60, Window(10, 10, 40, 40)

    def scan(mark) -> SimpleNamespace:
        coloured_at = {}
        for t in range(20):
            image = np.zeros((60, width), np.uint8)
            if t % 3 == 0:
                mark(image, t)
            hot = np.flatnonzero(image.ravel())
            coloured_at[t] = (hot, np.full(hot.size, 120, np.uint8))
        return SimpleNamespace(shape=(60, width, 3), coloured_at=coloured_at)

    def streak(image, t):  # the window's last two columns (x 48-49), rows moving from frame to frame
        image[12 + t:24 + t, 48:50] = 1

    def pointer(image, t):  # a 5x5 pointer against the same edge
        image[12 + t:17 + t, 45:50] = 1

    fringe = _edge_fringe(scan(streak), window, 60.0, {})
    assert fringe[:, -2:].any() and not fringe[:, :-2].any()
    assert not _edge_fringe(scan(pointer), window, 60.0, {}).any()
    assert not _edge_fringe(scan(streak), window, 60.0, {t: "cut" for t in range(0, 20, 3)}).any()  # cut frames


def _lifted(shape: tuple[int, int], box: tuple[int, int, int, int], seed: int):
    """``(rng, region, grey)``: a frame at 0 with a panel (``box``: y0, y1, x0, x1) whose black is lifted to 12,
    noise std 1, the panel the region."""
    rng = np.random.default_rng(seed)
    gray = np.zeros(shape, np.float32)
    region = np.zeros(shape, bool)
    y0, y1, x0, x1 = box
    region[y0:y1, x0:x1] = True
    gray[region] = 12 + rng.normal(0, 1.0, int(region.sum()))
    return rng, region, gray


def _with_sector(gray: np.ndarray, rng, corners) -> np.ndarray:
    """``gray`` with speckle at 60-140 filling the polygon ``corners`` (x, y), as uint8."""
    sector = np.zeros(gray.shape, np.uint8)
    cv2.fillConvexPoly(sector, np.array(corners), 1)
    gray[sector > 0] = rng.uniform(60, 140, int(sector.sum()))
    return np.clip(gray, 0, 255).astype(np.uint8)


def _panel_with_a_sector(dark_below: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(region, median grey)``: a 300x240 panel whose black is lifted to 12 on a frame at 0, holding a sector
    (apex at the top centre, straight flanks) of speckle at 60-140; with ``dark_below``, the panel is the sector's
    own field and its deep part fades to 12 instead (no flat black beside the flanks)."""
    rng, region, gray = _lifted((300, 360), (30, 270, 30, 330), seed=7)
    if dark_below:
        gray[30:270, 30:330] = np.linspace(140, 12, 240, dtype=np.float32)[:, None] + rng.normal(0, 1.0, (240, 300))
        gray[200:270, 30:330] = 12 + rng.normal(0, 1.0, (70, 300))
        return region, np.clip(gray, 0, 255).astype(np.uint8)
    return region, _with_sector(gray, rng, [[150, 30], [210, 30], [330, 220], [330, 270], [30, 270], [30, 220]])


def test_a_panels_lifted_black_beside_a_sectors_flank_is_not_the_field():
    region, gray = _panel_with_a_sector(dark_below=False)
    field = _without_panel_black(region, gray, black=0.0)
    assert not field[40:120, 280:325].any()  # the panel's black beside the right flank
    assert field[150:260, 100:260].all() and field[225:265, 40:320].all()  # the sector
    assert field.sum() < 0.9 * region.sum()


def test_a_screens_lifted_black_round_two_panels_is_not_the_field():
    # a filmed screen: a margin of lifted black above and around two panels (a sector, a rectangle), the screen
    # on 0. The plateau fills the region's top rows with no tissue beside it; the sector's flanks and the
    # rectangle's sides are straight. The field is the larger panel.
    rng, region, gray = _lifted((300, 460), (20, 290, 20, 440), seed=5)
    gray[80:230, 300:420] = rng.uniform(60, 140, (150, 120))  # the smaller rectangle
    gray = _with_sector(gray, rng, [[110, 60], [150, 60], [240, 240], [240, 270], [30, 270], [30, 240]])
    field = _without_panel_black(region, gray, black=0.0)
    assert field[180:260, 70:200].all()  # the sector
    assert not field[20:55].any() and not field[80:230, 300:420].any()  # the margin, the other panel
    assert field.sum() < 0.5 * region.sum()


def test_a_sectors_arc_is_read_above_a_lifted_black():
    # a sector filling a screen filmed by a phone: the corners above its arc are the screen's lifted black, inside
    # the region (a rectangle); its lit part arcs
    rng, region, gray = _lifted((300, 360), (30, 270, 30, 330), seed=3)
    corners = [[150, 30], [210, 30], [330, 150], [330, 270], [30, 270], [30, 150]]
    gray = _with_sector(gray, rng, corners)
    bbox = Window(30, 30, 300, 240)
    assert _probe_of(region, bbox) == "linear"  # the region alone: a rectangle
    assert _probe_of(region, bbox, gray, black=0.0) == "convex"
    assert _probe_of(region, bbox, gray, black=10.0) == "linear"  # a black at the frame's: the region is the field


def test_a_deep_field_that_fades_to_a_lifted_black_stays_in_the_field():
    region, gray = _panel_with_a_sector(dark_below=True)
    assert np.array_equal(_without_panel_black(region, gray, black=0.0), region)


def test_a_panels_black_at_the_frames_black_is_left_alone():
    region, gray = _panel_with_a_sector(dark_below=False)
    assert np.array_equal(_without_panel_black(region, gray, black=10.0), region)


def _line_over_tissue(line_rows: int, size: int, flickering: tuple[int, ...] = ()) -> tuple[np.ndarray, list[np.ndarray]]:
    """A region ``size`` px square under a static line ``line_rows`` thick over tissue that changes every frame;
    11% of the pixels of the line's rows ``flickering`` change (coding noise where a line meets tissue)."""
    rng = np.random.default_rng(11)
    region = np.zeros((size, size), bool)
    region[10:size - 10, 10:size - 10] = True
    noisy = np.zeros((line_rows, size - 20), bool)
    for row in flickering:
        noisy[row] = rng.random(size - 20) < 0.11
    grays = []
    for _ in range(8):
        frame = rng.integers(40, 160, (size, size)).astype(np.uint8)  # live tissue
        frame[10:10 + line_rows, 10:size - 10] = np.where(noisy, rng.integers(60, 120, noisy.shape), 90)
        grays.append(frame)
    return region, grays


@pytest.mark.parametrize("line_rows, size, flickering", [(3, 300, ()), (4, 300, (1,)), (6, 800, ())])
def test_a_static_line_along_a_panels_edge_is_trimmed(line_rows, size, flickering):
    # (4, 300, (1,)): 1423818531095842818 mirrored, its UI line 94%, 89%, 93%, 93% static; (6, 800): a line scaled up
    region, grays = _line_over_tissue(line_rows, size, flickering)
    trimmed = _trim_static_edges(region, grays)
    assert int(np.flatnonzero(trimmed.any(axis=1))[0]) == 10 + line_rows


@pytest.mark.parametrize("line_rows, size, flickering", [
    (6, 300, ()),  # 6 static rows at 300 px: still tissue, not a line
    (1, 300, (0,)),  # an image's first row that barely changes (89%) over live tissue: no line to trim
    (3, 300, (0, 1)),  # two flickering rows: not a drawn line
])
def test_static_rows_that_are_not_a_line_are_left_alone(line_rows, size, flickering):
    region, grays = _line_over_tissue(line_rows, size, flickering)
    assert np.array_equal(_trim_static_edges(region, grays), region)
