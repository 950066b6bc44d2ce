"""Score ``--crop auto --mask auto`` on copies of the truth's real clips as other sites would serve them.

    python benchmarks/bench_variants.py [--variants mirror small large letterbox recoded coarse] [--only SUBSTRING ...]
                                        [--json FILE] [--work DIR]

The truth set (``benchmarks/realclip_truth.json``) is 50 clips. A clip found elsewhere is the same scan served
another way: mirrored, smaller (a social-media re-upload), larger (an upscaled export), inside black bars (a phone
export to 16:9) or coded more coarsely. Each variant here is made from the real clip, its truth moved with it
(boxes mirrored, scaled or shifted), and scored by the same rules as ``bench_realclips.py``
(``processing.pixels.evaluate``). A detector that holds only at the truth's own sizes and sides would be tuned to
those clips; this prints every clip of every variant, the targets per variant, and the clips whose scores move
across a target against the original.

- ``mirror``: left and right swapped (rulers and labels on the other side);
- ``small``: 0.6x (area resampling), ``large``: 1.5x (cubic);
- ``letterbox``: black bars of 15% of the width on each side and 5% of the height above and below;
- ``filmed``: a screen filmed by a phone and pasted into a collage: the image's black lifted to 12 grey (the
  image scaled into 12-255) with the phone's noise (std 2, new on every frame), inside the letterbox's bars at 0;
- ``recoded``: re-coded with H.264 at CRF 28, as a site re-encodes an upload, same size;
- ``coarse``: at CRF 36, the worst case: blocky, speckle smeared, and on a clip that moves little the coder skips
  most blocks from the first frame on, so still tissue does not change at all.

Reads ../shared in place; writes only the re-coded copies, under ``--work`` (default /tmp/covidx-us-variants).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_realclips import SHARED, TARGETS, TRUTH, sample_frames  # noqa: E402

from processing.errors import CovidxError  # noqa: E402
from processing.pixels.autodetect import detect_frames, window_for  # noqa: E402
from processing.pixels.clips import iter_frames  # noqa: E402
from processing.pixels.evaluate import ClipScore, ClipTruth, load_truth, score_clip  # noqa: E402

VARIANTS = ("mirror", "small", "large", "letterbox", "filmed", "recoded", "coarse")
SMALL, LARGE = 0.6, 1.5
BAR_X, BAR_Y = 0.15, 0.05  # letterbox bars, shares of the width and height
LIFT, NOISE = 12, 2.0  # a filmed monitor's black, and the phone's noise over it (real clip 1364981565542047744)
CRFS = {"recoded": 28, "coarse": 36}  # a typical re-upload; a worst case (a low-motion clip freezes)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """How a variant moves a source pixel: ``x' = x * scale + dx`` (mirrored first), and the new frame size."""

    scale: float = 1.0
    dx: int = 0
    dy: int = 0
    mirror: bool = False
    size: tuple[int, int] = (0, 0)
    lift: int = 0  # the image's black lifted to this (a filmed screen), with the phone's noise

    def frame(self, image: np.ndarray) -> np.ndarray:
        if self.mirror:
            image = image[:, ::-1]
        if self.scale != 1.0:
            width, height = self.scaled(image.shape[1], image.shape[0])
            image = cv2.resize(image, (width, height),
                               interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_CUBIC)
        if self.lift:
            # New noise on every frame (a seed from the frame itself: the same frame gets the same noise).
            rng = np.random.default_rng(int(image[::7, ::7].sum()))
            lifted = self.lift + image.astype(np.float32) * ((255 - self.lift) / 255)
            image = np.clip(np.rint(lifted + rng.normal(0, NOISE, image.shape[:2])[..., None]), 0, 255).astype(np.uint8)
        if self.dx or self.dy:
            image = cv2.copyMakeBorder(image, self.dy, self.dy, self.dx, self.dx, cv2.BORDER_CONSTANT, value=0)
        return np.ascontiguousarray(image)

    def scaled(self, width: int, height: int) -> tuple[int, int]:
        return int(round(width * self.scale)), int(round(height * self.scale))

    def point(self, x: float, y: float, width: int) -> tuple[int, int]:
        if self.mirror:
            x = width - x
        return int(round(x * self.scale)) + self.dx, int(round(y * self.scale)) + self.dy

    def box(self, box: tuple[int, int, int, int], width: int) -> tuple[int, int, int, int]:
        (ax, ay), (bx, by) = self.point(box[0], box[1], width), self.point(box[2], box[3], width)
        return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)

    def truth(self, truth: ClipTruth) -> ClipTruth:
        width, height = truth.size
        overlays = tuple(dataclasses.replace(
            o, box=self.box(o.box, width),
            outline=tuple(self.point(x, y, width) for x, y in o.outline)) for o in truth.overlays)
        black = truth.black
        if self.lift:
            black = self.lift + (truth.black or 0.0) * (255 - self.lift) / 255
        return dataclasses.replace(
            truth, size=self.size, fov=self.box(truth.fov, width),
            alt_fovs=tuple(self.box(b, width) for b in truth.alt_fovs), overlays=overlays,
            tissue=tuple(self.box(b, width) for b in truth.tissue), black=black)


