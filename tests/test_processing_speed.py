"""Speed measures that must not change results: the remembered probe, the threaded frame pipeline's outputs."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from clipfactory import flat_frames, textured_frames, write_clip
from PIL import Image

from processing.pixels.clips import forget_probes, iter_frames, probe_clip, write_video
from processing.pixels.inpaint import inpaint
from processing.pixels.pipeline import ClipPlan, ProcessingOptions, process_clip
from processing.windows import Window


def test_a_second_probe_of_an_unchanged_clip_is_remembered(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", flat_frames(10), fps=10, kind="mp4")
    forget_probes()
    first = probe_clip(path)
    assert probe_clip(path) is first
    assert probe_clip(str(path)) == first


def test_a_rewritten_clip_is_probed_again(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", flat_frames(10), fps=10, kind="mp4")
    assert probe_clip(path).frame_count == 10
    os.replace(write_clip(tmp_path / "other.mp4", flat_frames(6), fps=10, kind="mp4"), path)
    assert probe_clip(path).frame_count == 6
    forget_probes()
    assert probe_clip(path).frame_count == 6


def test_threaded_pipeline_writes_each_frame_inpainted_in_order(tmp_path: Path) -> None:
    """PNG frames and the clean video hold, frame by frame in source order, the cropped frame inpainted by
    inpaint() on the dilated mask (computed here independently), whatever the worker threads' timing."""
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(23)]
    path = tmp_path / "clip.mov"
    write_video(path, frames, [i / 10 for i in range(len(frames))], 10)  # lossless: decoded == written
    mask = np.zeros((40, 56), bool)
    mask[2:6, 3:20] = True
    mask[30:35, 50:54] = True
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    plan = ClipPlan("clip", "convex", Window(4, 4, 56, 40), tmp_path / "mask.png", deleted=((5, 7),))
    record = process_clip(path, plan, tmp_path / "out", ProcessingOptions(write_cropped=False))
    dilated = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    kept = [i for i in range(len(frames)) if not 5 <= i <= 7]
    expected = [inpaint(frames[i][4:44, 4:60], dilated, "ns") for i in kept]
    assert [f.index for f in record.frames] == kept
    for frame, want in zip(record.frames, expected, strict=True):
        assert frame.masked
        assert np.array_equal(np.asarray(Image.open(frame.path)), want)
    video = list(iter_frames(record.clean_video))
    assert [round(f.timestamp, 6) for f in video] == [i / 10 for i in kept]
    for got, want in zip(video, expected, strict=True):
        assert np.array_equal(got.image, want)


def test_memory_does_not_grow_with_the_clip_length(tmp_path: Path) -> None:
    """A clip streams through process_clip: the peak of Python/NumPy allocations (tracemalloc, every thread) for a
    clip ten times longer stays that of the short one, far below what holding the clip would take."""
    import gc
    import tracemalloc

    width, height = 320, 240
    mask = np.zeros((height, width), np.uint8)
    mask[4:40, 4:120] = 255  # a text box and a depth scale to inpaint on every frame
    mask[30:210, 300:312] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    peaks = {}
    for frames in (30, 300):
        clip = write_clip(tmp_path / f"c{frames}.mp4", textured_frames(frames, width, height), fps=25, kind="mp4")
        gc.collect()
        tracemalloc.start()
        try:
            record = process_clip(clip, ClipPlan(f"c{frames}", "convex", None, tmp_path / "mask.png"),
                                  tmp_path / "out", ProcessingOptions())
            peaks[frames] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert record.frames_kept == frames and record.frames_masked == frames and record.clean_video is not None
    whole_clip = 300 * width * height * 3  # 69 MB: what holding the decoded clip once would take
    assert peaks[300] < 1.5 * peaks[30] + 2_000_000, peaks
    assert peaks[300] < whole_clip / 8, peaks
