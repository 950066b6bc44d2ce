"""Lossless PNG encoding of RGB frames: the "Sub" row filter and libdeflate's deflate (the ``deflate`` package).

Why libdeflate: its output is a function of the input and the library's version only (its author's word; it keeps
no state between calls, and its CPU-specific code computes checksums and fills tables with the same values).
ISA-L (``isal``, what formats 4-5 used, 2.2x faster) does not promise that (its issue 140, "Determinstic
compression", is open), and it did not deliver it: in 1 of 14 runs of the crash-and-resume test
(tests/test_builder.py), three frames of one clip had the same filtered rows as the reference build and other
compressed bytes (1-2 bytes shorter). A dataset that is rebuilt must come out the same, byte for byte.
Measured side by side (``benchmarks/bench_png.py``: 105 whole frames of the 7 largest real clips, 1.17 Mpx mean,
one thread): ISA-L level 1 4.1 ms / 409 KB, libdeflate level 1 10.5 ms / 381 KB, level 2 8.9 ms / 334 KB (this
module), the system zlib level 1 15.3 ms / 435 KB. Pillow and OpenCV compress with the system zlib. No PNG library
lets one plug in a deflate, so the file is framed here; the framing is the PNG specification's (signature, IHDR,
one IDAT, IEND, CRC-32 per chunk): 8-bit truecolour or grey, no interlace, filter type 1 ("Sub") on every row.

The bytes depend only on the pixels and the libdeflate version that ``deflate`` bundles (pinned to a range in
pyproject), not on which OpenCV or Pillow is installed, so builds on different machines write the same files.
libdeflate releases the GIL, so frames compress on several threads at once. This module encodes; it must not know
about paths, clips or datasets.
"""

from __future__ import annotations

import struct
import threading
import zlib

import deflate
import numpy as np

#: libdeflate's level 2: faster than its level 1 on ultrasound frames, and 12% smaller (benchmarks/bench_png.py).
LEVEL = 2
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SUB = 1
_scratch = threading.local()  # each thread's filtered-rows buffer, reused while the frame size stays the same


def _rows_buffer(height: int, length: int) -> np.ndarray:
    """A ``(height, length)`` uint8 buffer of this thread's, reused from frame to frame: a fresh one per frame costs
    more in page faults (1.4 ms per 1080x1080 frame) than filtering the rows (0.2 ms)."""
    buffer = getattr(_scratch, "rows", None)
    if buffer is None or buffer.shape != (height, length):
        buffer = _scratch.rows = np.empty((height, length), dtype=np.uint8)
    return buffer


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def sub_filter(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` (uint8, ``(H, W * channels + 1)``) filled with the rows of ``image`` (uint8, ``(H, W, 3)`` or
    ``(H, W)``) as the IDAT stream holds them before deflate: each row's filter type ("Sub"), then its bytes."""
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else 3
    pixels = image.reshape(height, width, channels)  # a view (grey gains an axis); any strides, no copy
    out[:, 0] = _SUB
    rows = out[:, 1:].reshape(height, width, channels)  # splits the contiguous row axis: always a view
    rows[:, 0] = pixels[:, 0]
    np.subtract(pixels[:, 1:], pixels[:, :-1], out=rows[:, 1:])  # Sub: Raw(x) - Raw(x - bpp) mod 256 (uint8 wraps)
    return out


def encode_png(image: np.ndarray, level: int = LEVEL) -> bytes:
    """The PNG file of ``image`` (uint8, ``(H, W, 3)`` RGB or ``(H, W)`` grey), lossless.

    Raises ValueError for another dtype or shape, or an empty image.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"encode_png needs uint8 (H, W, 3) RGB or (H, W) grey, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"encode_png got an empty image {image.shape}")
    channels = 1 if image.ndim == 2 else 3
    filtered = sub_filter(image, _rows_buffer(height, width * channels + 1))
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 0, 0, 0, 0)
    return b"".join((_SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", deflate.zlib_compress(filtered.data, level)), _chunk(b"IEND", b"")))
