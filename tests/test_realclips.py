"""Automatic crop and masks on real clips: one test per failure pattern of issue 15, and the truth made by eye.

Reads ../shared/realdata in place (skips when absent) and benchmarks/realclip_truth.json (the project's own truth,
made by looking at the frames). The scores over every clip of the truth are in BENCHMARKS.md
(benchmarks/bench_realclips.py); the slow test at the end holds them at least where they are.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from processing.pixels.autodetect import Detection, detect_clip, detect_frames, window_for
from processing.pixels.clips import VideoWriter, iter_frames
from processing.pixels.evaluate import box_window, load_truth, score_clip, window_iou
from processing.windows import Window

ROOT = Path(__file__).resolve().parents[1]
TRUTH = ROOT / "benchmarks" / "realclip_truth.json"

_CACHE: dict[tuple[str, str], Detection] = {}


def _clip(realdata: Path, name: str) -> Path:
    path = realdata / "videos" / name
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


def _detect(realdata: Path, name: str, policy: str = "drop") -> Detection:
    if (name, policy) not in _CACHE:
        _CACHE[name, policy] = detect_clip(_clip(realdata, name), pointer_policy=policy)
    return _CACHE[name, policy]


def _truth(name: str):
    return load_truth(TRUTH)[name]


def _score(realdata: Path, name: str):
    """The clip's detection scored against its truth, on every 8th frame."""
    frames = {f.index: f.image for f in iter_frames(_clip(realdata, name)) if f.index % 8 == 0}
    return score_clip(_detect(realdata, name), _truth(name), frames, window_rule=window_for)


# ------------------------------------------------------------------------------------------------ the truth file


def test_the_truth_file_names_real_clips_with_boxes_inside_their_frames(realdata):
    manifest = {row["file"].split("/", 1)[1]: row for row in csv.DictReader(open(realdata / "MANIFEST.csv"))}
    truths = load_truth(TRUTH)
    assert len(truths) >= 40
    for name, truth in truths.items():
        assert name in manifest, name
        width, height = truth.size
        assert (width, height) == (int(manifest[name]["width"]), int(manifest[name]["height"])) or name.startswith(
            "youtube__Reg")  # the MANIFEST reads that clip's container header (665 rows); it decodes to 664
        for box in (truth.fov, *truth.alt_fovs, *(o.box for o in truth.overlays), *truth.tissue):
            assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height, (name, box)
        assert truth.probe in ("convex", "linear")
    raw = json.loads(TRUTH.read_text())
    assert {k for item in raw for k in item} <= {"clip", "size", "frames", "probe", "fov", "alt_fovs", "overlays",
                                                 "bad_frames", "tissue", "notes", "black"}
    assert all(0 <= item["black"] < 64 for item in raw if "black" in item)  # a lifted black, not a grey image


# ------------------------------------------------------------------------------------- 1. the near field is kept


def test_the_window_keeps_the_top_of_a_field_taller_than_the_frame_is_wide():
    # a portrait device export (600x1030) whose sector runs from row 37 to row 665: the square gives up depth
    window = window_for(Window(0, 37, 600, 628), "convex", 600, 1030)
    assert window == Window(0, 37, 600, 600)
    # a field wider than the frame is tall: its full width, as deep as the frame goes
    assert window_for(Window(77, 23, 800, 597), "convex", 948, 664) == Window(77, 23, 800, 641)
    # a small sector: a square centred across, from the top of the field
    assert window_for(Window(100, 50, 200, 150), "convex", 640, 480) == Window(100, 50, 200, 200)
    assert window_for(Window(5, 6, 70, 80), "linear", 100, 100) == Window(5, 6, 70, 80)


def test_the_skin_line_above_an_anechoic_band_stays_in_the_window(realdata):
    # pocusatlas Cov-Atlas-pleural (364x364, linear): the skin line is on rows 0-1, then 2 dark rows, dim tissue on
    # rows 4-12 and an anechoic band on rows 13-22; the live region starts on row 23.
    detection = _detect(realdata, "pocusatlas__Cov-Atlas-pleural.mp4")
    assert detection.window.y <= 1
    assert detection.fov_mask[:12].mean() > 0.9  # the near field is inside the field, not blanked


def test_every_real_window_holds_the_top_of_a_single_sector(realdata):
    for name in ("twitter_taotepocus__1457933751766421505.mp4", "twitter_taotepocus__1560424553557393414.mp4",
                 "twitter_taotepocus__1354269183555600384.mp4"):
        truth = _truth(name)
        detection = _detect(realdata, name)
        assert detection.window.y <= truth.fov[1] + 2, name
        rule = window_for(box_window(truth.fov), truth.probe, *truth.size)
        assert window_iou(detection.window, rule) >= 0.95, name


def test_the_window_starts_at_the_apex_of_a_phased_array_sector(realdata):
    # Pointed sectors (cardiac views): the top rows of the apex are narrower than the opening that cleans the
    # candidate regions, which took them off; the window began 4-7 rows below the apex.
    for name, apex in (("twitter_taotepocus__1346901214101958661.mp4", 589),
                       ("twitter_taotepocus__1550611179852050432.mp4", 23)):
        detection = _detect(realdata, name)
        assert apex - 3 <= detection.window.y <= apex + 1, (name, detection.window)
        assert _score(realdata, name).top_ok, name


