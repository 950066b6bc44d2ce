"""Benchmark the PNG frame encoders side by side on real clips: time per frame, file size, and whether the bytes
repeat when the same frames are encoded again in fresh processes, on several threads at once (as builds do).

Usage: python benchmarks/bench_png.py [--videos DIR] [--clips N] [--frames N] [--rounds N]
Default DIR is ../shared/realdata/videos (skipped with a message when absent). From each of the N largest clips,
N frames evenly spaced are taken as the pipeline writes them (the whole frame, RGB). Every encoder filters the rows
with "Sub" (as processing/pixels/png.py does) and differs only in its deflate: ISA-L level 1 (``isal``, what
builds used in formats 4-5), libdeflate levels 1 and 2 (``deflate``), the system zlib level 1. Time is the median
of three passes, one thread. Repeats: each round runs every encoder on every frame in a fresh process on four
threads and hashes each output; a round whose bytes differ from round 1 counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processing.pixels import png  # noqa: E402
from processing.pixels.clips import iter_frames, probe_clip  # noqa: E402

DEFAULT_VIDEOS = ROOT.parent / "shared" / "realdata" / "videos"


def _isal(data: memoryview) -> bytes:
    from isal import isal_zlib

    return isal_zlib.compress(data, 1)


def _libdeflate(level: int):
    def compress(data: memoryview) -> bytes:
        import deflate

        return deflate.zlib_compress(data, level)
    return compress


ENCODERS = {"isal-1": _isal, "libdeflate-1": _libdeflate(1), "libdeflate-2": _libdeflate(2),
            "zlib-1": lambda data: zlib.compress(data, 1)}
try:
    import isal  # noqa: F401  (not a dependency since format 6: install it to compare)
except ImportError:
    del ENCODERS["isal-1"]


def filtered_rows(image: np.ndarray) -> memoryview:
    """The Sub-filtered rows png.py hands to deflate (png.sub_filter, on a fresh buffer: all frames are kept)."""
    height, width = image.shape[:2]
    return png.sub_filter(image, np.empty((height, width * 3 + 1), np.uint8)).data


def load_frames(videos: Path, clips: int, per_clip: int) -> list[np.ndarray]:
    paths = sorted(videos.iterdir(), key=lambda p: -(lambda i: i.width * i.height)(probe_clip(p)))[:clips]
    frames = []
    for path in paths:
        all_frames = [f.image for f in iter_frames(path)]
        for k in np.linspace(0, len(all_frames) - 1, per_clip).astype(int):
            frames.append(np.ascontiguousarray(all_frames[k]))
    return frames


def hashes(frames: list[np.ndarray]) -> dict[str, list[str]]:
    rows = [filtered_rows(f) for f in frames]
    out = {}
    with ThreadPoolExecutor(4) as pool:
        for name, encode in ENCODERS.items():
            out[name] = [hashlib.sha1(b).hexdigest() for b in pool.map(encode, rows)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--clips", type=int, default=7)
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hash-only", action="store_true", help=argparse.SUPPRESS)  # one round, in a child
    args = parser.parse_args()
    if not args.videos.is_dir():
        print(f"skipped: {args.videos} not found")
        return
    frames = load_frames(args.videos, args.clips, args.frames)
    if args.hash_only:
        print(json.dumps(hashes(frames)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"{len(frames)} frames of {args.clips} clips, {np.mean([f.shape[0] * f.shape[1] for f in frames]) / 1e6:.2f} "
          f"Mpx mean")
    rows = [filtered_rows(f) for f in frames]
    for name, encode in ENCODERS.items():
        passes = []
        for _ in range(3):
            clock = time.perf_counter()
            sizes = [len(encode(r)) for r in rows]
            passes.append(time.perf_counter() - clock)
        print(f"{name:14s} {1000 * float(np.median(passes)) / len(rows):6.2f} ms/frame  "
              f"{np.mean(sizes) / 1024:7.1f} KB mean")
    command = [sys.executable, __file__, "--videos", str(args.videos), "--clips", str(args.clips),
               "--frames", str(args.frames), "--hash-only"]
    rounds = [json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
              for _ in range(args.rounds)]
    for name in ENCODERS:
        changed = sum(any(r[name][i] != rounds[0][name][i] for i in range(len(frames))) for r in rounds[1:])
        frames_changed = sum(len({r[name][i] for r in rounds}) > 1 for i in range(len(frames)))
        print(f"{name:14s} rounds whose bytes differ from round 1: {changed} of {args.rounds - 1}; "
              f"frames with more than one encoding: {frames_changed}")
    print(f"processing/pixels/png.py uses libdeflate level {png.LEVEL}")


if __name__ == "__main__":
    main()
