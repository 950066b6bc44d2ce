"""processing.pixels.png: the PNG files decode, in every common reader, to exactly the pixels written."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from processing.pixels.clips import iter_frames
from processing.pixels.png import encode_png


def _pillow(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.verify()  # chunk CRCs and structure
    return np.asarray(Image.open(io.BytesIO(data)))


def _opencv(data: bytes) -> np.ndarray:
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return out[:, :, ::-1] if out.ndim == 3 else out


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7, 3), (9, 1, 3), (37, 53, 3), (120, 161, 3), (31, 17)])
def test_random_images_decode_to_the_same_pixels_in_pillow_and_opencv(shape) -> None:
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(image)
    assert np.array_equal(_pillow(data), image)
    assert np.array_equal(_opencv(data), image)
    assert Image.open(io.BytesIO(data)).mode == ("RGB" if len(shape) == 3 else "L")


def test_sub_filter_pixels_that_wrap_below_zero_and_a_non_contiguous_view() -> None:
    image = np.zeros((6, 10, 3), np.uint8)
    image[:, ::2] = 255  # every Sub difference is +-255: wraps modulo 256 both ways
    view = np.arange(6 * 20 * 3, dtype=np.uint32).astype(np.uint8).reshape(6, 20, 3)[:, ::2]  # strided
    for array in (image, view):
        assert np.array_equal(_pillow(encode_png(array)), array)


def test_the_stream_holds_sub_filtered_rows_and_the_header_the_size() -> None:
    image = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 7 % 256).astype(np.uint8)
    data = encode_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR" and int.from_bytes(data[16:20], "big") == 5 and int.from_bytes(data[20:24], "big") == 4
    idat = data.index(b"IDAT")
    raw = zlib.decompress(data[idat + 4: idat + 4 + int.from_bytes(data[idat - 4: idat], "big")])
    rows = np.frombuffer(raw, np.uint8).reshape(4, 16)
    assert list(rows[:, 0]) == [1, 1, 1, 1]  # Sub on every row
    assert np.array_equal(rows[:, 1:4], image[:, 0])  # the first pixel of a row is kept as it is
    assert np.array_equal(rows[:, 4:], np.full((4, 12), 21, np.uint8))  # each pixel is its left neighbour + 3 * 7
    assert data.endswith(b"IEND\xaeB`\x82")


def test_the_same_pixels_give_the_same_bytes_whatever_their_memory_layout() -> None:
    image = np.random.default_rng(3).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    bigger = np.zeros((80, 90, 3), np.uint8)
    bigger[::2, ::3] = image
    strided = bigger[::2, ::3]  # the same pixels, not contiguous
    assert not strided.flags.c_contiguous and np.array_equal(strided, image)
    assert encode_png(image) == encode_png(strided) == encode_png(np.asfortranarray(image))


def test_frames_of_several_sizes_encoded_on_several_threads_each_decode_to_their_own_pixels() -> None:
    # each thread reuses its own filtered-rows buffer: sizes change and threads interleave
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(9)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(30, 40, 3), (31, 40, 3), (30, 40)] * 8]
    with ThreadPoolExecutor(max_workers=3) as pool:
        files = list(pool.map(encode_png, images))
    for data, image in zip(files, images, strict=True):
        assert np.array_equal(_pillow(data), image)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint16), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((0, 4, 3), np.uint8), np.zeros(5, np.uint8)])
def test_other_arrays_are_refused_naming_the_shape(bad) -> None:
    with pytest.raises(ValueError, match=r"encode_png"):
        encode_png(bad)


def test_real_frames_round_trip_no_larger_than_opencv_level_2s(realdata: Path) -> None:
    # libdeflate level 2 after the Sub filter (processing/pixels/png.py): 8% smaller than OpenCV's level 2 here
    clip = realdata / "videos" / "grepmed__Cov-grep-7431.mp4"
    ours = theirs = 0
    for frame in iter_frames(clip):
        if frame.index % 20:
            continue
        data = encode_png(frame.image)
        assert np.array_equal(_pillow(data), frame.image)
        ours += len(data)
        theirs += len(cv2.imencode(".png", frame.image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 2])[1])
    assert 0 < ours <= theirs


def test_the_bytes_of_a_fixed_image_are_pinned() -> None:
    # A deflate (libdeflate) release that changes them changes every processed frame: bump
    # covidx_us.PROCESSING_FORMAT with the pin in pyproject, then these digests.
    rng = np.random.default_rng(11)
    image = np.clip(rng.normal(90, 40, (48, 64, 3)), 0, 255).astype(np.uint8)
    image[10:20, 5:40] = 255
    assert hashlib.sha256(encode_png(image)).hexdigest() == \
        "4b66df093752353fa9c1f21a3df79dd9e49fb8cd24a23f71f41080a077f1fad2"
    assert hashlib.sha256(encode_png(image[:, :, 0])).hexdigest() == \
        "b17d8fa3833ab608b98039476204d02375aab67bf3c859c3e3882da2f2d24603"


_ENCODE_IN_A_CHILD = '''
import hashlib, sys
from concurrent.futures import ThreadPoolExecutor
from processing.pixels.clips import iter_frames
from processing.pixels.png import encode_png
frames = [f.image for f in iter_frames(sys.argv[1]) if f.index % 7 == 0]
with ThreadPoolExecutor(4) as pool:
    print(" ".join(hashlib.sha256(data).hexdigest() for data in pool.map(encode_png, frames)))
'''


def test_real_frames_give_the_same_bytes_in_two_processes_on_four_threads(realdata: Path) -> None:
    # what a build that is killed and resumed relies on: a frame written again is the same file
    clip = realdata / "videos" / "twitter_taotepocus__1364981565542047744.mp4"
    runs = [subprocess.run([sys.executable, "-c", _ENCODE_IN_A_CHILD, str(clip)], check=True, capture_output=True,
                           text=True, cwd=Path(__file__).resolve().parents[1]).stdout.split() for _ in range(2)]
    assert len(runs[0]) >= 20 and runs[0] == runs[1]