# ------------------------------------------------------------------------------- 2. panels and what is beside them


def test_sectors_touching_below_their_tops_are_split_between_their_apices(realdata):
    # 1450581902625226761: two equal sector panels whose fans meet at depth (no dark seam between them)
    name = "twitter_taotepocus__1450581902625226761.mp4"
    truth, detection = _truth(name), _detect(realdata, name)
    best = max(window_iou(detection.window, window_for(box_window(f), "convex", *truth.size))
               for f in (truth.fov, *truth.alt_fovs))
    assert best >= 0.9


def test_a_narrower_panel_stacked_under_two_touching_panels_is_split_off_at_the_seam(realdata):
    # 1364981565542047744: a phone recording of a three-panel collage; the bottom panel (x 77-360, from y ~212) is
    # narrower than the two panels above it (x 37-401) and touches them. The field is in the bottom panel alone,
    # from its top: it neither reaches back up into the upper panels nor out to their sides.
    name = "twitter_taotepocus__1364981565542047744.mp4"
    detection = _detect(realdata, name)
    x0, y0, x1, y1 = _truth(name).fov
    ys, xs = np.nonzero(detection.fov_mask)
    top, left = detection.window.y + ys.min(), detection.window.x + xs.min()
    assert abs(top - y0) <= 4  # the seam, not the upper panels' top (y 37)
    assert abs(left - x0) <= 4  # the bottom panel's left edge, not the upper panels' (x 37)
    assert detection.window.x + xs.max() < 362  # the bottom panel's right edge (its scale: x 339-360), not x 401


def test_a_sector_on_a_panel_whose_black_a_phone_lifted_is_the_field_not_the_panel(realdata):
    # The same collage: filmed off a monitor, the panels' black is ~10-14 grey, the collage around them 0, so the
    # whole bottom panel stood above the background and its rectangle was taken for the field (probe linear, the
    # dotted depth scale and "A"/"B" beside the sector inside it, nothing masked). The field is the sector.
    name = "twitter_taotepocus__1364981565542047744.mp4"
    truth, detection = _truth(name), _detect(realdata, name)
    window = detection.window
    assert detection.probe == "convex"
    assert window_iou(window, window_for(box_window(truth.fov), "convex", *truth.size)) >= 0.95
    field = np.zeros((truth.size[1], truth.size[0]), bool)
    field[window.slices()] = detection.fov_mask
    assert not field[215:300, 300:336].any()  # the panel's flat black beside the sector's right flank
    assert not field[214:350, 344:360].any()  # the depth scale and its labels, right of the sector
    assert field[300:330, 100:250].all()  # the heart
    score = _score(realdata, name)
    assert score.tissue_masked <= 0.005  # the saturated reflector on the sector's bottom edge is tissue, not a label


def test_a_dotted_scale_dot_on_the_sectors_corner_is_masked(realdata):
    # The same collage: its slanted depth scale, dots 12 px apart right of the sector, has one dot on the sector's
    # right corner (x 341-342, y 355-356), inside the field's region, where no rule for marks outside the field
    # reached it (overlay 0.79: the scale's only pixels in the window). The scale's other dots place it.
    name = "twitter_taotepocus__1364981565542047744.mp4"
    detection = _detect(realdata, name)
    window = detection.window
    main = np.zeros((436, 438), bool)
    main[window.slices()] = detection.main_mask
    assert main[355:357, 341:343].all()
    assert main[300:400, 300:336].sum() <= 30  # the field's tissue left of the corner: the one dot's disc
    assert _score(realdata, name).overlay_recall >= 0.95


@pytest.mark.parametrize("name, rows, columns", [
    # a deep field that fades to ~9 grey, flat, 31% of the region: it is below the tissue, not beside it
    ("pocusatlas__Cov-Atlas-suspectedCovid.mp4", slice(1000, 1070), slice(300, 800)),
    # rib shadows beside the pleura at ~22 grey, 23% of the region, reaching its top: their edges are ragged
    ("litfl__Pneu_Pneumonia-LITFL-Ultrasound_crop.mp4", slice(150, 250), slice(5, 60)),
])
def test_dark_tissue_on_a_lifted_black_is_not_taken_for_a_panels_background(realdata, name, rows, columns):
    detection = _detect(realdata, name)
    window = detection.window
    height, width = detection.frame_size[1], detection.frame_size[0]
    field = np.zeros((height, width), bool)
    field[window.slices()] = detection.fov_mask
    assert field[rows, columns].all()


def test_a_panel_ends_at_its_depth_ruler_where_the_next_panel_touches_it(realdata):
    # 1418762440221790210: three sector panels side by side; the middle one's ruler (x ~409) meets its right
    # neighbour's flank below the ruler. The field stops at the ruler; the window is the middle panel's.
    name = "twitter_taotepocus__1418762440221790210.mp4"
    truth, detection = _truth(name), _detect(realdata, name)
    assert window_iou(detection.window, window_for(box_window(truth.fov), "convex", *truth.size)) >= 0.95
    right_edge = detection.window.x + int(np.flatnonzero(detection.fov_mask.any(axis=0))[-1])
    assert right_edge <= 416  # the ruler's columns (+ the 1% slack), not the neighbour's flank (to x ~450)


