"""Helpers for the download/source/test-site tests: tiny real clips written with PyAV, and catalogue records."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from processing.release.catalogue import CropRule, Expected, MaskPlan, Video
from processing.windows import Window


def _frames(width: int, height: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    for i in range(count):
        yield np.roll(base, i * 2, axis=1)


def write_mp4(path: Path, width: int = 64, height: int = 48, frames: int = 10, seed: int = 0) -> Path:
    """A real H.264 mp4 of ``frames`` frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in _frames(width, height, frames, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_gif(path: Path, width: int = 64, height: int = 48, frames: int = 10, seed: int = 1) -> Path:
    """A real animated GIF of ``frames`` frames."""
    with av.open(str(path), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb8"
        for image in _frames(width, height, frames, seed):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="rgb8")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_video(video_id: str, url: str, *, filename: str | None = None, link: str = "", filetype: str = "mp4",
               width: int = 64, height: int = 48, frames: int | None = 10, trusted: bool = True,
               label: str | None = None) -> Video:
    """A catalogue Video for ``video_id`` (``<n>_<source>_<label>``) with the fields the downloader reads."""
    number, source, default_label = video_id.split("_", 2)
    return Video(
        id=video_id, number=int(number), source=source, label=label or default_label, probe="convex",
        filetype=filetype, url=url, filename=filename or url.rstrip("/").rsplit("/", 1)[-1].split("?")[0],
        version_added="1.0", body_region="lung", patient_id=None, case_no=None, group=video_id, luss=None,
        clinical=(), licence="", link=link, crop_rule=CropRule("square", del_upper=0, width_rate=0.0),
        crop_window=Window(0, 0, min(width, height), min(width, height)), crop_size=(width, height),
        artifacts=frozenset(), masks=MaskPlan(False, None, (), (), False),
        expected=Expected(width, height, 10.0, frames, trusted))
