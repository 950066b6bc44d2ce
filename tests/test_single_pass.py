"""Processing a clip with one decode: the same frames chosen, the same record and bytes as the two-pass path
(probe, then decode), the same errors for bad clips, and a fallback when the header misleads."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from clipfactory import flat_frames, textured_frames, write_clip, write_gif
from PIL import Image

from processing.errors import ClipError, CovidxError
from processing.pixels import clips, pipeline
from processing.pixels.clips import ClipHeader, FrameReader, forget_probes, probe_clip, probe_header
from processing.pixels.frames import StreamSelector, select_frames
from processing.pixels.pipeline import ClipPlan, ProcessingOptions, clip_for_plan, process_clip
from processing.windows import Window

WINDOW = Window(2, 2, 41, 33)


# ---- frame selection while streaming


def _random_timestamps(rng: random.Random) -> list[float]:
    n = rng.randint(0, 120)
    style = rng.choice(("fps", "gif", "jitter"))
    if style == "fps":
        fps = rng.choice((7.5, 10, 12, 15, 23.976, 25, 29.97, 30, 50, 60))
        return [round(i / fps, 9) for i in range(n)]
    if style == "gif":  # uneven centisecond delays, as GIFs have
        stamps, t = [], 0.0
        for _ in range(n):
            stamps.append(round(t, 9))
            t += rng.choice((2, 3, 5, 7, 10, 12, 20, 33, 50, 100)) / 100
        return stamps
    stamps, t = [], 0.0
    for _ in range(n):
        stamps.append(round(t, 9))
        t += rng.uniform(0.001, 0.2)
    return stamps


def _random_deleted(rng: random.Random, n: int) -> tuple[tuple[int, int], ...]:
    ranges = []
    for _ in range(rng.randint(0, 3)):
        first = rng.randint(0, max(0, n + 5))
        ranges.append((first, first + rng.randint(0, 15)))
    return tuple(ranges)


def _reference(stamps: list[float], deleted, hz: float | None) -> tuple[int, ...]:
    """select_frames without max_frames as written before the streaming selector existed (independent code)."""
    kept = [i for i in range(len(stamps)) if not any(a <= i <= b for a, b in deleted)]
    if hz is None:
        return tuple(kept)
    out, target = [], 0
    for i in kept:
        if stamps[i] + 1e-6 >= target / hz:
            out.append(i)
            target = int((stamps[i] + 1e-6) * hz) + 1
    return tuple(out)


def test_streamed_selection_equals_select_frames_on_random_timestamps() -> None:
    rng = random.Random(20261127)
    for _ in range(3000):
        stamps = _random_timestamps(rng)
        deleted = _random_deleted(rng, len(stamps))
        hz = rng.choice((None, 0.5, 1, 2, 3, 3.3, 5, 7.5, 10, 24, 30, 100, rng.uniform(0.1, 40)))
        selector = StreamSelector(deleted=deleted, sample_hz=hz)
        streamed = tuple(i for i, t in enumerate(stamps) if selector.keep(i, t))
        assert streamed == select_frames(stamps, deleted=deleted, sample_hz=hz) == _reference(stamps, deleted, hz), (
            stamps, deleted, hz)
        assert selector.deleted == sum(any(a <= i <= b for a, b in deleted) for i in range(len(stamps)))


def test_streamed_selection_rejects_frames_out_of_order_and_bad_rates() -> None:
    selector = StreamSelector()
    assert selector.keep(0, 0.0)
    with pytest.raises(CovidxError, match="frame 2 asked out of order"):
        selector.keep(2, 0.2)
    with pytest.raises(CovidxError, match="sample_hz"):
        StreamSelector(sample_hz=0)


# ---- the header probe and the single-pass reader


@pytest.mark.parametrize("kind", ["mp4", "mov", "avi", "xvid.avi", "wmv"])
def test_header_and_one_pass_reader_agree_with_the_full_probe(tmp_path: Path, kind: str) -> None:
    path = write_clip(tmp_path / f"clip.{kind.split('.')[-1]}", textured_frames(9, 50, 38), fps=12, kind=kind)
    forget_probes()
    full = probe_clip(path)
    forget_probes()
    header = probe_header(path)
    assert isinstance(header, ClipHeader)
    assert (header.width, header.height, header.fps, header.container) == (50, 38, full.fps, full.container)
    reader = FrameReader(path)
    frames = list(reader)
    assert reader.info == full
    assert [f.timestamp for f in frames] == list(full.timestamps)
    assert probe_clip(path) is reader.info  # remembered: a later probe does not decode again


def test_gif_header_rate_is_the_mean_rate_of_uneven_durations(tmp_path: Path) -> None:
    path = write_gif(tmp_path / "clip.gif", flat_frames(6), [100, 200, 50, 300, 120, 70])
    forget_probes()
    assert probe_header(path).fps == probe_clip(path).fps == pytest.approx(6 / 0.84)


def test_clip_for_plan_reads_only_the_header_unless_max_frames_needs_the_count(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", flat_frames(5), fps=10)
    assert isinstance(clip_for_plan(path, ProcessingOptions()), ClipHeader)
    assert clip_for_plan(path, ProcessingOptions(max_frames=2)).frame_count == 5


def _count_decodes(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    original = clips._decoded

    def counting(path: Path):
        calls.append(path)
        return original(path)

    monkeypatch.setattr(clips, "_decoded", counting)
    return calls


@pytest.mark.parametrize("options", [ProcessingOptions(), ProcessingOptions(sample_hz=3.0)])
def test_a_clip_without_max_frames_is_decoded_once(tmp_path: Path, monkeypatch, options) -> None:
    path = write_clip(tmp_path / "clip.mp4", textured_frames(12), fps=10)
    forget_probes()
    calls = _count_decodes(monkeypatch)
    plan = ClipPlan("c", "convex", WINDOW, deleted=((3, 4),))
    record = process_clip(path, plan, tmp_path / "out", options)
    assert len(calls) == 1 and record.frames_read == 12


def test_max_frames_still_probes_then_decodes(tmp_path: Path, monkeypatch) -> None:
    path = write_clip(tmp_path / "clip.mp4", textured_frames(12), fps=10)
    forget_probes()
    calls = _count_decodes(monkeypatch)
    record = process_clip(path, ClipPlan("c", "convex", WINDOW), tmp_path / "out", ProcessingOptions(max_frames=3))
    assert len(calls) == 2 and [f.index for f in record.frames] == [0, 6, 11]


# ---- same records and bytes as the two-pass path


def _two_pass(path: Path, plan: ClipPlan, out: Path, options: ProcessingOptions):
    """The previous way, kept inside process_clip for max_frames and as the fallback: probe, then decode."""
    forget_probes()
    return pipeline._process(path, plan, out, options, None, 0.0)


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _comparable(record, root: Path) -> tuple:
    frames = tuple((f.index, f.timestamp, str(f.path.relative_to(root)), f.masked) for f in record.frames)
    return (record.clip_id, record.frames_read, record.frames_kept, record.frames_deleted, record.frames_masked,
            record.source_size, record.crop_size, record.fps, frames)


def _mask(tmp_path: Path) -> Path:
    mask = np.zeros((33, 41), np.uint8)
    mask[2:10, 2:10] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path / "mask.png"


def _clips(tmp_path: Path) -> dict[str, Path]:
    frames = textured_frames(23)
    out = {kind: write_clip(tmp_path / f"src.{kind.split('.')[-1]}", frames, fps=10, kind=kind)
           for kind in ("mp4", "avi", "wmv", "mov")}
    out["gif"] = write_gif(tmp_path / "src.gif", frames[:17],
                           [100, 200, 50, 30, 120, 70, 40, 300, 20, 90, 110, 60, 80, 250, 30, 10, 150])
    return out


@pytest.mark.parametrize("options", [
    ProcessingOptions(),
    ProcessingOptions(sample_hz=3.0),
    ProcessingOptions(sample_hz=7.0, image_format="jpeg", write_cropped=False),
])
def test_one_pass_gives_the_two_pass_record_and_bytes(tmp_path: Path, options: ProcessingOptions) -> None:
    mask = _mask(tmp_path)
    for kind, path in _clips(tmp_path).items():
        plan = ClipPlan(f"clip_{kind}", "convex", WINDOW, mask, frame_masks={5: mask}, deleted=((3, 6), (15, 15)))
        forget_probes()
        one = process_clip(path, plan, tmp_path / kind / "one", options)
        two = _two_pass(path, plan, tmp_path / kind / "two", options)
        assert _comparable(one, tmp_path / kind / "one") == _comparable(two, tmp_path / kind / "two"), kind
        assert one.frames_kept > 0 and one.frames_deleted == 5
        assert _tree(tmp_path / kind / "one") == _tree(tmp_path / kind / "two"), kind


def test_a_misleading_header_falls_back_to_two_passes_with_the_same_outputs(tmp_path: Path, monkeypatch) -> None:
    path = write_gif(tmp_path / "src.gif", textured_frames(8), [100, 200, 50, 30, 120, 70, 40, 300])
    plan = ClipPlan("g", "convex", WINDOW, _mask(tmp_path), deleted=((2, 3),))
    two = _two_pass(path, plan, tmp_path / "two", ProcessingOptions(sample_hz=5.0))
    for wrong in ({"fps": 9.5}, {"width": 60}):
        real = clips.probe_header

        def lying(p, wrong=wrong, real=real):
            return replace(real(p), **wrong)

        monkeypatch.setattr(pipeline, "probe_header", lying)
        forget_probes()
        out = tmp_path / f"one-{next(iter(wrong))}"
        one = process_clip(path, plan, out, ProcessingOptions(sample_hz=5.0))
        assert _comparable(one, out) == _comparable(two, tmp_path / "two")
        assert _tree(out) == _tree(tmp_path / "two")


# ---- bad clips: the same errors, nothing written


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize("suffix,cut", [("mp4", 0.6), ("avi", 0.5), ("gif", 0.8), ("mov", 0.9), ("wmv", 0.9)])
def test_truncated_clip_fails_the_single_pass_naming_it_and_writes_nothing(tmp_path: Path, suffix: str,
                                                                            cut: float) -> None:
    whole = tmp_path / f"whole.{suffix}"
    if suffix == "gif":
        write_gif(whole, flat_frames(6), [100] * 6)
    else:
        write_clip(whole, flat_frames(20), options={"movflags": "faststart"} if suffix == "mp4" else None)
    broken = tmp_path / f"broken.{suffix}"
    broken.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * cut)])
    forget_probes()
    with pytest.raises(ClipError, match="broken"):
        process_clip(broken, ClipPlan("b", "convex"), tmp_path / "out", ProcessingOptions(sample_hz=3.0))
    assert _files(tmp_path / "out") == []


def test_zero_frame_and_non_video_clips_fail_naming_them_and_write_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = 64, 48
    page = tmp_path / "error_page.mp4"
    page.write_text("<html>404 Not Found</html>")
    for path in (empty, page, tmp_path / "missing.mp4"):
        with pytest.raises(ClipError, match=path.name):
            process_clip(path, ClipPlan("b", "convex"), tmp_path / "out", ProcessingOptions())
        assert _files(tmp_path / "out") == []


# ---- real clips


def test_real_clips_one_pass_matches_two_passes(realdata: Path, tmp_path: Path) -> None:
    names = ["pocusatlas__Reg-Atlas-alines.gif", "butterfly__Reg_Butterfly_Normal_Lung_A_lines.avi",
             "litfl__Reg_liftl_pneucase3_clip1.mp4"]
    options = ProcessingOptions(sample_hz=3.0, write_cropped=False)
    for name in names:
        path = realdata / "videos" / name
        header = probe_header(path)
        plan = ClipPlan("r", "convex", Window(4, 4, header.width - 8, header.height - 8), deleted=((2, 5),))
        forget_probes()
        one = process_clip(path, plan, tmp_path / name / "one", options)
        two = _two_pass(path, plan, tmp_path / name / "two", options)
        assert _comparable(one, tmp_path / name / "one") == _comparable(two, tmp_path / name / "two")
        assert _tree(tmp_path / name / "one") == _tree(tmp_path / name / "two")
