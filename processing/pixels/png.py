"""Lossless PNG encoding of RGB frames, fast: the "Sub" row filter and ISA-L's deflate (the ``isal`` package).

Why not Pillow or OpenCV: both compress with the system zlib (1.2.x here). CPU per frame and mean file size, Pillow
level 1 13.0 ms / 206 KB, OpenCV level 2 + Up filter 7.8 ms / 198 KB (35 cropped frames of five real clips, 0.4 Mpx
each). On 105 frames of seven real clips (issue 18): libdeflate level 2 + Up (what this module used) 4.3 ms /
157 KB, ISA-L level 1 + Up 1.7 ms / 191 KB, ISA-L level 1 + Sub 1.7 ms / 187 KB (this module): the frames are the
largest CPU cost of ``covidx-us clean`` after inpainting and the videos, and ISA-L's deflate (hand-written assembly, no
lazy matching) takes 40% of libdeflate's time for files 19% larger. No PNG library lets one plug in either, so the
file is framed here; the framing is the PNG specification's (signature, IHDR, one IDAT, IEND, CRC-32 per chunk):
8-bit truecolour or grey, no interlace, filter type 1 ("Sub") on every row.

The bytes depend only on the pixels and the ISA-L version (``isal`` is pinned to a range in pyproject), not on which
OpenCV or Pillow is installed, so builds on different machines write the same files. ISA-L releases the GIL, so
frames compress on several threads at once. This module encodes; it must not know about paths, clips or datasets.
"""

from __future__ import annotations

import struct
import threading
import zlib

import numpy as np
from isal import isal_zlib

#: ISA-L's level 1 (levels 1 and 2 give the same bytes here; 3 is slower and larger on ultrasound frames).
LEVEL = 1
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
    pixels = image.reshape(height, width, channels)  # a view (grey gains an axis); any strides, no copy
    filtered = _rows_buffer(height, width * channels + 1)  # each row: filter type, then bytes
    filtered[:, 0] = _SUB
    rows = filtered[:, 1:].reshape(height, width, channels)  # splits the contiguous row axis: always a view
    rows[:, 0] = pixels[:, 0]
    np.subtract(pixels[:, 1:], pixels[:, :-1], out=rows[:, 1:])  # Sub: Raw(x) - Raw(x - bpp) mod 256 (uint8 wraps)
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 0, 0, 0, 0)
    return b"".join((_SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", isal_zlib.compress(filtered.data, level)), _chunk(b"IEND", b"")))
