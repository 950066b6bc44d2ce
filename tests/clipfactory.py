"""Tiny real clips for the tests, written with the real encoders: the one clip writer of the suite.

``write_clip`` writes any fixed-rate clip (mp4, mov, avi, wmv, animated GIF, a lossless mp4) with PyAV; ``write_gif``
writes a GIF with a duration per frame, which only Pillow can. The frame makers say what the pixels are for.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

# kind (default: the suffix) -> (codec, container format, pixel format, codec options): one real encoder per container
ENCODERS = {
    "mp4": ("libx264", "mp4", "yuv420p", {}),
    "mov": ("libx264", "mov", "yuv420p", {}),
    "avi": ("mjpeg", "avi", "yuvj420p", {}),
    "xvid.avi": ("mpeg4", "avi", "yuv420p", {}),
    "wmv": ("wmv2", "asf", "yuv420p", {}),
    "gif": ("gif", "gif", "rgb8", {}),
    "lossless.mp4": ("libx264rgb", "mp4", "rgb24", {"qp": "0"}),  # every pixel decodes back exactly
}


def flat_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frames of distinct flat grey levels (0, 20, 40, ...) so decoded order is easy to check after lossy coding."""
    return [np.full((height, width, 3), (20 * i) % 256, np.uint8) for i in range(n)]


def textured_frames(n: int, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Smooth speckle-like frames (a gradient plus noise) with a bright square mark at (4, 4)-(12, 12)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    base = (60 + 40 * np.sin(xx / 5.0) + 30 * np.cos(yy / 7.0))[..., None]
    frames = []
    for i in range(n):
        img = np.clip(base + rng.normal(0, 12, (height, width, 3)) + 2 * i, 0, 255).astype(np.uint8)
        img[4:12, 4:12] = 255
        frames.append(img)
    return frames


def noise_frames(n: int, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    """One random image moved 2 px right per frame: incompressible, so a clip is large enough to cut or resume, and
    each seed gives other bytes."""
    base = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, i * 2, axis=1) for i in range(n)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 10, kind: str | None = None,
               options: dict | None = None) -> Path:
    """Write ``frames`` (RGB uint8) to ``path`` with the encoder for ``kind`` (default: the suffix); ``options`` are
    the container's (e.g. ``movflags``)."""
    codec, fmt, pix_fmt, codec_options = ENCODERS[kind or path.suffix.lstrip(".")]
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = dict(codec_options)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def write_gif(path: Path, frames: list[np.ndarray], durations_ms: list[int]) -> Path:
    """Write an animated GIF with Pillow, one duration per frame (uneven durations allowed)."""
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations_ms, loop=0)
    return path
