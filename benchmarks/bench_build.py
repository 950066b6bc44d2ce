"""Benchmark a whole build and the processing against an upstream-style baseline (issue 9).

Usage: python benchmarks/bench_build.py [--videos DIR] [--limit N] [--scale S] [--skip-demo] [--skip-real]

1. Demo build: the simulated release (processing.demo.simrelease, ``--scale``) served by a LoopbackSite, every config
   built and exported by ``processing.cli.build.build`` from fresh caches, with 1 and then 2 worker processes
   (end-to-end wall time each, and the speed-up), then once more on the warm cache (the incremental rebuild).
2. Real clips (``../shared/realdata/videos``; skipped when absent), each clip with a centred 80% window and a
   release-like overlay mask (benchmarks/bench_processing.py):
   - floor: header + one decode + crop + one lossless encode of the cropped frames (what any pipeline must do);
   - ours: what a build runs per clip (processing.build.processed.run_job): ``clip_for_plan`` (the header: no decode),
     then ``process_clip``, which decodes the clip once (clean lossless video, NS inpainting of the mask's
     regions, PNG frames, copy of the original; no cropped video);
   - upstream-style baseline: the release's notebook for one clip (see :func:`upstream_style`): OpenCV decode,
     crop, the whole clip in memory, cropped XVID video; the original and the cropped video decoded again to
     JPEG frames; the cropped JPEGs read back, zero-padded by 5 px, the *whole* frame inpainted with Telea (radius
     3) with the JPEG mask dilated once, clean JPEGs and a clean DIVX video (15 fps).
   fps = source frames / wall seconds, per clip and in total; all three run in this process, one after the other.
   CPU ms per frame (this process's user + system time, all threads) is printed too: steadier on a loaded machine.
3. Peak memory: ``process_clip`` on the largest clip in a child process (its VmHWM; bench_processing.peak_memory).
4. Process pool on real work: the first 12 real clips (``--limit``) processed as a build does, in this process vs
   in 2 spawn workers.
"""

from __future__ import annotations

import argparse
import contextlib
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

from processing.pixels.clips import (  # noqa: E402
    VIDEO_SUFFIX,
    VideoWriter,
    forget_probes,
    iter_frames,
    probe_clip,
    probe_header,
)
from processing.pixels.crop import crop  # noqa: E402

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
    from processing.cli.build import build
    from processing.demo.simrelease import write_simulated_release
    from processing.demo.testsite import LoopbackSite
    from processing.release.catalogue import load_catalogue

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