def geometry(variant: str, width: int, height: int) -> Geometry:
    if variant == "mirror":
        return Geometry(mirror=True, size=(width, height))
    if variant in ("small", "large"):
        scale = SMALL if variant == "small" else LARGE
        return Geometry(scale=scale, size=(int(round(width * scale)), int(round(height * scale))))
    if variant in ("letterbox", "filmed"):
        dx, dy = int(round(BAR_X * width)), int(round(BAR_Y * height))
        return Geometry(dx=dx, dy=dy, size=(width + 2 * dx, height + 2 * dy), lift=LIFT if variant == "filmed" else 0)
    if variant in CRFS:  # the frames change, not where things are; the coder's 4:2:0 drops an odd row or column
        return Geometry(size=(width // 2 * 2, height // 2 * 2))
    return Geometry(size=(width, height))


def coded_copy(path: Path, work: Path, variant: str) -> Path:
    """``path`` re-coded with H.264 at the variant's CRF (even size: the encoder's 4:2:0 needs it)."""
    out = work / f"{path.stem}.{variant}.mp4"
    if out.is_file():
        return out
    work.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as container:
        stream = None
        for frame in iter_frames(path):
            image = frame.image[: frame.image.shape[0] // 2 * 2, : frame.image.shape[1] // 2 * 2]
            if stream is None:
                stream = container.add_stream("libx264", rate=25)
                stream.width, stream.height = image.shape[1], image.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(CRFS[variant]), "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    partial.replace(out)
    return out


def run(variant: str, name: str, truth: ClipTruth, realdata: Path, work: Path) -> tuple[ClipScore | None, str, float]:
    path = realdata / "videos" / name
    width, height = truth.size
    source = coded_copy(path, work, variant) if variant in CRFS else path
    geo = geometry(variant, width, height)

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        return ((f.index, geo.frame(f.image)) for f in iter_frames(source))

    clock = time.perf_counter()
    try:
        detection = detect_frames(frames(), clip_id=f"{name} ({variant})", pointer_policy="drop", again=frames)
    except CovidxError as exc:
        return None, f"{name} ({variant}): FAILED {exc}", time.perf_counter() - clock
    seconds = time.perf_counter() - clock
    moved = geo.truth(truth)
    samples = {i: geo.frame(image) for i, image in sample_frames(source, truth).items()}
    return score_clip(detection, moved, samples, window_rule=window_for), detection.summary(), seconds


def passes(score: ClipScore | None) -> dict[str, bool]:
    return {name: bool(score is not None and test(score)) for name, test, _share in TARGETS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--realdata", type=Path, default=SHARED / "realdata")
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--json", type=Path, help="also write the per-clip rows here")
    parser.add_argument("--work", type=Path, default=Path("/tmp/covidx-us-variants"))
    args = parser.parse_args()
    if not (args.realdata / "videos").is_dir():
        print(f"no real clips at {args.realdata}", file=sys.stderr)
        return 2
    truths = {k: v for k, v in load_truth(TRUTH).items() if not args.only or any(o in k for o in args.only)}
    rows: list[dict] = []
    results: dict[str, dict[str, ClipScore | None]] = {}
    for variant in ("original", *args.variants):
        print(f"\n== {variant}")
        results[variant] = {}
        for name, truth in truths.items():
            score, summary, seconds = run(variant, name, truth, args.realdata, args.work)
            results[variant][name] = score
            if score is None:
                print(summary)
                rows.append({"variant": variant, "clip": name, "error": summary})
                continue
            print(f"{name[:44]:44s} {'ok' if score.top_ok else 'NO':>3s} {score.iou:5.2f} "
                  f"{'ok' if score.probe_ok else 'NO':>5s} {score.overlay_pixels:7d} {score.overlay_recall:6.3f} "
                  f"{100 * score.tissue_masked:6.2f}% {score.bad_frames - score.bad_missed:>2d}/{score.bad_frames:<2d} "
                  f"{100 * score.good_dropped:5.1f}% {seconds:5.2f}s")
            rows.append({"variant": variant, **score.as_row(), "seconds": round(seconds, 2)})
    print("\n== targets per variant (clips passing; moved: clips that pass on the original and miss here, or the "
          "reverse)")
    for variant, scores in results.items():
        print(f"{variant}:")
        for target, test, share in TARGETS:
            passed = [n for n, s in scores.items() if s is not None and test(s)]
            rate = len(passed) / len(scores) if scores else 0.0
            lost = [n for n in scores if passes(results["original"][n])[target] and n not in passed]
            gained = [n for n in passed if not passes(results["original"][n])[target]]
            print(f"  {target}: {len(passed)}/{len(scores)} ({100 * rate:.0f}%, target {100 * share:.0f}%)"
                  + (f"; lost: {', '.join(lost)}" if lost and variant != "original" else "")
                  + (f"; gained: {', '.join(gained)}" if gained and variant != "original" else ""))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