def test_a_ruler_over_a_single_sectors_flank_does_not_cut_the_field(realdata):
    # 1669437834753712128: one big sector, its ruler drawn over its right flank with field beyond it
    name = "twitter_taotepocus__1669437834753712128.mp4"
    truth, detection = _truth(name), _detect(realdata, name)
    assert window_iou(detection.window, window_for(box_window(truth.fov), "convex", *truth.size)) >= 0.95
    assert detection.fov_mask[:, -30:].any()


def test_a_ruler_with_a_tick_a_centimetre_drawn_over_the_tissue_is_masked(realdata):
    # 1379512336206159879: a 16 cm deep sector; its ruler has one tick and one digit a centimetre (1-15, no minor
    # ticks) over the field's right edge, 12 regular gaps where the faint-ruler pass wanted 14: 57% of the
    # ruler's marks were removed
    name = "twitter_taotepocus__1379512336206159879.mp4"
    truth, detection = _truth(name), _detect(realdata, name)
    frames = [f.image for f in iter_frames(_clip(realdata, name)) if f.index % 4 == 0]
    gray = cv2.cvtColor(np.median(np.stack(frames), axis=0).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    hat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    x0, y0, x1, y1 = next(o.box for o in truth.overlays if o.kind == "ruler" and _inside(o.box, detection.window))
    ruler = np.zeros(gray.shape, bool)
    ruler[y0:y1, x0:x1] = hat[y0:y1, x0:x1] > 30
    ruler = ruler[detection.window.slices()]
    masked = cv2.dilate(detection.main_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert ruler.sum() > 300 and (ruler & masked).sum() >= 0.95 * ruler.sum()
    assert _score(realdata, name).tissue_masked <= 0.005


def _variant_score(realdata: Path, name: str, variant: str, work: Path):
    """The clip served as ``benchmarks/bench_variants.py``'s variant (mirrored, resized, in black bars), scored
    against its truth moved with the frames."""
    from bench_variants import run

    score, summary, _seconds = run(variant, name, _truth(name), realdata, work)
    assert score is not None, summary
    return score


@pytest.mark.parametrize("variant", ["mirror", "large"])
def test_a_static_line_along_a_panels_top_is_trimmed_mirrored_and_scaled_up(realdata, variant, tmp_path):
    # 1423818531095842818's grey UI line along each panel's top (3 rows): mirrored, the window takes the other
    # panel, whose line reads 94%, 89%, 93%, 93% static (coding noise where it meets moving tissue; the strict rule
    # wants 90% on every row; one line inside the run may flicker down to 80%) over an image 13% static; at 1.5x
    # the line is 5 rows, over the 4 a line could be (now 0.8% of the frame's shorter side where that is more).
    # The window began on the line and the line was scored as an overlay left in (0.24-0.26).
    score = _variant_score(realdata, "twitter_taotepocus__1423818531095842818.mp4", variant, tmp_path)
    assert score.overlay_recall >= 0.9 and score.iou >= 0.9 and score.top_ok


@pytest.mark.parametrize("name", ["twitter_taotepocus__1432487654680055810.mp4",  # a sector beside a CT image
                                  "twitter_taotepocus__1451609510347513859.mp4",  # two sectors
                                  "twitter_taotepocus__1447995907203649537.mp4"])  # a sector with a Doppler box
def test_a_screen_filmed_by_a_phone_gives_its_panel_not_the_screen(realdata, name, tmp_path):
    # bench_variants' "filmed" copy: the image's black lifted to 12 with a phone's noise, pasted on 0. The screen's
    # black above and around the panels is the lifted plateau; the field was the whole screen (IoU 0.21-0.48, probe
    # linear, rulers and labels inside the field) until the plateau could fill the region's top rows with no
    # tissue beside it, and each side of the field got its own straight line.
    score = _variant_score(realdata, name, "filmed", tmp_path)
    assert score.iou >= 0.9 and score.probe_ok and score.top_ok
    assert score.overlay_recall >= 0.95 and score.tissue_masked <= 0.005


def test_a_still_image_beside_the_sector_is_not_part_of_the_field(realdata):
    # 1432487654680055810: a gallbladder sector (x 36-355) beside a CT image (x ~360-465): the window keeps the sector
    name = "twitter_taotepocus__1432487654680055810.mp4"
    truth, detection = _truth(name), _detect(realdata, name)
    assert window_iou(detection.window, window_for(box_window(truth.fov), "convex", *truth.size)) >= 0.9
    assert detection.window.x + detection.window.w <= 400


def test_a_static_line_along_the_top_of_a_panel_is_not_the_field(realdata):
    # 1423818531095842818: a grey interface line on rows 109-111 (grey 18-55) over the panel, whose image starts on
    # row 112 (the truth's top): the window starts below the line, or blanks it
    name = "twitter_taotepocus__1423818531095842818.mp4"
    detection = _detect(realdata, name)
    window = detection.window
    assert 109 <= window.y <= 114
    frame = next(iter(iter_frames(_clip(realdata, name)))).image
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    line = np.zeros(gray.shape, bool)
    line[109:112, 30:340] = True
    line = (line & (gray > 15))[window.slices()]
    removed = ~detection.fov_mask | (cv2.dilate(detection.main_mask.astype(np.uint8), np.ones((5, 5))) > 0)
    assert line.sum() == 0 or removed[line].mean() >= 0.95


@pytest.mark.parametrize("name, rule, image", [
    # a grey rule on rows 64-67, 400 px wide, over a trapezoid whose image starts on row 68 and is 300 px wide there
    ("twitter_taotepocus__1460700066201669638.mp4", 67, 68),
    # rows 33-34 over each of three panels; the image starts on row 34, blended with the rule
    ("twitter_taotepocus__1390908611967193088.mp4", 33, 35),
])
def test_a_rule_wider_than_the_field_on_its_first_row_is_not_the_field(realdata, name, rule, image):
    # Coding blends the rule's last row with the tissue under it, so that row changes like tissue; it runs on past
    # the image's corners, which an image's row does not
    window = _detect(realdata, name).window
    assert rule < window.y <= image
    assert _score(realdata, name).overlay_recall >= 0.95


def test_the_rim_of_a_coloured_line_just_outside_the_window_is_masked(realdata):
    # grepmed Reg-Grep-Alines: a green border line at x = 418-420 (chroma 57-88), its coded rim on x = 417, the
    # window's last column (the field ends at x = 415): no seed inside the window reached it (0% removed)
    name = "grepmed__Reg-Grep-Alines.mp4"
    detection = _detect(realdata, name)
    assert detection.window.x + detection.window.w == 418
    assert detection.main_mask[:, -1].mean() > 0.95
    assert detection.main_mask[:, :-1].sum() <= 10  # nothing else: 8 px it masked before, at the top edge
    score = _score(realdata, name)
    assert score.overlay_recall >= 0.95 and score.tissue_masked <= 0.005


@pytest.mark.parametrize("name", [
    "butterfly__Cov_Butterfly_Coalescing_B_lines.avi",  # B-lines moving under the caption
    "pocusatlas__Cov-Atlas-pleural.mp4",
])
def test_a_caption_burned_in_across_the_lung_is_masked_and_nothing_else_is(realdata, name):
    # Social-media clips carry captions over the image; static bright text in the lung's core was left alone (still
    # bright tissue is as static), so a white word across the middle of the field stayed in (0% and 15% masked)
    from processing.pixels.autodetect import detect_frames

    frames = [f.image.copy() for f in iter_frames(_clip(realdata, name))]
    height, width = frames[0].shape[:2]
    scale = max(0.5, width / 600)
    caption = np.zeros((height, width), np.uint8)
    cv2.putText(caption, "Pleural line", (width // 4, int(0.45 * height)), cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                max(1, round(2 * scale)), cv2.LINE_AA)
    for frame in frames:
        frame[caption > 0] = np.maximum(frame[caption > 0], caption[caption > 0, None])
    plain, captioned = _detect(realdata, name), detect_frames(list(enumerate(frames)))
    assert captioned.window == plain.window
    rows, cols = plain.window.slices()
    letters = (caption > 128)[rows, cols]
    masked = cv2.dilate(captioned.main_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert letters.sum() > 200 and masked[letters].mean() >= 0.9
    # the words and their rims, nothing more (a glyph that touches a still bright echo takes a pixel or two of it)
    near = cv2.dilate((caption > 0).astype(np.uint8), np.ones((11, 11), np.uint8))[rows, cols] > 0
    assert not (captioned.main_mask & ~plain.main_mask & ~near).any()


def test_a_probe_icon_drawn_inside_the_sector_is_masked_and_the_lung_around_it_is_not(realdata):
    # 1378797632240414723: Butterfly's probe icon, a grey 195-205 disc 30 px across with a dark glyph, drawn over
    # the sector's lower right (box 304-333 x 408-438); still bright tissue is as static, but fades into grey
    name = "twitter_taotepocus__1378797632240414723.mp4"
    detection = _detect(realdata, name)
    window = detection.window
    icon = np.zeros(detection.main_mask.shape, bool)
    icon[408 + 4 - window.y:438 - 4 - window.y, 304 + 4 - window.x:333 - 4 - window.x] = True  # inside the disc
    assert detection.main_mask[icon].mean() >= 0.95
    score = _score(realdata, name)
    assert score.overlay_recall >= 0.95 and score.tissue_masked <= 0.005


def test_a_colour_fringe_along_the_windows_edge_is_masked_not_taken_for_a_pointer(realdata):
    # GrepMed Pneu-grep-pneumonia4 (317x302) in black bars: its square window ends a column short of the image, and
    # the colour the coder smeared into the two columns before it comes and goes. It was taken for a pointer over
    # the lung and 17 of the 149 frames were dropped.
    path = _clip(realdata, "grepmed__Pneu-grep-pneumonia4.mp4")

    def frames():
        return ((f.index, cv2.copyMakeBorder(f.image, 15, 15, 48, 48, cv2.BORDER_CONSTANT, value=0))
                for f in iter_frames(path))

    detection = detect_frames(frames(), clip_id="letterboxed", pointer_policy="drop", again=frames)
    assert detection.dropped_frames == () and detection.frame_masks == {}
    window = detection.window
    assert window.x + window.w == 48 + 316  # the window still ends a column short of the image
    assert detection.main_mask[:, -2:].sum() >= 10  # the fringe is masked on every frame
    assert detection.main_mask[:, :-2].sum() <= 0.001 * window.w * window.h  # and little else


# --------------------------------------------------------------------------------------- 3. outlier frames dropped


def test_a_black_last_frame_is_dropped(realdata):
    detection = _detect(realdata, "twitter_taotepocus__1669437834753712128.mp4")
    assert dict(detection.unusable_frames) == {280: "blank"}
    assert "1 cut/blank dropped" in detection.summary()


def test_a_cut_to_another_scene_is_dropped_and_nothing_else(realdata, tmp_path):
    # 40 frames of one clip, then one frame of another device's image: the last frame is a cut
    main = [f.image for f, _ in zip(iter_frames(_clip(realdata, "twitter_taotepocus__1457933751766421505.mp4")),
                                     range(40), strict=False)]
    other = next(iter(iter_frames(_clip(realdata, "grepmed__Cov-grep-7505.mp4")))).image
    height, width = main[0].shape[:2]
    other = cv2.resize(other, (width, height), interpolation=cv2.INTER_AREA)
    path = tmp_path / "cut.mov"
    with VideoWriter(path, width, height, 25.0) as writer:
        for i, image in enumerate([*main, other]):
            writer.write(image, i / 25.0)
    detection = detect_clip(path)
    assert dict(detection.unusable_frames) == {40: "cut"}


_SCAN = "twitter_taotepocus__1457933751766421505.mp4"


def _joined(realdata: Path, tmp_path: Path, parts: list[tuple[str, int]], name: str = "joined") -> Path:
    """A clip joined from ``(real clip, frame count)`` parts, each scaled to the first part's size; a clip used
    before goes on from the frame where its last part stopped."""
    first = next(iter(iter_frames(_clip(realdata, parts[0][0])))).image
    height, width = first.shape[:2]
    used: dict[str, int] = {}
    frames = []
    for clip, count in parts:
        start = used.get(clip, 0)
        for frame in iter_frames(_clip(realdata, clip)):
            if start <= frame.index < start + count:
                frames.append(cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA))
        used[clip] = start + count
    path = tmp_path / f"{name}.mov"
    with VideoWriter(path, width, height, 25.0) as writer:
        for i, image in enumerate(frames):
            writer.write(image, i / 25.0)
    return path


def test_a_clip_joined_from_scans_keeps_its_longest_scene_when_none_holds_half_of_it(realdata, tmp_path):
    # 24 frames of one scan, 18 of another, 18 of a third: the first is 40% of the clip
    parts = [(_SCAN, 24), ("grepmed__Cov-grep-7505.mp4", 18), ("butterfly__Cov_Butterfly_Consolidation.avi", 18)]
    detection = detect_clip(_joined(realdata, tmp_path, parts))
    assert dict(detection.unusable_frames) == {i: "cut" for i in range(24, 60)}


def test_a_scene_an_inserted_clip_interrupts_is_one_scene(realdata, tmp_path):
    # 20 frames of a scan, 12 of another, then 20 more of the first: the insert is cut, both halves are kept
    parts = [(_SCAN, 20), ("litfl__Pneu_liftl_pneu_case3_clip3.mp4", 12), (_SCAN, 20)]
    detection = detect_clip(_joined(realdata, tmp_path, parts))
    assert dict(detection.unusable_frames) == {i: "cut" for i in range(20, 32)}


@pytest.mark.parametrize("name", [
    "grepmed__Pneu-grep-pneumonia4.mp4",  # the largest steps between frames of the 90 real clips (21.2 grey levels)
    "youtube__Reg-Youtube.mp4",  # steps of 18 where the frames around change by 1.7
    "twitter_taotepocus__1432487654680055810.mp4",  # 14.9 where the frames around change by 0.5
])
def test_probe_motion_is_no_cut(realdata, name):
    assert _detect(realdata, name).unusable_frames == {}


def test_a_slideshow_of_stills_is_all_cuts_and_an_error_naming_it(realdata, tmp_path):
    from processing.errors import ClipError

    stills = [_SCAN, "grepmed__Cov-grepmed2.mp4", "twitter_taotepocus__1346901214101958661.mp4",
              "grepmed__Cov-grep-7543.mp4", "radiopaedia__Reg-NormalLungs.mp4", "grepmed__Cov-grep-7500.mp4"]
    path = _joined(realdata, tmp_path, [(still, 1) for still in stills], name="slides")
    with pytest.raises(ClipError, match="slides: no ultrasound field of view found: every frame is blank or a cut"):
        detect_clip(path)


def test_a_clip_that_is_all_blank_is_an_error_naming_it(tmp_path):
    from processing.errors import ClipError

    path = tmp_path / "blank.mov"
    with VideoWriter(path, 64, 48, 10.0) as writer:
        for i in range(6):
            writer.write(np.zeros((48, 64, 3), np.uint8), i / 10)
    with pytest.raises(ClipError, match="blank: no ultrasound field of view found: every frame is blank"):
        detect_clip(path)


def test_colour_doppler_on_every_frame_is_masked_frame_by_frame_not_dropped(realdata):
    # 1609635280687865857: a colour-flow box inside the sector on every frame; dropping "pointer" frames would
    # drop the whole clip
    detection = _detect(realdata, "twitter_taotepocus__1609635280687865857.mp4", policy="drop")
    assert detection.dropped_frames == ()
    assert len(detection.frame_masks) >= 0.9 * detection.frame_count


@pytest.mark.parametrize("name", [
    "twitter_taotepocus__1418762440221790210.mp4",  # the colour moves: masked frame by frame
    "twitter_taotepocus__1447995907203649537.mp4",  # a loop of one flow frame: the colour is still
])
def test_the_outline_of_a_colour_doppler_box_is_masked(realdata, name):
    # The thin line drawn around the coloured region, inside the sector, was left in (69% of the box's marks
    # removed, the colour only). Its pixels: the box's white top-hat in the median frame, not coloured.
    from processing.pixels.evaluate import chroma_of

    truth, detection = _truth(name), _detect(realdata, name)
    frames = [f.image for f in iter_frames(_clip(realdata, name)) if f.index % 4 == 0]
    median = np.median(np.stack(frames), axis=0).astype(np.uint8)
    gray = cv2.cvtColor(median, cv2.COLOR_RGB2GRAY)
    hat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, np.ones((5, 5), np.uint8))
    box = next(o.box for o in truth.overlays if o.kind == "colour box" and _inside(o.box, detection.window))
    x0, y0, x1, y1 = box
    line = np.zeros(gray.shape, bool)
    line[y0:y1, x0:x1] = (hat[y0:y1, x0:x1] > 30) & (chroma_of(median[y0:y1, x0:x1]) < 30)
    rows, cols = detection.window.slices()
    masked = cv2.dilate(detection.main_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # 98% on both (8% and 6% before); the rest is bright tissue inside the box's corners
    assert (line[rows, cols] & masked).sum() >= 0.9 * line.sum()
    assert _score(realdata, name).tissue_masked <= 0.005


def test_the_outline_of_a_colour_doppler_box_is_masked_where_one_side_crosses_bright_tissue(realdata):
    # 1346901214101958661 mirrored (bench_variants' "mirror", where the window takes the panel with the box): the
    # box's left side crosses bright tissue, which breaks its ridge into pieces shorter than a side must be, and
    # no part of the outline was masked (overlay 0.83). Its longest piece, prolonged to the other side's rows,
    # closes the box.
    from processing.pixels.evaluate import chroma_of

    name = "twitter_taotepocus__1346901214101958661.mp4"
    frames = [np.ascontiguousarray(f.image[:, ::-1]) for f in iter_frames(_clip(realdata, name))]
    detection = detect_frames(frames, pointer_policy="drop", again=lambda: frames)  # colour photos: a second read
    width = frames[0].shape[1]
    x0, y0, x1, y1 = next(o.box for o in _truth(name).overlays if o.kind == "colour box"
                          and _inside((width - o.box[2], o.box[1], width - o.box[0], o.box[3]), detection.window))
    x0, x1 = width - x1, width - x0
    median = np.median(np.stack(frames[::4]), axis=0).astype(np.uint8)
    hat = cv2.morphologyEx(cv2.cvtColor(median, cv2.COLOR_RGB2GRAY), cv2.MORPH_TOPHAT, np.ones((5, 5), np.uint8))
    line = np.zeros(hat.shape, bool)
    line[y0:y1, x0:x1] = (hat[y0:y1, x0:x1] > 30) & (chroma_of(median[y0:y1, x0:x1]) < 30)
    rows, cols = detection.window.slices()
    masked = cv2.dilate(detection.main_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    left = line.copy()
    left[:, (x0 + x1) // 2:] = False  # the broken side's half
    assert (line[rows, cols] & masked).sum() >= 0.8 * line.sum()  # 0.85 (0.003 before)
    assert (left[rows, cols] & masked).sum() >= 0.8 * left.sum()  # 0.87 (0.01 before)


@pytest.mark.parametrize("name", [
    # the flow's small and shifting parts were not pointer-sized blobs and stayed in the clean frames (90 coloured
    # pixels per frame in the field); on a Doppler clip all colour in the field is masked
    "twitter_taotepocus__1609635280687865857.mp4",
    # two colour photos above the Doppler panels colour 12% of every frame, too many coloured pixels to keep per
    # frame: only the still colour of the median frame was masked (520 coloured pixels left on frame 21)
    "twitter_taotepocus__1447995907203649537.mp4",
])
def test_no_colour_doppler_is_left_in_the_clean_frames(realdata, name):
    from processing.pixels.evaluate import chroma_of
    from processing.pixels.inpaint import inpaint
    from processing.pixels.masks import dilate

    detection = _detect(realdata, name)
    rows, cols = detection.window.slices()
    left = []
    for frame in iter_frames(_clip(realdata, name)):
        if frame.index % 7 == 0:
            clean = inpaint(frame.image[rows, cols], dilate(detection.mask_for(frame.index)))
            left.append(int(((chroma_of(np.ascontiguousarray(clean)) > 40) & detection.fov_mask).sum()))
    assert len(left) >= 10 and sum(left) / len(left) <= 10, left


def _inside(box, window) -> bool:
    return window.x <= box[0] and box[2] <= window.x + window.w and window.y <= box[1] and box[3] <= window.y + window.h


# ------------------------------------------------------------------------------------------- 4. tissue is spared


@pytest.mark.parametrize("name", [
    "butterfly__Cov_Butterfly_Coalescing_B_lines.avi",
    "grepmed__Cov-grep-7500.mp4",
    "pocusatlas__Pneu-Atlas-pneumonia.gif",
    "paper__Cov_convex_volpecelli_sonographic_v1.mov",
])
def test_clips_without_overlays_lose_no_tissue(realdata, name):
    score = _score(realdata, name)
    assert score.tissue_masked <= 0.005
    assert score.top_ok and score.iou >= 0.95


def test_still_speckle_is_part_of_the_field(realdata):
    # Butterfly's "Normal Lung A lines" (25 frames): the near field does not change over the loop (std <= 1.5 on
    # its first 100 rows, and on a column down the middle); static bright pixels were excluded from the field as
    # marks, so the sector fell apart at a "saddle" between two apices and the window began on row 48, its right
    # half blanked. Still speckle is rough, not strokes: the whole sector, from its first row
    detection = _detect(realdata, "butterfly__Reg_Butterfly_Normal_Lung_A_lines.avi")
    assert detection.window.y == 0
    fov = detection.fov_mask
    assert fov[0].any()
    left, right = np.flatnonzero(fov[250])[[0, -1]]
    assert left <= 70 and right >= 440  # the sector's flanks at row 250 (x ~55 and ~460 by eye)
    # LITFL H1N1 case 2: the skin line where the arc meets row 0 at the top right does not change (a GIF that
    # kept unchanged pixels); it was blanked as outside the field (0.83% of the tissue)
    assert _score(realdata, "litfl__Vir_liftl_H1N1_case2_clip1.mp4").tissue_masked <= 0.005


def test_still_tissue_a_coarse_coder_left_unchanged_does_not_split_the_field(realdata, tmp_path):
    # The same sector coded again as a re-upload would be (H.264, CRF 36): the coder skips the blocks that barely
    # change, so a band down the middle of the sector had no live speckle, and the field was split there as if
    # two panels met: the right half (49% of the tissue) was blanked. A seam between panels is dark in the median
    # frame; that band is as lit as the rest of the field.
    from bench_variants import CRFS, coded_copy  # the benchmark's "coarse" copy, where this was found

    assert CRFS["coarse"] == 36
    path = coded_copy(_clip(realdata, "butterfly__Reg_Butterfly_Normal_Lung_A_lines.avi"), tmp_path, "coarse")
    detection = detect_clip(path)
    left, right = np.flatnonzero(detection.fov_mask[250])[[0, -1]]
    assert left <= 70 and right >= 440  # the whole sector, as on the original
    assert detection.main_mask.mean() < 0.005


def test_smooth_tissue_a_coder_froze_at_a_fields_corner_stays_in_the_field(realdata, tmp_path):
    # 1412524263630946310 re-coded at CRF 28: the coder froze the lower-left corner of the right panel's trapezoid
    # (static, brighter than 60 grey: like a mark), and its tissue's roughness, 5.3, was under the speckle line
    # (6.0): the corner was blanked, 1.37% of the tissue. The same corner is kept at the clip's own coding.
    from bench_variants import CRFS, coded_copy

    assert CRFS["recoded"] == 28
    detection = detect_clip(coded_copy(_clip(realdata, "twitter_taotepocus__1412524263630946310.mp4"), tmp_path,
                                       "recoded"))
    window = detection.window
    corner = detection.fov_mask[335 - window.y:372 - window.y, 292 - window.x:330 - window.x]
    assert corner.mean() >= 0.85


def test_still_speckle_of_a_clip_scaled_up_is_part_of_the_field(realdata):
    # Butterfly "Normal Lung A lines" at 1.5x (756 px, cubic): the still near field's roughness over a 5x5 window
    # fell below the speckle line, and its top right corner (source rows ~5-60, columns ~330-420) was blanked, 3.3%
    # of the tissue. The window that measures roughness follows the frame's size.
    frames = [cv2.resize(f.image, (756, 756), interpolation=cv2.INTER_CUBIC)
              for f in iter_frames(_clip(realdata, "butterfly__Reg_Butterfly_Normal_Lung_A_lines.avi"))]
    detection = detect_frames(frames)
    w = detection.window
    corner = np.zeros((756, 756), bool)
    corner[int(1.5 * 10):int(1.5 * 60), int(1.5 * 340):int(1.5 * 410)] = True
    tissue = corner & (cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY) > 20)
    assert tissue.sum() > 1000
    assert detection.fov_mask[tissue[w.slices()]].mean() > 0.95


def test_a_chest_wall_parted_from_the_lung_by_a_dark_layer_stays_in_the_field(realdata):
    # POCUS Atlas "Pneu-Atlas-pneumonia" (a GIF cropped to the image) at 0.6x: the chest wall, from the frame's top
    # edge down to row ~46, is a region of its own, parted from the lung by an anechoic layer ~15 px thick; the
    # window began at the pleura and the chest wall was blanked (19% of the tissue). At full size a thin bridge of
    # speckle happened to join them.
    frames = [cv2.resize(f.image, (125, 125), interpolation=cv2.INTER_AREA)
              for f in iter_frames(_clip(realdata, "pocusatlas__Pneu-Atlas-pneumonia.gif"))]
    detection = detect_frames(frames, pointer_policy="drop")
    assert detection.window.y <= 2
    rows = detection.fov_mask[: 30 - detection.window.y]  # the chest wall's rows
    assert rows.mean(axis=1).min() >= 0.5
    assert detection.main_mask.mean() < 0.005


@pytest.mark.parametrize("name", [
    "twitter_taotepocus__1412524263630946310.mp4",
    "twitter_taotepocus__1460700066201669638.mp4",
])
def test_the_top_corners_of_a_flat_topped_field_are_not_blanked(realdata, name):
    # Butterfly trapezoids: the opening that takes ruler ticks off the candidate region rounded the corners of the
    # flat top, and the blank outside the field took the first rows of tissue there (0.58% and 1.11% of the tissue)
    assert _score(realdata, name).tissue_masked <= 0.005
    fov = _detect(realdata, name).fov_mask
    top = int(np.flatnonzero(fov.any(axis=1))[0])
    width_at = [int(fov[top + k].sum()) for k in (5, 10)]
    # 5 rows down, the field is as wide as the flat top (it widens from there): no rounded corner cut out
    assert width_at[0] >= fov[top:top + 3].sum(axis=1).max() - 2


# --------------------------------------------------------------------------------------------------- 5. the probe


def test_sectors_cropped_to_a_square_stay_convex_and_linear_fields_stay_linear(realdata):
    convex = ["pocusatlas__Cov-Atlas-Dayp1.gif", "grepmed__Cov-grepmed2.mp4", "pocusatlas__Reg-Atlas.gif",
              "litfl__Reg_liftl_case3_clip2.mp4", "paper__Cov_convex_volpecelli_sonographic_v2.mov",
              "butterfly__Cov_Butterfly_Irregular_Pleural_Line.avi"]
    linear = ["grepmed__Cov-grep-7431.mp4", "grepmed__Cov-grep-7500.mp4", "pocusatlas__Cov-Atlas-pleural.mp4",
              "youtube__Pneu-Youtube-start20sec.mp4"]
    assert [n for n in convex if _detect(realdata, n).probe != "convex"] == []
    assert [n for n in linear if _detect(realdata, n).probe != "linear"] == []


@pytest.mark.parametrize("name", ["pocusatlas__Reg-Atlas.gif", "grepmed__Cov-grepmed2.mp4",
                                  "paper__Cov_convex_volpecelli_sonographic_v1.mov"])
def test_a_sector_filling_a_filmed_screen_stays_convex(realdata, name, tmp_path):
    # filmed (bench_variants): the black corners above the sector's arc are lifted to the screen's black, inside
    # the region; the arc is read on the region's lit part. These were called linear.
    assert _variant_score(realdata, name, "filmed", tmp_path).probe_ok


def test_a_sector_crop_whose_dark_corners_lie_above_the_black_is_convex(realdata):
    # LITFL "Pneumonia" crop (MANIFEST: convex), already cropped to its sector: the corners above the arc are 22
    # grey (flat), 20 above the frame's black, and were read as the field's top edge (linear, a 316x309 window)
    detection = _detect(realdata, "litfl__Pneu_Pneumonia-LITFL-Ultrasound_crop.mp4")
    assert detection.probe == "convex" and detection.window == Window(0, 0, 316, 316)


def test_a_flat_topped_field_that_widens_with_depth_is_convex(realdata):
    # Butterfly's trapezoid display (flat probe face, flanks diverging with depth), on lung and on other presets:
    # a sector format, as the release labels every Butterfly video
    names = ["twitter_taotepocus__1390908611967193088.mp4", "twitter_taotepocus__1426301294831149068.mp4",
             "twitter_taotepocus__1412524263630946310.mp4", "twitter_taotepocus__1441827356000333824.mp4",
             "twitter_taotepocus__1460700066201669638.mp4"]
    assert [n for n in names if _detect(realdata, n).probe != "convex"] == []


# ------------------------------------------------------------------------- every clip of the truth, as measured


@pytest.mark.slow
def test_the_scores_over_every_truth_clip_hold_at_least_where_they_were_measured(realdata):
    """Regression floor at the figures BENCHMARKS.md reports (50 clips); the issue's targets are higher."""
    from bench_realclips import sample_frames

    scores = []
    for name, truth in load_truth(TRUTH).items():
        path = _clip(realdata, name)
        detection = detect_clip(path, pointer_policy="drop")
        scores.append(score_clip(detection, truth, sample_frames(path, truth), window_rule=window_for))
    n = len(scores)
    assert n >= 50
    assert all(s.top_ok for s in scores)
    assert sum(s.iou >= 0.9 for s in scores) >= n - 1
    assert all(s.overlay_recall >= 0.95 for s in scores)
    assert all(s.bad_missed == 0 for s in scores)
    assert all(s.good_dropped <= 0.02 for s in scores)
    assert all(s.tissue_masked <= 0.005 for s in scores)
    assert sum(s.probe_ok for s in scores) >= n - 1
