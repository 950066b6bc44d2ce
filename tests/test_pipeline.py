"""The per-clip pipeline: outputs, names, frame numbers, timing, records, atomicity, and plans for release videos."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from clipfactory import textured_frames, write_clip, write_gif
from PIL import Image

from processing.errors import ClipError, CovidxError, InvalidChoiceError
from processing.pixels.clips import iter_frames, probe_clip
from processing.pixels.crop import crop
from processing.pixels.masks import dilate
from processing.pixels.pipeline import (
    ClipPlan,
    ProcessingOptions,
    ProcessingRecord,
    plan_for_video,
    process_clip,
)
from processing.release.catalogue import CropRule, MaskPlan
from processing.windows import Window

WINDOW = Window(2, 2, 41, 33)  # odd size on purpose


def mark_mask(path: Path, size=(41, 33)) -> Path:
    """A mask over the white mark at source (4..12, 4..12), i.e. (2..10, 2..10) in the crop."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[2:10, 2:10] = 255
    Image.fromarray(mask).save(path)
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "us clip.mp4", textured_frames(12), fps=10)


def test_outputs_follow_the_release_layout_and_names(tmp_path: Path, clip: Path) -> None:
    plan = ClipPlan("7_litfl_covid", "convex", WINDOW, mark_mask(tmp_path / "m.png"))
    record = process_clip(clip, plan, tmp_path / "out", ProcessingOptions(max_frames=4))
    root = tmp_path / "out" / "data"
    assert (root / "video" / "original" / "7_litfl_covid.mp4").read_bytes() == clip.read_bytes()
    assert (root / "video" / "cropped" / "7_litfl_covid_prc.mov").is_file()
    assert record.clean_video == root / "video" / "clean" / "7_litfl_covid_prc_convex_clean.mov"
    names = sorted(p.name for p in (root / "image" / "clean").iterdir())
    assert names == [f"7_litfl_covid_prc_convex_clean_frame{n}.png" for n in (0, 11, 4, 7)]  # sorted as text
    assert [f.index for f in record.frames] == [0, 4, 7, 11]


def test_record_counts_sizes_and_timings(tmp_path: Path, clip: Path) -> None:
    plan = ClipPlan("c", "linear", WINDOW, mark_mask(tmp_path / "m.png"), deleted=((3, 5),))
    record = process_clip(clip, plan, tmp_path / "out", ProcessingOptions())
    assert isinstance(record, ProcessingRecord)
    assert (record.frames_read, record.frames_deleted, record.frames_kept, record.frames_masked) == (12, 3, 9, 9)
    assert record.source_size == (64, 48) and record.crop_size == (41, 33)
    assert record.fps == pytest.approx(10)
    assert set(record.timings) >= {"probe", "decode", "crop", "inpaint", "encode", "write"}
    assert all(t >= 0 for t in record.timings.values())


def test_clean_frames_are_the_cropped_source_with_only_the_mask_inpainted(tmp_path: Path, clip: Path) -> None:
    mask_file = mark_mask(tmp_path / "m.png")
    record = process_clip(clip, ClipPlan("c", "convex", WINDOW, mask_file), tmp_path / "out",
                          ProcessingOptions(write_videos=False))
    mask = dilate(np.asarray(Image.open(mask_file)) > 127)
    source = {f.index: crop(f.image, WINDOW) for f in iter_frames(clip)}
    for frame in record.frames:
        clean = np.asarray(Image.open(frame.path))
        assert frame.masked
        assert np.array_equal(clean[~mask], source[frame.index][~mask])  # PNG is lossless
        assert clean[2:10, 2:10].mean() < 200  # the white mark is gone
    assert record.clean_video is None
    assert not (tmp_path / "out" / "data" / "video").exists()


