"""``covidx-us clean`` against the upstream way, side by side in one run, and where clean's time goes (issue 18).

Usage: python benchmarks/bench_clean.py [--videos DIR] [--clips NAME ...] [--rounds N] [--method telea|ns]
                                        [--work DIR] [--before TREE] [--long-frames N] [--profile-only]
                                        [--skip-profile] [--codecs-only]

1. Comparison. Per clip (default: two GrepMed clips of ``../shared/realdata/videos``, 1080x1080 and 626x626), crop
   ``0,0,S,S`` (S = the shorter side) and a real release overlay mask (GrepMed video 34's, the release mask whose
   5x5-dilated cover is closest to the release's mean of 1.2%) scaled to the crop and written as PNG into ``--work``.
   Three commands run as child processes, one call per clip, round-robin (each round rotates which goes first):
   - upstream: ``../shared/tools/upstream_style.py`` (whole clip in memory, XVID, JPEG round trips, DIVX);
   - clean --no-videos: ``covidx-us clean CLIP --crop 0,0,S,S --mask MASK --inpaint telea --no-videos``;
   - clean: the same with the cropped and clean lossless videos (and the copy of the original).
   Wall time, CPU time (user + system of the child) and peak RSS (the child's own VmHWM) per call;
   per round the sums over the clips and the ratio upstream wall / clean wall. The load average is printed first.
   ``--before TREE`` adds both clean variants run from another checkout (PYTHONPATH=TREE), in the same rounds.
   Peak memory (``--long-frames``, 0 to skip): ``clean`` with videos on the first clip and on its frames looped
   to 1,500 frames (``--long-frames``), the child's peak RSS each.
2. Profile (``--skip-profile`` to leave out): each stage of ``clean`` timed on its own on one thread (CPU time) over
   every frame of real clips of several sizes: decode (PyAV, no conversion), colour conversion (to RGB), crop (copy),
   inpaint (Telea and NS, the mask's regions), PNG (processing.pixels.png), video (the lossless writer), file writes
   (the PNG bytes to disk), and start-up (``python -m processing.cli clean --help`` against ``python -c pass``).
3. Video codecs (``--codecs-only`` runs this part alone; with ``--skip-profile`` it is left out): the lossless
   writer (``VideoWriter``, MagicYUV in .mov) against the H.264 one it replaced (libx264rgb, qp 0, preset ultrafast,
   one thread, .mp4; processing format 4) on the first 60 frames of every clip of ``--videos`` (whole frames):
   encode CPU ms per frame (on this thread, from an RGB array, as the pipeline hands frames over), decode CPU ms per
   frame (PyAV, to RGB, as a reader would), the bytes, and whether both decode to the written pixels.
Skipped with a message when the clips are absent.
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(Path(__file__).parent))

from bench_build import machine  # noqa: E402

SHARED = ROOT.parent / "shared"
DEFAULT_VIDEOS = SHARED / "realdata" / "videos"
UPSTREAM = SHARED / "tools" / "upstream_style.py"
RELEASE_MASK = SHARED / "reference" / "covidx_us" / "data" / "mask" / "34_grepmed_pneumonia_prc_convex_frame0_mask.jpg"
DEFAULT_CLIPS = ("grepmed__Cov-grep-7505.mp4", "grepmed__Cov-grep-7431.mp4")
PROFILE_CLIPS = ("grepmed__Cov-grep-7505.mp4", "grepmed__Cov-grep-7431.mp4", "grepmed__Cov-grep-7500.mp4",
                 "pocusatlas__Pneu-Atlas-pneumonia2.gif", "grepmed__Cov-grepmed2.mp4")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def release_like_mask(size: int, out: Path) -> float:
    """Write the release mask for a ``size`` x ``size`` crop as PNG (white = overlay) and return its cover after
    the 5x5 dilation clean applies. The release mask as the pipeline grows it (5x5) is scaled to the crop and
    eroded 5x5, so that clean's dilation gives back the release's cover (1.2%) at any crop size."""
    from processing.pixels.masks import KERNEL_SIZE, dilate, read_mask

    grown = dilate(read_mask(RELEASE_MASK)).astype(np.uint8) * 255
    scaled = cv2.resize(grown, (size, size), interpolation=cv2.INTER_NEAREST)
    drawn = cv2.erode(scaled, np.ones((KERNEL_SIZE, KERNEL_SIZE), np.uint8))
    cv2.imwrite(str(out), drawn)
    return float(dilate(drawn > 127).mean())


# Runs a Python script (``PATH args``) or module (``-m NAME args``) and prints its own peak RSS (VmHWM) last on
# stderr: ru_maxrss from wait4 is not the child's own on Linux (it carries the parent's RSS over fork + exec).
_PEAK_WRAPPER = """
import runpy, sys
code = 0
try:
    if sys.argv[1] == "-m":
        sys.argv = sys.argv[2:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code
finally:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(f"VmHWM {hwm}", file=sys.stderr)
sys.exit(code)
"""


def run_child(argv: list[str], env: dict) -> dict:
    """Run ``argv`` (``[python, SCRIPT|-m MODULE|-c CODE, ...]``); its wall time, CPU seconds (user + system, from
    wait4: this child alone) and, for a script or module, its own peak RSS in MB."""
    wrapped = argv[1] != "-c"
    if wrapped:
        argv = [argv[0], "-c", _PEAK_WRAPPER, *argv[1:]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    clock = time.perf_counter()
    # cwd: a folder without a processing/ package (``-c`` puts the cwd first on sys.path, before PYTHONPATH)
    proc = subprocess.run(argv, env=env, capture_output=True, check=False, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - clock
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out, err = proc.stdout, proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    peak = None
    if wrapped:
        peak = int(err.decode().strip().splitlines()[-1].split()[1]) / 1024
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_mb": peak, "stdout": out.decode(errors="replace")}


def compare(clips: list[Path], rounds: int, method: str, work: Path, before: Path | None = None) -> dict:
    from processing.pixels.clips import probe_header

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env_before = dict(os.environ, PYTHONPATH=str(before)) if before is not None else None
    specs = []
    for clip in clips:
        header = probe_header(clip)
        side = min(header.width, header.height)
        mask = work / f"{clip.stem}_mask.png"
        cover = release_like_mask(side, mask)
        specs.append((clip, side, mask, cover))
        print(f"clip {clip.name}: {header.width}x{header.height}, crop 0,0,{side},{side}, mask cover "
              f"{100 * cover:.2f}% after dilation", flush=True)

    def commands(clip: Path, side: int, mask: Path, out: Path) -> dict[str, list[str]]:
        clean = [sys.executable, "-m", "processing.cli", "clean", str(clip), "--crop", f"0,0,{side},{side}",
                 "--mask", str(mask), "--inpaint", method, "--out"]
        return {
            "upstream": [sys.executable, str(UPSTREAM), str(out / "upstream"), f"{clip}:0,0,{side},{side}:{mask}"],
            "clean_no_videos": [*clean, str(out / "frames"), "--no-videos"],
            "clean_videos": [*clean, str(out / "videos")],
            "before_no_videos": [*clean, str(out / "before_frames"), "--no-videos"],
            "before_videos": [*clean, str(out / "before_videos")],
        }

    kinds: tuple[str, ...] = ("upstream", "clean_no_videos", "clean_videos")
    if before is not None:
        kinds += ("before_no_videos", "before_videos")
    results = []
    for round_no in range(rounds):
        totals = {k: {"wall_s": 0.0, "cpu_s": 0.0, "peak_mb": 0.0} for k in kinds}
        order = kinds[round_no % len(kinds):] + kinds[:round_no % len(kinds)]
        for clip, side, mask, _cover in specs:
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                argv = commands(clip, side, mask, Path(tmp))
                for kind in order:
                    r = run_child(argv[kind], env_before if kind.startswith("before") else env)
                    totals[kind]["wall_s"] += r["wall_s"]
                    totals[kind]["cpu_s"] += r["cpu_s"]
                    totals[kind]["peak_mb"] = max(totals[kind]["peak_mb"], r["peak_mb"])
                    print(f"  round {round_no + 1} {clip.name} {kind}: wall {r['wall_s']:.2f} s, "
                          f"cpu {r['cpu_s']:.2f} s, peak RSS {r['peak_mb']:.0f} MB", flush=True)
        summary = {k: {m: round(v, 2) for m, v in t.items()} for k, t in totals.items()}
        for kind in kinds[1:]:
            summary[f"{kind}_vs_upstream"] = round(totals["upstream"]["wall_s"] / totals[kind]["wall_s"], 2)
            summary[f"{kind}_vs_upstream_cpu"] = round(totals["upstream"]["cpu_s"] / totals[kind]["cpu_s"], 2)
        summary["load_after"] = load()
        print(f"round {round_no + 1}: {json.dumps(summary)}", flush=True)
        results.append(summary)
    return {"rounds": results}


# ---- 2. per-stage profile


def profile_clip(path: Path, work: Path) -> dict:
    """CPU milliseconds per frame of each stage alone, on this thread (decode: FFmpeg's threads too), over every
    frame of ``path``, crop 0,0,S,S and the release-like mask, as ``clean`` runs them."""
    import av

    from processing.pixels.clips import VIDEO_SUFFIX, VideoWriter, probe_header
    from processing.pixels.inpaint import inpaint, margin, regions
    from processing.pixels.masks import dilate
    from processing.pixels.png import encode_png

    header = probe_header(path)
    side = min(header.width, header.height)
    mask_file = work / f"profile_{path.stem}_mask.png"
    release_like_mask(side, mask_file)
    mask = dilate(cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE) > 127)
    boxes = regions(mask, margin())
    t = dict.fromkeys(("decode", "rgb", "crop", "inpaint_telea", "inpaint_ns", "png", "video", "write"), 0.0)
    cpu = time.process_time
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # as processing.pixels.clips decodes
        clock = cpu()
        decoded = list(container.decode(stream))
        t["decode"] = cpu() - clock
    frames = len(decoded)
    writer = VideoWriter(work / f"profile{VIDEO_SUFFIX}", side, side, header.fps)
    for index, frame in enumerate(decoded):
        c0 = cpu()
        rgb = frame.to_ndarray(format="rgb24", threads=1)
        c1 = cpu()
        image = np.ascontiguousarray(rgb[:side, :side])
        c2 = cpu()
        inpaint(image, mask, "telea", boxes=boxes)
        c3 = cpu()
        clean = inpaint(image, mask, "ns", boxes=boxes)
        c4 = cpu()
        data = encode_png(clean)
        c5 = cpu()
        writer.write(clean, index / header.fps)
        c6 = cpu()
        (work / f"profile_{index}.png").write_bytes(data)  # a new file per frame, as clean writes them
        c7 = cpu()
        for key, a, b in (("rgb", c0, c1), ("crop", c1, c2), ("inpaint_telea", c2, c3), ("inpaint_ns", c3, c4),
                          ("png", c4, c5), ("video", c5, c6), ("write", c6, c7)):
            t[key] += b - a
    c0 = cpu()
    writer.close()
    t["video"] += cpu() - c0
    for index in range(frames):
        (work / f"profile_{index}.png").unlink()
    row = {"clip": path.name, "size": f"{header.width}x{header.height}", "crop": side, "frames": frames,
           "mask_px": int(mask.sum())}
    row.update({k: round(1000 * v / frames, 2) for k, v in t.items()})
    return row


def startup() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    best = {}
    for name, argv in (("python", [sys.executable, "-c", "pass"]),
                       ("clean_help", [sys.executable, "-m", "processing.cli", "clean", "--help"])):
        runs = [run_child(argv, env) for _ in range(3)]
        best[name] = {"wall_s": round(min(r["wall_s"] for r in runs), 3),
                      "cpu_s": round(min(r["cpu_s"] for r in runs), 3)}
    return best


def long_clip_memory(source: Path, frames: int, work: Path) -> dict:
    """Peak RSS of ``clean`` (with videos) on a long clip: ``source``'s frames looped to ``frames`` frames (H.264,
    yuv420p, as a site serves clips), against the same call on ``source`` itself."""
    import av

    from processing.pixels.clips import iter_frames, probe_header

    header = probe_header(source)
    long_clip = work / f"long_{frames}.mp4"
    images = [f.image for f in iter_frames(source)]
    with av.open(str(long_clip), "w") as out:
        stream = out.add_stream("libx264", rate=round(header.fps))
        stream.width, stream.height, stream.pix_fmt = header.width, header.height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(images[index % len(images)], format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    side = min(header.width, header.height)
    mask = work / "long_mask.png"
    release_like_mask(side, mask)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = {}
    for name, clip in (("source", source), ("long", long_clip)):
        r = run_child([sys.executable, "-m", "processing.cli", "clean", str(clip), "--crop", f"0,0,{side},{side}",
                       "--mask", str(mask), "--inpaint", "telea", "--out", str(work / f"mem_{name}")], env)
        result[name] = {"frames": len(images) if name == "source" else frames, "wall_s": round(r["wall_s"], 2),
                        "peak_mb": round(r["peak_mb"], 1)}
    return result


# ---- 3. video codecs


def _h264_writer(path: Path, width: int, height: int, fps: float):
    """The writer of processing format 4 (lossless H.264, libx264rgb qp 0, ultrafast, one thread, .mp4), rebuilt
    here for comparison: ``(write(image, seconds), close())``."""
    from fractions import Fraction

    import av

    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("libx264rgb", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
    stream.options = {"qp": "0", "preset": "ultrafast"}
    stream.codec_context.thread_count = 1
    stream.codec_context.time_base = Fraction(1, 90000)
    frame = av.VideoFrame(width, height, "rgb24")

    def write(image: np.ndarray, seconds: float) -> None:
        frame.make_writable()
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width * 3]
        rows.reshape(height, width, 3)[...] = image
        frame.pts, frame.time_base = round(seconds * 90000), Fraction(1, 90000)
        container.mux(stream.encode(frame))

    def close() -> None:
        container.mux(stream.encode(None))
        container.close()

    return write, close


def codec_sizes(videos: Path, work: Path, frames: int = 60) -> dict:
    """Per clip of ``videos``: the first ``frames`` frames written by both writers; encode and decode CPU, bytes."""
    import av

    from processing.pixels.clips import VIDEO_SUFFIX, VideoWriter, iter_frames

    cpu = time.process_time
    totals = {"h264": {"bytes": 0, "encode_s": 0.0, "decode_s": 0.0}, "ours": {"bytes": 0, "encode_s": 0.0,
                                                                               "decode_s": 0.0}}
    ratios, count, lossless = [], 0, True
    for clip in sorted(p for p in videos.iterdir() if p.suffix.lower() in (".mp4", ".gif", ".avi", ".mov", ".wmv")):
        images = [f.image for f, _ in zip(iter_frames(clip), range(frames), strict=False)]
        height, width = images[0].shape[:2]
        sizes = {}
        for name, path in (("h264", work / "codec.mp4"), ("ours", work / f"codec{VIDEO_SUFFIX}")):
            clock = cpu()
            if name == "h264":
                write, close = _h264_writer(path, width, height, 30.0)
            else:
                writer = VideoWriter(path, width, height, 30.0)
                write, close = writer.write, writer.close
            for n, image in enumerate(images):
                write(image, n / 30)
            close()
            totals[name]["encode_s"] += cpu() - clock
            clock = cpu()
            with av.open(str(path)) as container:
                decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            totals[name]["decode_s"] += cpu() - clock
            lossless &= len(decoded) == len(images) and all(map(np.array_equal, decoded, images))
            sizes[name] = path.stat().st_size
            totals[name]["bytes"] += sizes[name]
        ratios.append(sizes["ours"] / sizes["h264"])
        count += len(images)
        print(f"  {clip.name} {width}x{height}: {len(images)} frames, H.264 {sizes['h264'] / 1e6:.2f} MB, "
              f"ours {sizes['ours'] / 1e6:.2f} MB ({ratios[-1]:.2f}x)", flush=True)
    ratios.sort()
    return {"clips": len(ratios), "frames": count, "lossless": lossless,
            **{f"{name}_{k[:-2]}_ms" if k.endswith("_s") else f"{name}_mb":
               round(1000 * v / count, 2) if k.endswith("_s") else round(v / 1e6, 1)
               for name, t in totals.items() for k, v in t.items()},
            "bytes_ratio_total": round(totals["ours"]["bytes"] / totals["h264"]["bytes"], 3),
            "bytes_ratio_median": round(ratios[len(ratios) // 2], 2), "bytes_ratio_min": round(ratios[0], 2),
            "bytes_ratio_max": round(ratios[-1], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--method", default="telea", choices=("telea", "ns"))
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--before", type=Path, metavar="TREE",
                        help="also run clean from another checkout of covidx-us (e.g. the commit before a change)")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--long-frames", type=int, default=1500, help="frames of the long clip (0: skip)")
    parser.add_argument("--profile-only", action="store_true")
    parser.add_argument("--codecs-only", action="store_true", help="only part 3, the video codecs")
    args = parser.parse_args()
    clips = [args.videos / name for name in args.clips]
    missing = [c for c in clips if not c.is_file()] + [p for p in (UPSTREAM, RELEASE_MASK) if not p.is_file()]
    if missing:
        print(f"skipped: {', '.join(map(str, missing))} not found")
        return 0
    print(f"machine: {machine()}; load average {load()}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        if args.codecs_only:
            print(f"video codecs (ms per frame, MB): {json.dumps(codec_sizes(args.videos, work))}", flush=True)
            print(f"load average at the end {load()}")
            return 0
        if not args.profile_only:
            compare(clips, args.rounds, args.method, work, args.before)
        if args.long_frames and not args.profile_only:
            print(f"peak memory: {json.dumps(long_clip_memory(clips[0], args.long_frames, work))}", flush=True)
        if not args.skip_profile:
            print(f"start-up: {json.dumps(startup())}", flush=True)
            for name in PROFILE_CLIPS:
                if (args.videos / name).is_file():
                    print(f"profile (ms per frame): {json.dumps(profile_clip(args.videos / name, work))}", flush=True)
            print(f"video codecs (ms per frame, MB): {json.dumps(codec_sizes(args.videos, work))}", flush=True)
    print(f"load average at the end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
