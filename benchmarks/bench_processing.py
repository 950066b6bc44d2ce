"""Benchmark the processing core on the real clips: decode, crop, inpaint and encode fps, and peak memory.

Usage: python benchmarks/bench_processing.py [--videos DIR] [--limit N]
Default DIR is ../shared/realdata/videos (skipped with a message when absent). Each stage is timed on its own
over every frame of every clip: decode = iter_frames; crop = a centred window of 80% (copied, as the pipeline
hands it on); inpaint = NS, radius 3, on a release-like overlay mask (corner text + depth scale + dot, dilated
5x5), regional (regions found once per mask) vs whole-frame cv2.inpaint; encode = the lossless video writer
(MagicYUV, one slice, as builds run it); png = processing.pixels.png.encode_png of the clean frame (in memory). Peak memory:
process_clip on the largest clip in a child process (ru_maxrss) and tracemalloc's peak of Python/numpy allocations.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processing.pixels.clips import VIDEO_SUFFIX, VideoWriter, iter_frames, probe_clip  # noqa: E402
from processing.pixels.crop import crop  # noqa: E402
from processing.pixels.inpaint import inpaint, margin, regions  # noqa: E402
from processing.pixels.masks import dilate  # noqa: E402
from processing.pixels.png import encode_png  # noqa: E402
from processing.windows import Window  # noqa: E402

DEFAULT_VIDEOS = ROOT.parent / "shared" / "realdata" / "videos"


def centred_window(width: int, height: int) -> Window:
    w, h = max(1, int(width * 0.8)), max(1, int(height * 0.8))
    return Window((width - w) // 2, (height - h) // 2, w, h)


def overlay_mask(width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[: max(2, height // 25), : max(4, width // 5)] = 1  # text top-left
    mask[height // 6: height - height // 6, width - max(2, width // 60):] = 1  # depth scale
    cv2.circle(mask, (width // 2, max(3, height // 20)), max(2, width // 80), 1, -1)  # orientation dot
    return dilate(mask.astype(bool))


def bench_clip(path: Path) -> dict:
    info = probe_clip(path)
    window = centred_window(info.width, info.height)
    mask = overlay_mask(window.w, window.h)
    mask8 = mask.astype(np.uint8) * 255
    boxes = regions(mask, margin())  # found once per mask, as process_clip does
    t = {"decode": 0.0, "crop": 0.0, "inpaint": 0.0, "inpaint_whole": 0.0, "encode": 0.0, "png": 0.0}
    n = 0
    with tempfile.TemporaryDirectory() as tmp, VideoWriter(Path(tmp) / f"o{VIDEO_SUFFIX}", window.w, window.h, info.fps) as out:
        clock = time.perf_counter()
        for frame in iter_frames(path):
            t0 = time.perf_counter()
            t["decode"] += t0 - clock
            image = np.ascontiguousarray(crop(frame.image, window))
            t1 = time.perf_counter()
            clean = inpaint(image, mask, "ns", boxes=boxes)
            t2 = time.perf_counter()
            cv2.inpaint(image, mask8, 3, cv2.INPAINT_NS)  # the whole-frame reference
            t3 = time.perf_counter()
            out.write(clean, frame.timestamp)
            t4 = time.perf_counter()
            encode_png(clean)
            t5 = time.perf_counter()
            t["crop"] += t1 - t0
            t["inpaint"] += t2 - t1
            t["inpaint_whole"] += t3 - t2
            t["encode"] += t4 - t3
            t["png"] += t5 - t4
            n += 1
            clock = time.perf_counter()
    return {"clip": path.name, "size": f"{info.width}x{info.height}", "frames": n, "mask_px": int(mask.sum()),
            **{f"{k}_fps": round(n / v, 1) if v else None for k, v in t.items()}}


_CHILD = """
import json, resource, sys, tempfile, time, tracemalloc
from pathlib import Path
sys.path.insert(0, {root!r})
import numpy as np
from PIL import Image
from processing.pixels.pipeline import ClipPlan, ProcessingOptions, process_clip
from processing.windows import Window
sys.path.insert(0, {bench!r})
from bench_processing import centred_window, overlay_mask
from processing.pixels.clips import probe_clip
def hwm_mb():  # this process's own peak RSS (VmHWM): ru_maxrss may carry the parent's RSS over fork + exec
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None
path = Path({clip!r})
info = probe_clip(path)
window = centred_window(info.width, info.height)
with tempfile.TemporaryDirectory() as tmp:
    Image.fromarray(overlay_mask(window.w, window.h).astype(np.uint8) * 255).save(Path(tmp) / "m.png")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_before = hwm_mb()
    tracemalloc.start()
    start = time.perf_counter()
    record = process_clip(path, ClipPlan("bench", "convex", window, Path(tmp) / "m.png"), Path(tmp) / "out",
                          ProcessingOptions(write_cropped=False))  # as a build runs it
    wall = time.perf_counter() - start
    _cur, peak = tracemalloc.get_traced_memory()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_after = hwm_mb()
print(json.dumps({{"clip": path.name, "frames": record.frames_read, "wall_s": round(wall, 2),
                  "fps": round(record.frames_read / wall, 1), "maxrss_mb": round(after / 1024, 1),
                  "maxrss_before_mb": round(before / 1024, 1), "vmhwm_mb": hwm_after, "vmhwm_before_mb": hwm_before, "tracemalloc_peak_mb": round(peak / 2**20, 1),
                  "one_frame_mb": round(info.width * info.height * 3 / 2**20, 2),
                  "timings": {{k: round(v, 2) for k, v in record.timings.items()}}}}))
"""


def peak_memory(clip: Path) -> dict:
    code = _CHILD.format(root=str(ROOT), bench=str(Path(__file__).parent), clip=str(clip))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--limit", type=int, default=None, help="benchmark only the first N clips")
    args = parser.parse_args()
    if not args.videos.is_dir():
        print(f"skipped: {args.videos} is absent")
        return 0
    clips = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in (".mp4", ".gif", ".avi", ".mov", ".wmv"))
    clips = clips[: args.limit] if args.limit else clips
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"cv2 {cv2.__version__}, threads {cv2.getNumThreads()}")
    rows = [bench_clip(p) for p in clips]
    header = ["clip", "size", "frames", "mask_px", "decode_fps", "crop_fps", "inpaint_fps", "inpaint_whole_fps",
              "encode_fps", "png_fps"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in header) + " |")
    frames = sum(r["frames"] for r in rows)
    for stage in ("decode", "crop", "inpaint", "inpaint_whole", "encode", "png"):
        seconds = sum(r["frames"] / r[f"{stage}_fps"] for r in rows if r[f"{stage}_fps"])
        print(f"total {stage}: {frames} frames in {seconds:.2f} s = {frames / seconds:.1f} fps")
    largest = max(clips, key=lambda p: (lambda i: i.width * i.height * i.frame_count)(probe_clip(p)))
    print("peak memory:", json.dumps(peak_memory(largest)))
    print("ru_maxrss of this process (MB):", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
