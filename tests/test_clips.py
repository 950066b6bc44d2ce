"""Clip reading: every container, true frame counts, timestamps, GIF durations, and clear errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from clipfactory import flat_frames, write_clip, write_gif

from processing.errors import ClipError
from processing.pixels.clips import VIDEO_SUFFIX, ClipInfo, VideoWriter, iter_frames, probe_clip, write_video

KINDS = ["mp4", "mov", "avi", "xvid.avi", "wmv"]


@pytest.mark.parametrize("kind", KINDS)
def test_probe_counts_sizes_and_rate_for_each_container(tmp_path: Path, kind: str) -> None:
    path = write_clip(tmp_path / f"clip.{kind.split('.')[-1]}", flat_frames(10), fps=10, kind=kind)
    info = probe_clip(path)
    assert isinstance(info, ClipInfo)
    assert (info.width, info.height, info.frame_count) == (64, 48, 10)
    assert info.fps == pytest.approx(10)
    assert info.timestamps == pytest.approx([i / 10 for i in range(10)])
    assert info.duration == pytest.approx(1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_iter_frames_yields_every_frame_in_order_as_rgb(tmp_path: Path, kind: str) -> None:
    written = flat_frames(10)
    path = write_clip(tmp_path / f"clip.{kind.split('.')[-1]}", written, fps=10, kind=kind)
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(10))
    for frame, original in zip(frames, written, strict=True):
        assert frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3)
        assert np.abs(frame.image.astype(int) - original.astype(int)).mean() < 4  # lossy codecs, flat levels


def test_iter_frames_streams_one_frame_at_a_time(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", flat_frames(10))
    frames = iter_frames(path)
    first = next(frames)
    assert first.index == 0 and first.timestamp == 0.0
    frames.close()  # closing early releases the decoder


def test_gif_timestamps_follow_uneven_frame_durations(tmp_path: Path) -> None:
    durations = [100, 200, 50, 300, 120]
    written = flat_frames(5)
    path = write_gif(tmp_path / "clip.gif", written, durations)
    info = probe_clip(path)
    expected = np.cumsum([0, *durations[:-1]]) / 1000
    assert info.timestamps == pytest.approx(expected)
    assert info.duration == pytest.approx(sum(durations) / 1000)
    assert info.fps == pytest.approx(5 / (sum(durations) / 1000))
    frames = list(iter_frames(path))
    assert [f.timestamp for f in frames] == pytest.approx(expected)
    for frame, original in zip(frames, written, strict=True):
        assert np.array_equal(frame.image, original)  # few grey levels: the GIF palette is exact


@pytest.mark.parametrize("suffix,cut", [("mp4", 0.6), ("avi", 0.5), ("gif", 0.8), ("mov", 0.9), ("wmv", 0.9)])
def test_truncated_clip_raises_clip_error_naming_it(tmp_path: Path, suffix: str, cut: float) -> None:
    whole = tmp_path / f"whole.{suffix}"
    if suffix == "gif":
        write_gif(whole, flat_frames(6), [100] * 6)
    else:
        write_clip(whole, flat_frames(20), options={"movflags": "faststart"} if suffix == "mp4" else None)
    data = whole.read_bytes()
    broken = tmp_path / f"broken.{suffix}"
    broken.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ClipError, match="broken"):
        probe_clip(broken)


def test_not_a_video_raises_clip_error_naming_it(tmp_path: Path) -> None:
    page = tmp_path / "error_page.mp4"
    page.write_text("<html>404 Not Found</html>")
    with pytest.raises(ClipError, match="error_page.mp4"):
        probe_clip(page)


def test_missing_clip_raises_clip_error(tmp_path: Path) -> None:
    with pytest.raises(ClipError, match="nothere.mp4"):
        probe_clip(tmp_path / "nothere.mp4")


def test_zero_frame_clip_raises_clip_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = 64, 48
    with pytest.raises(ClipError, match="empty.mp4"):
        probe_clip(path)


def test_video_writer_is_lossless_keeps_odd_size_and_timestamps(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (47, 65, 3), dtype=np.uint8) for _ in range(5)]
    stamps = [0.0, 0.1, 0.5, 0.6, 1.25]  # a gap, as when frames were deleted
    path = tmp_path / f"out{VIDEO_SUFFIX}"
    with VideoWriter(path, 65, 47, fps=10) as writer:
        for image, stamp in zip(images, stamps, strict=True):
            writer.write(image, stamp)
    info = probe_clip(path)
    assert (info.width, info.height, info.frame_count) == (65, 47, 5)
    decoded = list(iter_frames(path))
    assert [f.timestamp for f in decoded] == pytest.approx(stamps)
    for frame, image in zip(decoded, images, strict=True):
        assert np.array_equal(frame.image, image)


def test_video_writer_keeps_uneven_and_late_timestamps_exactly(tmp_path: Path) -> None:
    # A GIF's centisecond delays, an NTSC rate and a clean video whose first frames were deleted (its first frame
    # at 0.5 s): the container keeps each time exactly (90 kHz), not rounded to a fixed rate as AVI would.
    rng = np.random.default_rng(2)
    for stamps in ([0.0, 0.07, 0.1, 0.43, 0.5, 0.93], [n * 1001 / 30000 for n in range(6)],
                   [0.5, 0.6, 0.7, 1.2, 1.3, 1.4]):
        images = [rng.integers(0, 256, (9, 7, 3), dtype=np.uint8) for _ in stamps]
        path = tmp_path / f"{stamps[1]}{VIDEO_SUFFIX}"
        write_video(path, images, stamps, fps=10)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            raw = [(float(f.pts * stream.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        assert [t for t, _ in raw] == pytest.approx(stamps, abs=1e-9)  # the times written, to the 90 kHz tick
        assert all(np.array_equal(got, image) for (_, got), image in zip(raw, images, strict=True))
        assert probe_clip(path).timestamps == pytest.approx([t - stamps[0] for t in stamps], abs=1e-9)


def test_video_writer_output_reads_the_same_in_opencv(tmp_path: Path) -> None:
    # OpenCV (its own FFmpeg build) is the other reader users reach for: same pixels, same times
    import cv2

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (21, 33, 3), dtype=np.uint8) for _ in range(4)]
    stamps = [0.0, 0.1, 0.5, 0.6]
    path = tmp_path / f"cv{VIDEO_SUFFIX}"
    write_video(path, images, stamps, fps=10)
    capture = cv2.VideoCapture(str(path))
    got = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        got.append((capture.get(cv2.CAP_PROP_POS_MSEC), bgr[..., ::-1]))
    capture.release()
    assert [ms for ms, _ in got] == pytest.approx([1000 * t for t in stamps])
    assert len(got) == 4 and all(np.array_equal(rgb, image) for (_, rgb), image in zip(got, images, strict=True))


def test_video_writer_takes_crops_and_a_buffer_reused_after_each_write(tmp_path: Path) -> None:
    # The writer splits each frame into one reused FFmpeg frame: a crop's strided rows must come out exact, and a
    # caller may overwrite its buffer as soon as write() returns.
    rng = np.random.default_rng(4)
    sources = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(4)]
    buffer = np.empty((40, 60, 3), np.uint8)
    path = tmp_path / f"out{VIDEO_SUFFIX}"
    with VideoWriter(path, 33, 21, fps=10) as writer:
        for n, source in enumerate(sources):
            buffer[:] = source
            writer.write(buffer[5:26, 7:40], n / 10)  # rows of 60 pixels, 33 used
            buffer[:] = 0  # what the encoder was given is already copied
    decoded = [f.image for f in iter_frames(path)]
    assert len(decoded) == 4
    for image, source in zip(decoded, sources, strict=True):
        assert np.array_equal(image, source[5:26, 7:40])


def test_video_writer_refuses_what_is_not_an_rgb_frame(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / f"bad{VIDEO_SUFFIX}", 8, 8, fps=10) as writer:
        with pytest.raises(ValueError, match=r"bad\.mov: frames must be uint8 \(H, W, 3\) RGB"):
            writer.write(np.zeros((8, 8), np.uint8), 0.0)
        writer.write(np.zeros((8, 8, 3), np.uint8), 0.0)  # the writer is still usable


_WRITE_ON_CPUS = """
import hashlib, os, sys
import numpy as np
from processing.pixels.clips import VideoWriter
os.sched_setaffinity(0, {int(c) for c in sys.argv[2].split(",")})
rng = np.random.default_rng(7)
base = rng.integers(0, 256, (272, 368, 3), dtype=np.uint8)
with VideoWriter(sys.argv[1], 352, 256, fps=25, threads=int(sys.argv[3])) as writer:
    for n in range(24):  # a moving texture
        writer.write(base[n % 16: n % 16 + 256, n: n + 352], n / 25)
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to compare")
def test_video_bytes_do_not_depend_on_the_machines_cores(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))

    def digest(allowed: list[int], threads: int) -> str:
        done = subprocess.run([sys.executable, "-c", _WRITE_ON_CPUS, str(tmp_path / f"{len(allowed)}-{threads}{VIDEO_SUFFIX}"),
                               ",".join(map(str, allowed)), str(threads)],
                              capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
        return done.stdout.strip()

    # MagicYUV's automatic slice count follows the CPUs the process may use, and its output follows the slices:
    assert digest(cpus[:1], 0) != digest(cpus, 0)
    # the writer's default fixes one slice, so one CPU or all of them write the same file
    assert digest(cpus[:1], 1) == digest(cpus, 1)
    with VideoWriter(tmp_path / f"default{VIDEO_SUFFIX}", 16, 40, fps=25) as writer:
        writer.write(np.zeros((40, 16, 3), np.uint8), 0.0)
    with av.open(str(tmp_path / f"default{VIDEO_SUFFIX}")) as container:
        header = bytes(next(container.demux(video=0)))  # the frame's MagicYUV header: tag, ..., slice height at 28
    assert header[:4] == b"MAGY" and int.from_bytes(header[28:32], "little") == 40  # one slice of all 40 rows


REAL = ["butterfly__Reg_Butterfly_Normal_Lung_A_lines.avi", "litfl__Reg_liftl_pneucase3_clip1.mp4",
        "pocusatlas__Reg-Atlas-alines.gif", "radiopaedia__Reg-NormalLungs.mp4"]


@pytest.mark.parametrize("name", REAL)
def test_real_clip_probe_matches_manifest(realdata: Path, name: str) -> None:
    rows = {r["file"]: r for r in csv.DictReader(open(realdata / "MANIFEST.csv", encoding="utf-8"))}
    row = rows[f"videos/{name}"]
    info = probe_clip(realdata / "videos" / name)
    assert (info.width, info.height) == (int(row["width"]), int(row["height"]))
    assert info.frame_count == int(row["n_frames"])
    assert info.fps == pytest.approx(float(row["fps"]), abs=0.01)
    assert sum(1 for _ in iter_frames(realdata / "videos" / name)) == info.frame_count