def floor(path: Path, window, tmp: Path, png: bool = True, video: bool = True, video_threads: int = 0) -> None:
    """Decode + encode alone: the header (no decode), one decode, the crop, and the encodes a build writes, with
    the same encoders and nothing else (no mask, no inpainting, no bookkeeping): every frame as PNG
    (``processing.pixels.png``, compressed on ``WORKERS`` threads as ours does) and/or the lossless video of every
    frame (``VideoWriter``: H.264 until processing format 4, MagicYUV since) on its automatic thread and slice count
    (fastest alone; ours fixes one for machine-independent bytes).
    ``png=False, video=True`` is the one-encode floor this benchmark used before 2026-11-27."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from processing.pixels.pipeline import WORKERS
    from processing.pixels.png import encode_png

    def save(image: np.ndarray, name: Path) -> None:
        name.write_bytes(encode_png(image))

    info = probe_header(path)
    (tmp / "floor").mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(WORKERS))
        writer = stack.enter_context(VideoWriter(tmp / f"floor{VIDEO_SUFFIX}", window.w, window.h, info.fps,
                                                 threads=video_threads)) if video else None
        pending: deque = deque()
        for frame in iter_frames(path):
            image = crop(frame.image, window)
            if png:
                pending.append(pool.submit(save, image, tmp / "floor" / f"{frame.index}.png"))
                while len(pending) >= 2 * WORKERS + 2:
                    pending.popleft().result()
            if writer is not None:
                writer.write(image, frame.timestamp)
        for future in pending:
            future.result()


def ours(path: Path, window, mask_file: Path, tmp: Path, video: bool = True) -> dict:
    """What a build runs per clip (processing.build.processed.run_job): what planning needs (the header, no decode, as
    no max_frames is set; its size gives the crop), then process_clip, which decodes the clip once and writes the
    PNG frames (NS inpainting of the mask's regions), and with ``video`` the clean lossless video and a copy of
    the original (a ``videos-*`` build; a ``frames-*`` build writes no video). Returns the record's timings."""
    from processing.pixels.pipeline import ClipPlan, ProcessingOptions, clip_for_plan, process_clip

    forget_probes()
    options = ProcessingOptions(write_cropped=False, write_videos=video)
    clip_for_plan(path, options)
    record = process_clip(path, ClipPlan("bench", "convex", window, mask_file), tmp / f"ours-{video}", options)
    return dict(record.timings)


def _zero_pad(array: np.ndarray, pad: int = 5) -> np.ndarray:
    """Upstream's zero_pad_array: a black border of ``pad`` pixels."""
    out = np.zeros((array.shape[0] + 2 * pad, array.shape[1] + 2 * pad, *array.shape[2:]), dtype=np.uint8)
    out[pad:pad + array.shape[0], pad:pad + array.shape[1]] = array
    return out


def upstream_style(path: Path, window, mask: np.ndarray, tmp: Path) -> None:
    """The release's notebook (create_COVIDxUS.ipynb, image_data.extract_images) for one clip, cell by cell, as
    NOTES-upstream.md summarises it; every stage goes through files and re-decodes the previous one's output:

    1. crop: OpenCV decode of the original, every frame cropped and kept in memory (the whole clip), then the
       cropped video written as XVID .avi at a fixed 20 fps (OpenCV truncates odd sizes to even);
    2. data/image/original: the original decoded again, every frame written as JPEG;
    3. data/image/cropped: the cropped .avi decoded, every frame written as JPEG;
    4. clean: every cropped JPEG read back (all held in memory), the mask read from its JPEG (not thresholded),
       zero-padded by 5 px and dilated 5x5 once per clip; every frame zero-padded, the *whole* padded frame
       inpainted with Telea (radius 3), unpadded and written as JPEG; the clean video (DIVX .avi, 15 fps) written
       from the inpainted frames in memory.
    Not included: downloads, the deleted-frame removal (no frame is deleted here), the notebook's os.listdir scans
    of the shared image folders (they grow with the whole release, not with one clip).
    """
    for folder in ("up_original", "up_cropped", "up_clean"):
        (tmp / folder).mkdir(exist_ok=True)
    rows, cols = window.slices()
    # 1. crop (the whole clip in memory, as upstream's vid_arr)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.asarray(frame[rows, cols]).astype(np.uint8))
    capture.release()
    clip = np.asarray(frames)
    del frames
    cropped_video = cv2.VideoWriter(str(tmp / "up_cropped.avi"), cv2.VideoWriter_fourcc(*"XVID"), 20.0,
                                    (clip.shape[2], clip.shape[1]))
    for frame in clip:
        cropped_video.write(frame.astype("uint8"))
    cropped_video.release()
    del clip
    # 2. and 3. frames of the original and of the cropped video as JPEG
    for source, folder in ((path, "up_original"), (tmp / "up_cropped.avi", "up_cropped")):
        capture = cv2.VideoCapture(str(source))
        while capture.isOpened():
            number = int(capture.get(1))
            ok, frame = capture.read()
            if not ok:
                break
            cv2.imwrite(str(tmp / folder / f"bench_convex_frame{number}.jpg"), frame)
        capture.release()
    # 4. inpainting: cropped JPEGs read back; the mask from a JPEG, as the release's masks are
    images = {int(name.stem.rsplit("frame", 1)[1]): cv2.imread(str(name)) for name in (tmp / "up_cropped").iterdir()}
    height, width = next(iter(images.values())).shape[:2]  # XVID's even-truncated size, as upstream's masks
    cv2.imwrite(str(tmp / "up_mask.jpg"), mask[:height, :width].astype(np.uint8) * 255)
    mask8 = cv2.imread(str(tmp / "up_mask.jpg"))[:, :, 0]
    dilated = cv2.dilate(_zero_pad(mask8), np.ones((5, 5), np.uint8), iterations=1)
    clean = {key: cv2.inpaint(_zero_pad(image), dilated, 3, cv2.INPAINT_TELEA)[5:-5, 5:-5, :]
             for key, image in images.items()}
    for key, image in clean.items():
        cv2.imwrite(str(tmp / "up_clean" / f"bench_convex_clean_frame{key}.jpg"), image)
    writer = cv2.VideoWriter(str(tmp / "up_clean.avi"), cv2.VideoWriter_fourcc(*"DIVX"), 15, (width, height))
    for key in sorted(clean):
        writer.write(clean[key])
    writer.release()


#: The runs per clip, in this order: (label, function, keyword arguments). Each ours_* has its floor_* (the same
#: encodes, nothing else); floor_x264 is the one-encode floor used until 2026-11-27 (one video, named when it was
#: x264's), kept for comparison.
RUNS = (
    ("floor_frames", "floor", {"png": True, "video": False}),
    ("ours_frames", "ours", {"video": False}),
    ("floor_videos", "floor", {"png": True, "video": True}),
    ("ours_videos", "ours", {"video": True}),
    ("floor_x264", "floor", {"png": False, "video": True}),
    ("upstream", "upstream", {}),
)


def real_clips(videos: Path, limit: int | None) -> dict:
    from PIL import Image

    clips = sorted(p for p in videos.iterdir() if p.suffix.lower() in CLIP_SUFFIXES)[: limit or None]
    labels = [label for label, _f, _k in RUNS]
    rows, wall, cpu = [], dict.fromkeys(labels, 0.0), dict.fromkeys(labels, 0.0)
    stages: dict[str, float] = {}
    n = 0
    for path in clips:
        info = probe_clip(path)
        window = centred_window(info.width, info.height)
        mask = overlay_mask(window.w, window.h)
        row = {"clip": path.name, "size": f"{info.width}x{info.height}", "frames": info.frame_count}
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            mask_file = tmp / "mask.png"
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_file)
            for label, kind, kwargs in RUNS:
                start, cpu_start = time.perf_counter(), time.process_time()
                if kind == "floor":
                    floor(path, window, tmp, **kwargs)
                elif kind == "ours":
                    timings = ours(path, window, mask_file, tmp, **kwargs)
                    if label == "ours_videos":
                        for stage, seconds in timings.items():
                            stages[stage] = stages.get(stage, 0.0) + seconds
                else:
                    upstream_style(path, window, mask, tmp)
                seconds = time.perf_counter() - start
                cpu[label] += time.process_time() - cpu_start
                wall[label] += seconds
                row[f"{label}_fps"] = round(info.frame_count / seconds, 1)
        n += info.frame_count
        rows.append(row)
        print(json.dumps(row), flush=True)
    fps = {label: n / wall[label] for label in labels}
    summary: dict = {"clips": len(rows), "frames": n, **{f"{k}_fps": round(v, 1) for k, v in fps.items()}}
    summary.update({f"{k}_cpu_ms_per_frame": round(1000 * v / n, 2) for k, v in cpu.items()})
    for kind in ("frames", "videos"):
        summary[f"ours_{kind}_vs_upstream"] = round(fps[f"ours_{kind}"] / fps["upstream"], 2)
        summary[f"floor_{kind}_vs_ours"] = round(fps[f"floor_{kind}"] / fps[f"ours_{kind}"], 2)
        summary[f"ours_{kind}_vs_upstream_cpu"] = round(cpu["upstream"] / cpu[f"ours_{kind}"], 2)
        summary[f"floor_{kind}_vs_ours_cpu"] = round(cpu[f"ours_{kind}"] / cpu[f"floor_{kind}"], 2)
    summary["floor_x264_vs_ours_videos"] = round(fps["floor_x264"] / fps["ours_videos"], 2)
    # Stage fps of ours_videos from process_clip's timings (inpaint and write are summed over the frame threads,
    # so they can exceed the wall time; probe is the header read).
    summary["ours_videos_stage_fps"] = {k: round(n / v, 1) for k, v in stages.items() if v > 0}
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

    from processing.build.processed import init_worker

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
    print("machine:", machine(), "| load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
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
    print("load average at the end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
