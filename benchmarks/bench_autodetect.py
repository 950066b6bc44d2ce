"""Score automatic field-of-view crop and overlay masks (processing.pixels.autodetect) against truth, in one command.

    python benchmarks/bench_autodetect.py [--evidence DIR] [--realdata DIR] [--quick]

1. Simulated clips (processing.demo.simulate, exact ground truth): every combination of probe x container x class x
   frame size, a third of them with a moving pointer. Per clip and overall (median): crop IoU, probe, overlay-mask
   recall and precision (see processing.pixels.autodetect.score_detection), seconds per clip.
2. Real clips with burned-in overlays (../shared/realdata twitter_taotepocus__* and the release's utils/sample.gif):
   what was found (window, probe, masked share of the window, frame masks), and evidence images written to
   ``--evidence`` (default /tmp/covidx-us-autodetect-evidence): the middle frame with the window drawn, the mask
   overlaid in red, and the crop inpainted with the mask.

Reads ../shared in place; writes only under the evidence folder and a temporary folder.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processing.demo.simulate import ClipSpec, write_clip  # noqa: E402
from processing.errors import CovidxError  # noqa: E402
from processing.pixels.autodetect import detect_clip, score_detection  # noqa: E402
from processing.pixels.clips import iter_frames  # noqa: E402
from processing.pixels.inpaint import inpaint  # noqa: E402

SHARED = ROOT.parent / "shared"


def simulated_specs(quick: bool = False) -> list[tuple[str, ClipSpec]]:
    """The benchmark's simulated clips: (name, spec)."""
    probes, containers = ("convex", "linear"), ("mp4", "gif", "avi", "wmv", "mov")
    labels, sizes = ("covid", "normal", "pneumonia"), ((160, 120), (320, 240), (640, 480))
    if quick:
        containers, labels, sizes = ("mp4", "gif"), ("covid", "normal"), ((160, 120), (320, 240))
    specs = []
    for i, (probe, container, label, (w, h)) in enumerate(itertools.product(probes, containers, labels, sizes)):
        pointer = ((5, 9),) if i % 3 == 0 else ()
        spec = ClipSpec(probe=probe, label=label, width=w, height=h, num_frames=16, container=container, seed=i,
                        pointer_frames=pointer)
        specs.append((f"sim{i:02d}_{probe}_{container}_{label}_{w}x{h}", spec))
    return specs


def bench_simulated(quick: bool) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in simulated_specs(quick):
            path = Path(tmp) / f"{name}.{spec.container}"
            truth = write_clip(spec, path)
            start = time.perf_counter()
            detection = detect_clip(path, clip_id=name)
            seconds = time.perf_counter() - start
            s = score_detection(detection, truth.fov_window, truth.probe, truth.overlay_masks)
            rows.append(dict(clip=name, iou=s.crop_iou, probe_ok=s.probe_ok, recall=s.recall,
                             precision=s.precision, frame_masks=s.masked_frames, pointer_frames=len(truth.pointer_frames),
                             seconds=seconds, window=str(detection.window), true_window=str(truth.fov_window)))
    return rows


def real_clips(realdata: Path) -> list[Path]:
    clips = sorted((realdata / "videos").glob("twitter_taotepocus__*"))
    sample = SHARED / "reference" / "covidx_us" / "utils" / "sample.gif"
    return clips + ([sample] if sample.is_file() else [])


def middle_frame(path: Path, index: int) -> np.ndarray:
    for frame in iter_frames(path):
        if frame.index == index:
            return frame.image
    raise CovidxError(f"{path}: no frame {index}")


def evidence(path: Path, detection, out: Path) -> Path:
    """Side by side: frame with the window (green), the crop with the mask in red, the inpainted crop."""
    index = detection.sampled_frames[len(detection.sampled_frames) // 2]
    frame = middle_frame(path, index)
    w = detection.window
    boxed = frame.copy()
    cv2.rectangle(boxed, (w.x, w.y), (w.x + w.w - 1, w.y + w.h - 1), (0, 255, 0), 2)
    crop = frame[w.slices()]
    mask = detection.mask_for(index)
    shown = crop.copy()
    shown[mask] = (0.4 * shown[mask] + np.array([153, 0, 0])).astype(np.uint8)
    clean = inpaint(crop, mask)
    scale = frame.shape[0] / crop.shape[0]
    size = (max(1, int(crop.shape[1] * scale)), frame.shape[0])
    panel = np.concatenate([boxed, cv2.resize(shown, size, interpolation=cv2.INTER_NEAREST),
                            cv2.resize(clean, size, interpolation=cv2.INTER_AREA)], axis=1)
    target = out / f"{path.stem}.png"
    cv2.imwrite(str(target), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return target


def bench_real(realdata: Path, out: Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in real_clips(realdata):
        start = time.perf_counter()
        try:
            detection = detect_clip(path)
        except CovidxError as exc:
            rows.append(dict(clip=path.name, error=str(exc)))
            continue
        seconds = time.perf_counter() - start
        image = evidence(path, detection, out)
        rows.append(dict(clip=path.name, size="{}x{}".format(*detection.frame_size), window=str(detection.window),
                         probe=detection.probe, masked=detection.masked_fraction,
                         frame_masks=len(detection.frame_masks), frames=detection.frame_count,
                         seconds=seconds, evidence=str(image)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidence", type=Path, default=Path(tempfile.gettempdir()) / "covidx-us-autodetect-evidence")
    parser.add_argument("--realdata", type=Path, default=SHARED / "realdata")
    parser.add_argument("--quick", action="store_true", help="16 simulated clips instead of 90")
    args = parser.parse_args(argv)

    sim = bench_simulated(args.quick)
    print("| clip | crop IoU | probe ok | recall | precision | frame masks / pointer frames | s |")
    print("|---|---|---|---|---|---|---|")
    for r in sim:
        print(f"| {r['clip']} | {r['iou']:.3f} | {'yes' if r['probe_ok'] else 'NO'} | {r['recall']:.3f} |"
              f" {r['precision']:.3f} | {r['frame_masks']}/{r['pointer_frames']} | {r['seconds']:.2f} |")
    med = {k: statistics.median(r[k] for r in sim) for k in ("iou", "recall", "precision", "seconds")}
    probes = sum(r["probe_ok"] for r in sim)
    print(f"\nsimulated: {len(sim)} clips; median crop IoU {med['iou']:.3f}, recall {med['recall']:.3f}, precision"
          f" {med['precision']:.3f}; probe right {probes}/{len(sim)}; median {med['seconds']:.2f} s per clip;"
          f" IoU >= 0.95 on {sum(r['iou'] >= 0.95 for r in sim)}, recall >= 0.98 on"
          f" {sum(r['recall'] >= 0.98 for r in sim)}, precision >= 0.9 on {sum(r['precision'] >= 0.9 for r in sim)}")

    if (args.realdata / "MANIFEST.csv").is_file():
        real = bench_real(args.realdata, args.evidence)
        print("\n| real clip | size | window | probe | masked share of window | frame masks | s |")
        print("|---|---|---|---|---|---|---|")
        for r in real:
            if "error" in r:
                print(f"| {r['clip']} | | error: {r['error']} | | | | |")
            else:
                print(f"| {r['clip']} | {r['size']} | {r['window']} | {r['probe']} | {100 * r['masked']:.1f}% |"
                      f" {r['frame_masks']} of {r['frames']} | {r['seconds']:.2f} |")
        print(f"\nevidence images: {args.evidence}")
    else:
        print(f"\n{args.realdata} not available: real clips skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
