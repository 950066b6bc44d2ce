"""Benchmark a whole build and the processing against an upstream-style baseline (issue 9).

Usage: python benchmarks/bench_build.py [--videos DIR] [--limit N] [--scale S] [--skip-demo] [--skip-real]

1. Demo build: the simulated release (processing.simrelease, ``--scale``) served by a LoopbackSite, every config
   built and exported by ``processing.build_cli.build`` from fresh caches, with 1 and then 2 worker processes
   (end-to-end wall time each, and the speed-up), then once more on the warm cache (the incremental rebuild).
2. Real clips (``../shared/realdata/videos``; skipped when absent), each clip with a centred 80% window and a
   release-like overlay mask (benchmarks/bench_processing.py):
   - floor: decode + crop + one lossless encode of the cropped frames (what any pipeline must do);
   - ours: ``process_clip`` as a build runs it (clean lossless video, NS inpainting of the mask's regions, PNG
     frames; no cropped video);
   - upstream-style baseline, as NOTES-upstream.md describes the release's scripts: OpenCV decode, crop, every
     cropped frame written as JPEG; each JPEG read back, padded by 5 px, mask dilated, the *whole* frame inpainted
     with Telea (radius 3), written as JPEG again; the clean video re-encoded from those JPEGs (mp4v, 15 fps).
   fps = source frames / wall seconds, per clip and in total; all three run in this process, one after the other.
3. Peak memory: ``process_clip`` on the largest clip in a child process (ru_maxrss; bench_processing.peak_memory).
4. Process pool on real work: the first 12 real clips (``--limit``) processed as a build does, in this process vs
   in 2 spawn workers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from bench_processing import DEFAULT_VIDEOS, centred_window, overlay_mask, peak_memory  # noqa: E402

from processing.clips import VideoWriter, iter_frames, probe_clip  # noqa: E402
from processing.crop import crop  # noqa: E402

CLIP_SUFFIXES = (".mp4", ".gif", ".avi", ".mov", ".wmv")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"nproc {os.cpu_count()}, {model}, Python {platform.python_version()}, OpenCV {cv2.__version__}")


# ---- 1. demo build


def demo_build(scale: float, work: Path) -> dict:
    from covidx_us import CONFIG_NAMES
    from processing.build_cli import build
    from processing.catalogue import load_catalogue
    from processing.simrelease import write_simulated_release
    from processing.testsite import LoopbackSite

    sim = write_simulated_release(work / "sim", scale=scale)
    catalogue = load_catalogue("1.5", sim.release_dir, custom=True)
    frames = sum(probe_clip(p).frame_count for p in sim.clips.values())
    out: dict = {"videos": len(catalogue.videos), "source_frames": frames, "configs": len(CONFIG_NAMES)}
    with LoopbackSite.from_videos(catalogue.videos, clips=sim.clips) as site:
        base = {"release_dir": str(sim.release_dir), "custom_release": True, "mirrors": (site.prefix,),
                "use_original": False, "download_delay": 0}
        for label, num_proc, cache in (("cold_1proc", 1, "c1"), ("cold_2proc", 2, "c2"), ("warm_2proc", 2, "c2")):
            start = time.perf_counter()
            build(CONFIG_NAMES, {**base, "work_dir": str(work / cache), "num_proc": num_proc}, work / f"out-{label}")
            out[f"{label}_s"] = round(time.perf_counter() - start, 2)
    out["speedup_2proc"] = round(out["cold_1proc_s"] / out["cold_2proc_s"], 2)
    return out


# ---- 2. real clips: floor, ours, upstream-style baseline


def floor(path: Path, window, tmp: Path) -> None:
    info = probe_clip(path)
    with VideoWriter(tmp / "floor.mp4", window.w, window.h, info.fps) as writer:
        for frame in iter_frames(path):
            writer.write(np.ascontiguousarray(crop(frame.image, window)), frame.timestamp)


def ours(path: Path, window, mask_file: Path, tmp: Path) -> None:
    from processing.pipeline import ClipPlan, ProcessingOptions, process_clip

    # What a build writes (covidx_us): the clean video and the PNG frames (no cropped video).
    process_clip(path, ClipPlan("bench", "convex", window, mask_file), tmp / "ours",
                 ProcessingOptions(write_cropped=False))


def upstream_style(path: Path, window, mask: np.ndarray, tmp: Path) -> None:
    """The release's scripts as NOTES-upstream.md describes them, stage by stage through files.

    Decode (OpenCV) -> every original frame as JPEG + the cropped video (XVID .avi, 20 fps); decode the cropped
    video -> every cropped frame as JPEG; read each back, pad 5 px, dilate the mask once (5x5), inpaint the whole
    padded frame with Telea (radius 3) -> clean JPEG; re-encode the clean JPEGs as the clean video (15 fps).
    """
    for folder in ("up_original", "up_cropped", "up_clean"):
        (tmp / folder).mkdir(exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*"XVID")
    rows, cols = window.slices()
    capture = cv2.VideoCapture(str(path))
    cropped_video = cv2.VideoWriter(str(tmp / "up_cropped.avi"), fourcc, 20, (window.w, window.h))
    n = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.imwrite(str(tmp / "up_original" / f"frame{n}.jpg"), frame)
        cropped_video.write(np.ascontiguousarray(frame[rows, cols]))
        n += 1
    capture.release()
    cropped_video.release()
    capture = cv2.VideoCapture(str(tmp / "up_cropped.avi"))
    names = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        names.append(f"frame{len(names)}.jpg")
        cv2.imwrite(str(tmp / "up_cropped" / names[-1]), frame)
    capture.release()
    pad = 5
    mask8 = None
    for name in names:
        image = cv2.imread(str(tmp / "up_cropped" / name))
        if mask8 is None:  # XVID truncated odd sizes to even, as upstream's masks were (NOTES-upstream.md)
            height, width = image.shape[:2]
            mask8 = cv2.dilate(cv2.copyMakeBorder(mask[:height, :width].astype(np.uint8) * 255, pad, pad, pad, pad,
                                                  cv2.BORDER_CONSTANT, 0), np.ones((5, 5), np.uint8), iterations=1)
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        clean = cv2.inpaint(padded, mask8, 3, cv2.INPAINT_TELEA)[pad:-pad, pad:-pad]
        cv2.imwrite(str(tmp / "up_clean" / name), clean)
    height, width = mask8.shape[0] - 2 * pad, mask8.shape[1] - 2 * pad
    writer = cv2.VideoWriter(str(tmp / "up_clean.avi"), fourcc, 15, (width, height))
    for name in names:
        writer.write(cv2.imread(str(tmp / "up_clean" / name)))
    writer.release()


def real_clips(videos: Path, limit: int | None) -> dict:
    from PIL import Image

    clips = sorted(p for p in videos.iterdir() if p.suffix.lower() in CLIP_SUFFIXES)[: limit or None]
    rows, totals = [], {"frames": 0, "floor": 0.0, "ours": 0.0, "upstream": 0.0}
    for path in clips:
        info = probe_clip(path)
        window = centred_window(info.width, info.height)
        mask = overlay_mask(window.w, window.h)
        row = {"clip": path.name, "size": f"{info.width}x{info.height}", "frames": info.frame_count}
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            mask_file = tmp / "mask.png"
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_file)
            for stage, run, stage_args in (("floor", floor, (path, window, tmp)),
                                           ("ours", ours, (path, window, mask_file, tmp)),
                                           ("upstream", upstream_style, (path, window, mask, tmp))):
                start = time.perf_counter()
                run(*stage_args)
                seconds = time.perf_counter() - start
                totals[stage] += seconds
                row[f"{stage}_fps"] = round(info.frame_count / seconds, 1)
        totals["frames"] += info.frame_count
        rows.append(row)
        print(json.dumps(row), flush=True)
    n = totals["frames"]
    summary = {"clips": len(rows), "frames": n, **{f"{k}_fps": round(n / totals[k], 1) for k in
                                                    ("floor", "ours", "upstream")}}
    summary["ours_vs_upstream"] = round(summary["ours_fps"] / summary["upstream_fps"], 2)
    summary["floor_vs_ours"] = round(summary["floor_fps"] / summary["ours_fps"], 2)
    largest = max(clips, key=lambda p: (lambda i: i.width * i.height * i.frame_count)(probe_clip(p)))
    return {"rows": rows, "summary": summary, "peak_memory": peak_memory(largest)}


def _ours_job(args: tuple[Path, Path]) -> int:
    """One real clip processed as a build does, for the process-pool measurement (module-level: picklable)."""
    from PIL import Image

    path, out = args
    info = probe_clip(path)
    window = centred_window(info.width, info.height)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay_mask(window.w, window.h).astype(np.uint8) * 255).save(out / "mask.png")
    ours(path, window, out / "mask.png", out)
    return info.frame_count


def parallel_real(videos: Path, limit: int) -> dict:
    """Wall time of the first ``limit`` real clips processed in this process vs in 2 spawn workers (as builds do)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from processing.processed import init_worker

    clips = sorted(p for p in videos.iterdir() if p.suffix.lower() in CLIP_SUFFIXES)[:limit]
    out: dict = {"clips": len(clips)}
    for label in ("serial", "2proc"):
        with tempfile.TemporaryDirectory() as name:
            jobs = [(clip, Path(name) / str(n)) for n, clip in enumerate(clips)]
            start = time.perf_counter()
            if label == "serial":
                frames = sum(map(_ours_job, jobs))
            else:
                with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                                         initargs=(os.getpid(),)) as pool:
                    frames = sum(pool.map(_ours_job, jobs))
            out[f"{label}_s"] = round(time.perf_counter() - start, 2)
            out["frames"] = frames
    out["speedup_2proc"] = round(out["serial_s"] / out["2proc_s"], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--limit", type=int, default=None, help="only the first N real clips")
    parser.add_argument("--scale", type=float, default=1.0, help="simulated release frame-size scale (default 1)")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("COVIDX_US_PROGRESS", "0")
    print("machine:", machine())
    if not args.skip_demo:
        with tempfile.TemporaryDirectory() as work:
            print("demo build:", json.dumps(demo_build(args.scale, Path(work))), flush=True)
    if not args.skip_real:
        if not args.videos.is_dir():
            print(f"real clips: skipped, {args.videos} is absent")
        else:
            result = real_clips(args.videos, args.limit)
            print("real clips:", json.dumps(result["summary"]))
            print("peak memory:", json.dumps(result["peak_memory"]))
            print("real clips, 1 vs 2 processes:", json.dumps(parallel_real(args.videos, args.limit or 12)),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
