"""The detector's scorers on hand-made windows, masks and truth, against values computed by hand.

``window_iou`` and ``score_detection`` (processing.pixels.autodetect) score detections on simulated clips;
``holds_top``, ``mark_pixels`` and ``score_clip`` (processing.pixels.evaluate) score them on real clips against
hand-drawn boxes. A scorer that always answers "perfect" must fail here.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from processing.pixels.autodetect import Detection, score_detection, window_iou
from processing.pixels.evaluate import ClipTruth, Overlay, holds_top, mark_pixels, score_clip
from processing.windows import Window


@pytest.mark.parametrize("a,b,expected", [
    (Window(0, 0, 10, 10), Window(0, 0, 10, 10), 1.0),
    (Window(0, 0, 10, 10), Window(5, 0, 10, 10), 50 / 150),  # half overlaps: 5x10 of 100 + 100 - 50
    (Window(0, 0, 10, 10), Window(2, 2, 4, 4), 16 / 100),  # contained
    (Window(0, 0, 10, 10), Window(10, 0, 10, 10), 0.0),  # touching edges share no pixel
    (Window(0, 0, 10, 10), Window(30, 30, 5, 5), 0.0),
    (Window(3, 4, 6, 8), Window(5, 2, 6, 6), (4 * 4) / (48 + 36 - 16)),  # x 5..8, y 4..7
])
def test_window_iou_matches_hand_computed_values(a, b, expected):
    assert window_iou(a, b) == pytest.approx(expected)
    assert window_iou(b, a) == pytest.approx(expected)


def _mask(shape: tuple[int, int], points: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for row, col in points:
        out[row, col] = True
    return out


def _detection(**fields) -> Detection:
    base = dict(clip_id="hand", probe="convex", window=Window(2, 2, 8, 8), main_mask=np.zeros((8, 8), bool),
                frame_masks={}, dropped_frames=(), frame_count=3, sampled_frames=(0, 1, 2), frame_size=(12, 12))
    base.update(fields)
    return Detection(**base)


@pytest.fixture
def scored_by_hand():
    """A 12x12 clip of 4 frames, window (2,2,8,8) (rows and cols 2..9); coordinates below are (row, col).

    frame 0: truth (window coords) (0,0..3) and one frame pixel (0,0) outside the window; mask = main mask
             {(0,0),(0,1),(1,1),(2,1),(7,7),(7,6)}: 2 of 4 hit; on the marks 2 (tolerance 0), +(1,1) at 1 px,
             +(2,1) at 2 px (5x5 ellipse reaches 2 px straight down)
    frame 1: truth (0,0..3); its own mask {(0,0..3),(4,4)}: 4 of 4 hit, 4 of 5 on the marks at any tolerance
    frame 2: dropped (its 6 truth pixels count as cleaned, its mask not at all)
    frame 3: beyond frame_count: ignored
    """
    truth = np.zeros((4, 12, 12), bool)
    for f in (0, 1):
        truth[f, 2, 2:6] = True
    truth[0, 0, 0] = True  # outside the window: cropped away, not counted
    truth[2, 5:7, 3:6] = True
    truth[3, 4:9, 4:9] = True
    main = _mask((8, 8), [(0, 0), (0, 1), (1, 1), (2, 1), (7, 7), (7, 6)])
    frame1 = _mask((8, 8), [(0, 0), (0, 1), (0, 2), (0, 3), (4, 4)])
    detection = _detection(main_mask=main, frame_masks={1: frame1}, dropped_frames=(2,), frame_count=3)
    return detection, truth


@pytest.mark.parametrize("tolerance,on_marks", [(0, 2 + 4), (1, 3 + 4), (2, 4 + 4)])
def test_score_detection_counts_recall_and_precision_by_hand(scored_by_hand, tolerance, on_marks):
    detection, truth = scored_by_hand
    score = score_detection(detection, Window(4, 2, 8, 8), "linear", truth, tolerance=tolerance)
    assert score.recall == pytest.approx((2 + 4) / (4 + 4))
    assert score.precision == pytest.approx(on_marks / (6 + 5))
    assert score.crop_iou == pytest.approx(48 / 80)  # x 4..9 of 2..9 and 4..11: 6x8 over 64 + 64 - 48
    assert (score.probe_ok, score.masked_frames, score.dropped_frames) == (False, 1, 1)


def test_score_detection_with_nothing_to_find_and_nothing_masked_is_perfect():
    score = score_detection(_detection(), Window(2, 2, 8, 8), "convex", np.zeros((3, 12, 12), bool))
    assert (score.recall, score.precision, score.crop_iou, score.probe_ok) == (1.0, 1.0, 1.0, True)


def test_score_detection_sees_a_mask_that_misses_everything():
    truth = np.zeros((3, 12, 12), bool)
    truth[:, 4, 4] = True
    wrong = _mask((8, 8), [(6, 6)])
    score = score_detection(_detection(main_mask=wrong), Window(2, 2, 8, 8), "convex", truth, tolerance=2)
    assert (score.recall, score.precision) == (0.0, 0.0)


# ---- evaluate: the real-clip scorer

FOV = (10, 20, 110, 120)  # x0, y0, x1, y1: 100 rows, so the top band is 5 rows (y 20..24)


@pytest.mark.parametrize("window,expected", [
    (Window(10, 20, 100, 100), True),
    (Window(12, 22, 96, 98), True),  # 2 px of slack on the left, the top and the right
    (Window(13, 20, 97, 100), False),  # cuts the band's left end
    (Window(10, 20, 97, 100), False),  # ends at x 107 < 108
    (Window(10, 23, 100, 97), False),  # starts below the field's top row + 2
    (Window(10, 0, 100, 24), False),  # ends before the band does (20 + 5)
    (Window(10, 0, 100, 25), True),
])
def test_holds_top_by_the_field_width(window, expected):
    assert holds_top(window, FOV) is expected


def test_holds_top_with_visible_pixels_needs_only_the_visible_part_of_the_band():
    visible = np.zeros((140, 130), bool)
    visible[20:25, 40:80] = True  # a sector's apex: the band is visible on columns 40..79 only
    visible[60:120, 10:110] = True  # (lower rows do not matter)
    assert holds_top(Window(38, 20, 41, 100), FOV, visible)  # 38 <= 40 + 2 and 79 >= 79 - 1
    assert not holds_top(Window(38, 20, 40, 100), FOV)  # the field's whole width is asked without it
    assert not holds_top(Window(43, 20, 60, 100), FOV, visible)  # starts right of column 42
    assert not holds_top(Window(30, 20, 47, 100), FOV, visible)  # ends at 77 < 78
    assert not holds_top(Window(38, 26, 41, 94), FOV, visible)  # below the band
    assert holds_top(Window(60, 20, 5, 100), FOV, np.zeros((140, 130), bool))  # nothing visible up there


def test_mark_pixels_finds_white_and_coloured_marks_inside_the_box_only():
    image = np.full((40, 40, 3), 100, np.uint8)
    for row, col in [(12, 12), (12, 13), (15, 15)]:
        image[row, col] = 255  # white text
    image[18, 11] = (200, 50, 50)  # a coloured pointer: grey ~95, chroma 150
    image[30, 30] = 255  # a mark outside the box
    marks = mark_pixels(image, Overlay((10, 10, 20, 20), "text", True, None), black=0.0)
    assert sorted(zip(*np.nonzero(marks), strict=True)) == [(12, 12), (12, 13), (15, 15), (18, 11)]


def test_mark_pixels_off_the_image_counts_what_is_brighter_than_the_black_background():
    image = np.full((60, 60, 3), 5, np.uint8)
    image[20:40, 20:40] = 34  # a broad dim panel: top-hat below 30 even at its corners, but 29 above black
    image[25, 25] = 20  # 15 above black: not a mark
    off = mark_pixels(image, Overlay((15, 15, 45, 45), "panel", False, None), black=5.0)
    expected = np.zeros((60, 60), bool)
    expected[20:40, 20:40] = True
    expected[25, 25] = False
    assert np.array_equal(off, expected)
    on = mark_pixels(image, Overlay((15, 15, 45, 45), "panel", True, None), black=5.0)
    assert not on.any()  # over the image only what stands out of its neighbourhood counts


def test_mark_pixels_of_a_colour_box_are_its_outline_and_the_colour_inside_not_the_tissue_it_frames():
    image = np.full((60, 60, 3), 60, np.uint8)
    cv2.rectangle(image, (10, 10), (40, 40), (220, 220, 220), 1)  # the box's outline
    image[20, 20] = 250  # a bright echo inside the box: tissue
    image[44, 30] = 250  # another beside it, inside the truth's rectangle
    image[25:28, 30:33] = (200, 40, 40)  # flow inside the box
    image[46:48, 12:14] = (200, 40, 40)  # colour outside the outline (a colour bar's end)
    box = Overlay((5, 5, 50, 50), "colour box", True, None, ((10, 10), (40, 10), (40, 40), (10, 40)))
    marks = mark_pixels(image, box, black=0.0)
    expected = np.zeros((60, 60), bool)
    expected[10, 10:41] = expected[40, 10:41] = expected[10:41, 10] = expected[10:41, 40] = True
    expected[25:28, 30:33] = True
    assert np.array_equal(marks, expected)
    whole = mark_pixels(image, Overlay((5, 5, 50, 50), "other", True, None), black=0.0)
    assert whole[20, 20] and whole[44, 30] and whole[46, 12]  # the rectangle alone takes the echoes in


class _HandDetection:
    """The fields score_clip reads, nothing else."""

    def __init__(self, window, main_mask, frame_masks, dropped_frames=(), unusable_frames=None, fov_mask=None,
                 probe="linear", frame_count=4):
        self.window, self.main_mask, self.frame_masks = window, main_mask, frame_masks
        self.dropped_frames, self.unusable_frames = dropped_frames, unusable_frames or {}
        self.fov_mask, self.probe, self.frame_count = fov_mask, probe, frame_count

    def mask_for(self, index):
        return self.frame_masks.get(index, self.main_mask)


def _scene():
    """60x60 frames, field (2,2)-(58,58) at grey 100 on black; a static mark (row 22, cols 22..25) on every frame,
    in box (20,20,30,26); a moving mark (row 40, cols 40..41) on frames 2-3, in box (36,36,44,44); frame 3 is a cut;
    a hand-drawn tissue box (10,40,16,46)."""
    frames = {}
    for index in range(4):
        image = np.zeros((60, 60, 3), np.uint8)
        image[2:58, 2:58] = 100
        image[22, 22:26] = 255
        if index >= 2:
            image[40, 40:42] = 255
        frames[index] = image
    truth = ClipTruth(clip="hand.mp4", size=(60, 60), frames=4, probe="linear", fov=(2, 2, 58, 58), alt_fovs=(),
                      overlays=(Overlay((20, 20, 30, 26), "text", True, None),
                                Overlay((36, 36, 44, 44), "pointer", True, ((2, 3),))),
                      bad_frames=((3, 3),), tissue=((10, 40, 16, 46),))
    return frames, truth


def _identity_rule(bbox, probe, width, height):
    return bbox


def test_score_clip_counts_overlays_tissue_and_frames_by_hand():
    frames, truth = _scene()
    window = Window(2, 2, 56, 56)  # window coords = frame coords - 2
    main = _mask((56, 56), [(20, 20), (41, 11)])  # grown 5x5: 3 of the 4 static mark pixels; 25 tissue pixels
    moving = main | _mask((56, 56), [(38, 38)])  # grown: both moving mark pixels of frame 2
    detection = _HandDetection(window, main, {2: moving}, unusable_frames={3: "cut"})
    score = score_clip(detection, truth, frames, window_rule=_identity_rule)
    assert (score.top_ok, score.iou, score.probe_ok) == (True, 1.0, True)
    # static: 4 marks x kept frames 0, 1, 2 (3 is a cut), 3 removed each; moving: 2 on frame 2 (masked), 2 on
    # frame 3 (dropped, so removed)
    assert (score.overlay_pixels, score.overlay_recall) == (12 + 4, pytest.approx((9 + 4) / 16))
    # tissue: the 56x56 field less the two boxes with a 3 px rim (12x16 and 14x14)
    assert score.tissue_pixels == 56 * 56 - 12 * 16 - 14 * 14
    assert score.tissue_masked == pytest.approx(25 / score.tissue_pixels)
    assert score.tissue_box_masked == pytest.approx(25 / 36)
    assert (score.bad_frames, score.bad_missed, score.good_frames, score.good_dropped) == (1, 0, 3, 0.0)


def test_score_clip_sees_a_cropped_top_kept_cuts_dropped_good_frames_and_the_blacked_outside():
    frames, truth = _scene()
    window = Window(2, 10, 56, 48)  # starts 8 rows into the field: the top band is cut away
    main = np.zeros((48, 56), bool)
    field = np.ones((48, 56), bool)
    field[:, :4] = False  # the detection blacks frame columns 2..5 as outside its field
    detection = _HandDetection(window, main, {}, dropped_frames=(0,), fov_mask=field)
    score = score_clip(detection, truth, frames, window_rule=_identity_rule)
    assert score.top_ok is False and score.iou == pytest.approx(48 / 56)
    # static mark: on kept frames 1 and 2, not removed (columns 22..25 are inside the field); moving: frame 2
    # not removed, frame 3 (kept by this detection) not removed
    assert (score.overlay_pixels, score.overlay_recall) == (8 + 4, 0.0)
    assert (score.bad_missed, score.good_dropped) == (1, pytest.approx(1 / 3))
    tissue_in_window = 48 * 56 - 12 * 16 - 14 * 14  # rows 10..57 hold both rimmed boxes whole
    assert score.tissue_pixels == tissue_in_window
    assert score.tissue_masked == pytest.approx(48 * 4 / tissue_in_window)  # the blacked columns
    assert score.tissue_box_masked == 0.0


def test_score_clip_does_not_count_a_panels_lifted_black_as_tissue():
    # The field's box holds a flat background at 12 grey beside the image (a monitor's black filmed by a phone)
    # on a frame at 0: with the truth's black at 12 it is not tissue, so blanking it costs none.
    frames, truth = _scene()
    for image in frames.values():
        image[2:58, 40:58] = 12
    window = Window(2, 2, 56, 56)
    field = np.ones((56, 56), bool)
    field[:, 38:] = False  # the detection blanks the flat background (frame columns 40..57)
    detection = _HandDetection(window, np.zeros((56, 56), bool), {}, fov_mask=field)
    lifted = dataclasses.replace(truth, black=12.0)
    assert score_clip(detection, truth, frames, window_rule=_identity_rule).tissue_masked > 0.25
    score = score_clip(detection, lifted, frames, window_rule=_identity_rule)
    assert score.tissue_masked == 0.0 and score.top_ok
    assert score.tissue_pixels == 56 * 38 - 12 * 16 - 7 * 14  # the moving mark's rimmed box: columns 33..39 of it


def test_score_clip_counts_a_colour_that_comes_and_goes_only_on_the_frames_it_is_on():
    # Colour Doppler, boxed as a static mark: a red patch (row 30, cols 30..33) on frames 0-2 of 4 (so in the
    # median frame), grey tissue on frame 3. Nothing is masked: frame 3's grey pixels are not the mark.
    frames = {}
    for index in range(4):
        image = np.zeros((60, 60, 3), np.uint8)
        image[2:58, 2:58] = 100
        if index < 3:
            image[30, 30:34] = (220, 40, 40)
        frames[index] = image
    truth = ClipTruth(clip="doppler.mp4", size=(60, 60), frames=4, probe="linear", fov=(2, 2, 58, 58), alt_fovs=(),
                      overlays=(Overlay((28, 28, 36, 34), "other", True, None),), bad_frames=(), tissue=())
    window = Window(2, 2, 56, 56)
    detection = _HandDetection(window, np.zeros((56, 56), bool), {})
    assert score_clip(detection, truth, frames, window_rule=_identity_rule).overlay_pixels == 4 * 3
    # masked on the three frames it is on: all of it removed
    flow = _mask((56, 56), [(28, 29)])  # grown 5x5: cols 27..31 of row 28 (frame cols 29..33)
    flow |= _mask((56, 56), [(28, 28)])
    masked = {i: flow for i in range(3)}
    score = score_clip(_HandDetection(window, np.zeros((56, 56), bool), masked), truth, frames,
                       window_rule=_identity_rule)
    assert (score.overlay_pixels, score.overlay_recall) == (12, 1.0)


def test_score_clip_top_band_leaves_out_an_overlay_box_beside_the_apex():
    # A field box whose top band holds text at its right end (cols 50..55) beside a narrow apex (cols 20..30):
    # a window spanning the apex but not the text holds the top of the field.
    frames = {}
    for index in range(4):
        image = np.zeros((60, 60, 3), np.uint8)
        image[2:58, 20:31] = 100 + index  # the field (its top: the apex columns)
        image[2:6, 50:56] = 255  # vendor text at the apex's height, inside the field's bounding box
        frames[index] = image
    overlays = (Overlay((48, 2, 58, 8), "text", False, None),)
    truth = ClipTruth(clip="apex.mp4", size=(60, 60), frames=4, probe="convex", fov=(2, 2, 58, 58), alt_fovs=(),
                      overlays=overlays, bad_frames=(), tissue=())
    window = Window(2, 2, 46, 56)  # cols 2..47: the apex, not the text
    detection = _HandDetection(window, np.zeros((56, 46), bool), {}, probe="convex")
    assert score_clip(detection, truth, frames, window_rule=_identity_rule).top_ok is True
    without = ClipTruth(**{**truth.__dict__, "overlays": ()})  # the text counted as field: the window misses it
    assert score_clip(detection, without, frames, window_rule=_identity_rule).top_ok is False


@pytest.mark.parametrize("variant", ["mirror", "small", "large", "letterbox", "filmed"])
def test_a_variants_truth_moves_with_its_frames(variant):
    # benchmarks/bench_variants.py scores the truth's clips mirrored, resized and in black bars, with the truth's
    # boxes moved by the same geometry: a box drawn on a frame must land where the moved box says
    from bench_variants import geometry

    frame = np.zeros((200, 300, 3), np.uint8)
    box = (40, 30, 90, 70)
    frame[30:70, 40:90] = 255
    geo = geometry(variant, 300, 200)
    moved = geo.frame(frame)
    assert moved.shape[:2] == (geo.size[1], geo.size[0])
    lit = cv2.cvtColor(moved, cv2.COLOR_RGB2GRAY) > 127
    x, y, w, h = cv2.boundingRect(lit.astype(np.uint8))
    assert np.abs(np.array([x, y, x + w, y + h]) - np.array(geo.box(box, 300))).max() <= 1


def test_a_filmed_variant_lifts_the_black_with_new_noise_on_every_frame_and_says_so_in_its_truth():
    from bench_variants import LIFT, geometry

    geo = geometry("filmed", 300, 200)
    frames = [np.full((200, 300, 3), value, np.uint8) for value in (0, 1)]
    first, second = (cv2.cvtColor(geo.frame(f), cv2.COLOR_RGB2GRAY).astype(float) for f in frames)
    screen = (slice(geo.dy, geo.dy + 200), slice(geo.dx, geo.dx + 300))
    assert abs(first[screen].mean() - LIFT) < 0.5 and 1.0 < first[screen].std() < 3.0  # lifted black, noisy
    assert first[:geo.dy].max() == 0  # the bars around the screen stay at 0
    assert np.abs(first[screen] - second[screen]).mean() > 1.0  # another frame, other noise
    assert np.array_equal(geo.frame(frames[0]), geo.frame(frames[0]))  # the same frame, the same noise
    truth = ClipTruth(clip="c", size=(300, 200), frames=1, probe="convex", fov=(10, 10, 290, 190), alt_fovs=(),
                      overlays=(), bad_frames=(), tissue=())
    assert geo.truth(truth).black == LIFT