def test_clean_video_is_lossless_and_keeps_source_timing_across_deleted_frames(tmp_path: Path, clip: Path) -> None:
    plan = ClipPlan("c", "convex", WINDOW, mark_mask(tmp_path / "m.png"), deleted=((3, 5),))
    record = process_clip(clip, plan, tmp_path / "out", ProcessingOptions())
    video = list(iter_frames(record.clean_video))
    kept = [i for i in range(12) if not 3 <= i <= 5]
    assert [f.timestamp for f in video] == pytest.approx([i / 10 for i in kept])
    for decoded, frame in zip(video, record.frames, strict=True):
        assert np.array_equal(decoded.image, np.asarray(Image.open(frame.path)))
    cropped = probe_clip(tmp_path / "out" / "data" / "video" / "cropped" / "c_prc.mov")
    assert (cropped.frame_count, cropped.width, cropped.height) == (12, 41, 33)
    assert cropped.fps == pytest.approx(10)


def test_gif_clean_video_keeps_uneven_frame_durations(tmp_path: Path) -> None:
    durations = [100, 250, 50, 300, 100]
    gif = write_gif(tmp_path / "g.gif", [f // 32 * 32 for f in textured_frames(5)], durations)
    record = process_clip(gif, ClipPlan("g", "convex"), tmp_path / "out", ProcessingOptions())
    stamps = [f.timestamp for f in iter_frames(record.clean_video)]
    assert stamps == pytest.approx(np.cumsum([0, *durations[:-1]]) / 1000)
    assert record.frames_masked == 0 and record.crop_size == (64, 48)


def test_sampling_rate_and_max_frames_pick_source_frame_numbers(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", textured_frames(30), fps=30)
    record = process_clip(clip, ClipPlan("c", "convex"), tmp_path / "out",
                          ProcessingOptions(sample_hz=3, write_videos=False))
    assert [f.index for f in record.frames] == [0, 10, 20]
    assert [f.timestamp for f in record.frames] == pytest.approx([0, 1 / 3, 2 / 3])


def test_jpeg_frames_with_quality(tmp_path: Path, clip: Path) -> None:
    record = process_clip(clip, ClipPlan("c", "convex"), tmp_path / "out",
                          ProcessingOptions(image_format="jpeg", jpeg_quality=80, max_frames=2, write_videos=False))
    assert [f.path.name for f in record.frames] == ["c_prc_convex_clean_frame0.jpg", "c_prc_convex_clean_frame11.jpg"]
    assert Image.open(record.frames[0].path).format == "JPEG"


def test_rerun_replaces_the_previous_frames_of_the_clip(tmp_path: Path, clip: Path) -> None:
    process_clip(clip, ClipPlan("c", "convex"), tmp_path / "out", ProcessingOptions(write_videos=False))
    process_clip(clip, ClipPlan("c", "convex"), tmp_path / "out", ProcessingOptions(max_frames=2, write_videos=False))
    assert len(list((tmp_path / "out" / "data" / "image" / "clean").iterdir())) == 2


def test_one_pixel_short_release_mask_is_fitted_to_the_odd_crop(tmp_path: Path, clip: Path) -> None:
    short = mark_mask(tmp_path / "m.png", size=(40, 32))  # what upstream's even truncation produced
    record = process_clip(clip, ClipPlan("c", "convex", WINDOW, short), tmp_path / "out",
                          ProcessingOptions(max_frames=1, write_videos=False))
    assert record.crop_size == (41, 33)
    assert np.asarray(Image.open(record.frames[0].path)).shape == (33, 41, 3)


def test_bad_mask_fails_before_writing_anything_and_keeps_earlier_outputs(tmp_path: Path, clip: Path) -> None:
    out = tmp_path / "out"
    process_clip(clip, ClipPlan("c", "convex", WINDOW), out, ProcessingOptions(max_frames=2))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    wrong = mark_mask(tmp_path / "wrong_mask.png", size=(30, 30))
    with pytest.raises(ClipError, match=r"us clip\.mp4.*wrong_mask\.png.*30x30.*41x33"):
        process_clip(clip, ClipPlan("c", "convex", WINDOW, wrong), out, ProcessingOptions())
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_failure_mid_clip_leaves_no_partial_output(tmp_path: Path) -> None:
    whole = write_clip(tmp_path / "w.avi", textured_frames(20))
    data = whole.read_bytes()
    broken = tmp_path / "broken.avi"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ClipError, match="broken.avi"):
        process_clip(broken, ClipPlan("b", "convex"), tmp_path / "out", ProcessingOptions())
    leftovers = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else []
    assert leftovers == []


def test_a_failing_video_encode_stops_the_clip_and_leaves_nothing(tmp_path: Path, clip: Path, monkeypatch) -> None:
    """The clean video is encoded on a thread of its own: its failure must still reach the caller, stop the clip,
    and leave neither the video, nor frames, nor a temporary file, nor a running thread behind."""
    import threading

    from processing.pixels import clips

    real_write, calls = clips.VideoWriter.write, []

    def failing_write(self, image, timestamp):  # a disk that fills up at the 5th frame
        calls.append(timestamp)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        real_write(self, image, timestamp)

    monkeypatch.setattr(clips.VideoWriter, "write", failing_write)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        process_clip(clip, ClipPlan("c", "convex", WINDOW, mark_mask(tmp_path / "m.png")), out, ProcessingOptions())
    assert [p for p in out.rglob("*") if p.is_file()] == []
    assert not [t for t in threading.enumerate() if t.name.startswith(("covidx-video", "covidx-frame"))]
    assert len(calls) >= 5


def test_window_outside_the_frame_names_the_clip(tmp_path: Path, clip: Path) -> None:
    with pytest.raises(ClipError, match=r"us clip\.mp4.*outside the 64x48 frame"):
        process_clip(clip, ClipPlan("c", "convex", Window(30, 0, 40, 48)), tmp_path / "out", ProcessingOptions())


@pytest.mark.parametrize("kwargs,match", [({"inpaint": "fast"}, "ns, telea"), ({"image_format": "tiff"}, "png, jpeg"),
                                          ({"max_frames": 0}, "max_frames"), ({"sample_hz": -1}, "sample_hz"),
                                          ({"jpeg_quality": 0}, "jpeg_quality")])
def test_options_are_validated_on_construction(kwargs, match) -> None:
    with pytest.raises((CovidxError, InvalidChoiceError), match=match):
        ProcessingOptions(**kwargs)


def video_like(**masks) -> SimpleNamespace:
    plan = dict(needs_mask=True, main_mask="5_core_covid_prc_linear_frame0_mask.jpg", frame_masks=(), deleted=(),
                tight=False)
    plan.update(masks)
    return SimpleNamespace(id="5_core_covid", probe="linear", crop_rule=CropRule("rect", rect=(2, 41, 2, 33)),
                           masks=MaskPlan(**plan))


def test_plan_for_video_applies_the_crop_rule_and_resolves_release_masks(tmp_path: Path, clip: Path) -> None:
    release = tmp_path / "mask"
    release.mkdir()
    mark_mask(release / "5_core_covid_prc_linear_frame0_mask.jpg")
    for n in (3, 4):
        mark_mask(release / f"5_core_covid_prc_linear_frame{n}_mask.jpg")
    video = video_like(frame_masks=((3, 4),), deleted=((8, 9),), tight=True)
    plan = plan_for_video(video, release, ProcessingOptions(), probe_clip(clip))
    assert plan.window == Window(2, 2, 41, 33)
    assert plan.main_mask == release / "5_core_covid_prc_linear_frame0_mask.jpg"
    assert set(plan.frame_masks) == {3, 4} and plan.deleted == ((8, 9),) and plan.tight
    record = process_clip(clip, plan, tmp_path / "out", ProcessingOptions(write_videos=False))
    assert [f.index for f in record.frames] == [0, 1, 2, 3, 4, 5, 6, 7, 10, 11]


def test_plan_for_video_prefers_user_masks_by_name(tmp_path: Path, clip: Path) -> None:
    release, user = tmp_path / "release", tmp_path / "masks"
    release.mkdir(), user.mkdir()
    mark_mask(release / "5_core_covid_prc_linear_frame0_mask.jpg")
    mark_mask(user / "5_core_covid_prc_linear_frame0_mask.png")
    plan = plan_for_video(video_like(), release, ProcessingOptions(mask_dirs=(user,)), probe_clip(clip))
    assert plan.main_mask == user / "5_core_covid_prc_linear_frame0_mask.png"


def test_plan_for_video_names_a_missing_mask(tmp_path: Path, clip: Path) -> None:
    with pytest.raises(ClipError, match="5_core_covid.*5_core_covid_prc_linear_frame0_mask.jpg"):
        plan_for_video(video_like(), tmp_path, ProcessingOptions(), probe_clip(clip))


def test_plan_for_video_without_mask_needs_no_files(tmp_path: Path, clip: Path) -> None:
    plan = plan_for_video(video_like(needs_mask=False, main_mask=None), tmp_path, ProcessingOptions(),
                          probe_clip(clip))
    assert plan.main_mask is None and not plan.frame_masks


def test_real_clip_end_to_end(realdata: Path, tmp_path: Path) -> None:
    clip = realdata / "videos" / "butterfly__Reg_Butterfly_Normal_Lung_A_lines.avi"  # 504x504, 25 frames
    mask = np.zeros((400, 401), np.uint8)
    mask[0:20, 0:60] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    plan = ClipPlan("20_butterfly_normal", "convex", Window(51, 40, 401, 400), tmp_path / "m.png", deleted=((0, 4),))
    record = process_clip(clip, plan, tmp_path / "out", ProcessingOptions(max_frames=5))
    assert record.frames_read == 25 and record.frames_deleted == 5
    # 20 frames left (5..24); positions round(i * 19 / 4) = 0, 5, 10, 14, 19
    assert [f.index for f in record.frames] == [5, 10, 15, 19, 24]
    assert probe_clip(record.clean_video).frame_count == 20


def test_a_terminal_sees_one_bar_per_clip_counting_its_frames(tmp_path: Path, clip: Path, capsys, monkeypatch) -> None:
    from processing import progress

    made = []

    def spy(**kwargs):
        made.append(real(**kwargs))
        return made[-1]

    real = progress.bar
    monkeypatch.setattr(progress, "bar", spy)
    monkeypatch.setenv("COVIDX_US_PROGRESS", "1")
    process_clip(clip, ClipPlan("barclip", "linear", WINDOW), tmp_path / "out", ProcessingOptions(write_videos=False))
    assert [(b.desc, b.n) for b in made] == [("barclip", 12)]  # the clip has 12 frames
    assert "barclip" in capsys.readouterr().err  # shown, not disabled


def test_progress_stays_quiet_when_turned_off(tmp_path: Path, clip: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COVIDX_US_PROGRESS", "0")
    process_clip(clip, ClipPlan("quietclip", "linear", WINDOW), tmp_path / "out", ProcessingOptions(write_videos=False))
    assert "quietclip" not in capsys.readouterr().err


def test_outside_the_field_of_view_clean_frames_are_black_and_inside_they_are_inpainted(tmp_path: Path,
                                                                                      clip: Path) -> None:
    field = np.zeros((33, 41), np.uint8)
    field[:, 4:37] = 255  # the field: columns 4..36 of the crop
    field[:3, 4:8] = 0  # and a notch in its top-left corner, over the mark
    Image.fromarray(field).save(tmp_path / "fov.png")
    plan = ClipPlan("f", "convex", WINDOW, mark_mask(tmp_path / "m.png"), fov_mask=tmp_path / "fov.png")
    record = process_clip(clip, plan, tmp_path / "out", ProcessingOptions(inpaint="telea"))
    inside = field > 0
    grown = dilate(np.asarray(Image.open(tmp_path / "m.png")) > 127) & inside  # masks stop at the field
    source = [f.image for f in iter_frames(clip)]
    videos = {kind: [f.image for f in iter_frames(path)] for kind, path in
              (("clean", record.clean_video), ("cropped", record.cropped_video))}
    for n, frame in enumerate(record.frames):
        clean = np.asarray(Image.open(frame.path))
        expected = crop(source[frame.index], WINDOW).copy()
        expected[~inside] = 0
        expected = cv2.inpaint(expected, grown.astype(np.uint8), 3, cv2.INPAINT_TELEA)  # whole frame, independently
        assert np.array_equal(clean, expected)
        assert np.array_equal(videos["clean"][n], expected)
        assert np.array_equal(videos["cropped"][n], crop(source[frame.index], WINDOW))  # the cropped video is not blanked
    assert not clean[~inside].any() and clean[inside].any()
