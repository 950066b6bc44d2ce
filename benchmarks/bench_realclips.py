"""Score ``--crop auto --mask auto`` on real clips against truth made by eye (``benchmarks/realclip_truth.json``).

    python benchmarks/bench_realclips.py [--evidence DIR] [--realdata DIR] [--only SUBSTRING ...] [--json FILE]

For every clip of the truth file (clips read in place from ../shared/realdata/videos): detect, score
(processing.pixels.evaluate: window holds the top of the field, IoU with the rule's window around the true field,
overlay recall, tissue masked, unusable frames dropped, usable frames dropped, probe) and write an evidence image to
``--evidence`` (default /tmp/covidx-us-realclips-evidence): the source frame with the true field (green), the true
overlay boxes (yellow) and the detected window (amber); the detected mask (red) and blanked outside (blue) on the
crop; the cleaned crop. Then the probe on every clip of the MANIFEST that names one. Prints one row per clip and the
issue's targets, met or not, with the clips that miss each.

Reads ../shared in place; writes only under the evidence folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processing.errors import CovidxError  # noqa: E402
from processing.pixels.autodetect import detect_clip, window_for  # noqa: E402
from processing.pixels.clips import iter_frames  # noqa: E402
from processing.pixels.evaluate import ClipScore, load_truth, score_clip  # noqa: E402
from processing.pixels.inpaint import inpaint  # noqa: E402

TRUTH = ROOT / "benchmarks" / "realclip_truth.json"
SHARED = ROOT.parent / "shared"
SAMPLES = 48

TARGETS = (  # (name, per-clip test, share of clips that must pass)
    ("window holds the top of the field", lambda s: s.top_ok, 1.0),
    ("window IoU >= 0.9", lambda s: s.iou >= 0.9, 0.95),
    (">= 95% of overlay pixels in the window removed", lambda s: s.overlay_recall >= 0.95, 1.0),
    ("every cut / blank frame dropped", lambda s: s.bad_missed == 0, 1.0),
    ("<= 2% of good frames dropped", lambda s: s.good_dropped <= 0.02, 1.0),
    ("<= 0.5% of the tissue masked", lambda s: s.tissue_masked <= 0.005, 1.0),
    ("probe right", lambda s: s.probe_ok, 0.95),
)


def sample_frames(path: Path, truth, count: int = SAMPLES) -> dict[int, np.ndarray]:
    """Evenly spaced frames, the frames moving overlays are on (a few per range) and the unusable ones."""
    n = truth.frames
    wanted = {int(round(i * (n - 1) / max(1, count - 1))) for i in range(min(count, n))}
    for overlay in truth.overlays:
        for a, b in overlay.frames or ():
            wanted |= {a, (a + b) // 2, b}
    for a, b in truth.bad_frames:
        wanted |= {a, b}
    return {f.index: f.image for f in iter_frames(path) if f.index in wanted}


def evidence(path: Path, detection, truth, samples: dict[int, np.ndarray], out: Path) -> None:
    usable = sorted(i for i in samples if not truth.is_bad(i)) or sorted(samples)
    index = usable[len(usable) // 2]  # the middle usable frame
    frame = samples[index]
    left = frame.copy()
    x0, y0, x1, y1 = truth.fov
    cv2.rectangle(left, (x0, y0), (x1 - 1, y1 - 1), (0, 220, 0), 2)
    for overlay in truth.overlays:
        bx0, by0, bx1, by1 = overlay.box
        cv2.rectangle(left, (bx0, by0), (bx1 - 1, by1 - 1), (255, 230, 0), 1)
    w = detection.window
    cv2.rectangle(left, (w.x, w.y), (w.x + w.w - 1, w.y + w.h - 1), (255, 150, 0), 2)
    rows, cols = w.slices()
    crop = frame[rows, cols].copy()
    mask = detection.mask_for(index)
    outside = ~detection.fov_mask if getattr(detection, "fov_mask", None) is not None else None
    shown = crop.copy()
    shown[mask] = (0.4 * shown[mask] + 0.6 * np.array([255, 0, 0])).astype(np.uint8)
    if outside is not None:
        shown[outside] = (0.5 * shown[outside] + 0.5 * np.array([0, 80, 255])).astype(np.uint8)
    clean = crop.copy()
    if outside is not None:
        clean[outside] = 0
    clean = inpaint(clean, mask & ~outside if outside is not None else mask, "ns")
    height = 360
    tiles = [cv2.resize(t, (max(1, int(t.shape[1] * height / t.shape[0])), height), interpolation=cv2.INTER_AREA)
             for t in (left, shown, clean)]
    sheet = np.concatenate(tiles, axis=1)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / f"{path.stem}.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def run_truth(realdata: Path, out: Path, only: list[str],
              probes: dict[str, str]) -> list[tuple[ClipScore | None, str, float]]:
    """Score every clip of the truth (``probes`` gets each detected probe, by file name)."""
    truths = load_truth(TRUTH)
    rows = []
    for name, truth in truths.items():
        if only and not any(o in name for o in only):
            continue
        path = realdata / "videos" / name
        clock = time.perf_counter()
        try:
            detection = detect_clip(path, pointer_policy="drop")
        except CovidxError as exc:
            rows.append((None, f"{name}: FAILED {exc}", time.perf_counter() - clock))
            continue
        seconds = time.perf_counter() - clock
        probes[name] = detection.probe
        samples = sample_frames(path, truth)
        score = score_clip(detection, truth, samples, window_rule=window_for)
        evidence(path, detection, truth, samples, out)
        rows.append((score, detection.summary(), seconds))
    return rows


def report(rows: list[tuple[ClipScore | None, str, float]]) -> list[dict]:
    header = (f"{'clip':44s} {'top':>3s} {'iou':>5s} {'probe':>5s} {'ovl px':>7s} {'recall':>6s} "
              f"{'tissue%':>7s} {'tbox%':>5s} {'bad':>5s} {'good-drop%':>10s} {'s':>5s}")
    print(header)
    out = []
    for score, summary, seconds in rows:
        if score is None:
            print(summary)
            out.append({"error": summary})
            continue
        print(f"{score.clip[:44]:44s} {'ok' if score.top_ok else 'NO':>3s} {score.iou:5.2f} "
              f"{'ok' if score.probe_ok else 'NO':>5s} {score.overlay_pixels:7d} {score.overlay_recall:6.3f} "
              f"{100 * score.tissue_masked:7.2f} {100 * score.tissue_box_masked:5.1f} "
              f"{score.bad_frames - score.bad_missed:>2d}/{score.bad_frames:<2d} {100 * score.good_dropped:10.1f} "
              f"{seconds:5.2f}")
        out.append({**score.as_row(), "seconds": round(seconds, 2), "detected": summary})
    scores = [s for s, _, _ in rows if s is not None]
    failed = [summary for s, summary, _ in rows if s is None]
    print(f"\n{len(rows)} clips, {len(failed)} failed to detect")
    for name, test, share in TARGETS:
        passed = [s for s in scores if test(s)]
        missed = [s.clip for s in scores if not test(s)]
        rate = len(passed) / len(rows) if rows else 0.0
        print(f"  {name}: {len(passed)}/{len(rows)} clips ({100 * rate:.0f}%, target {100 * share:.0f}%) "
              f"{'MET' if rate >= share else 'MISSED'}" + (f"; misses: {', '.join(missed)}" if missed else ""))
    return out


def probe_on_manifest(realdata: Path, probes: dict[str, str]) -> None:
    """The probe on every clip whose MANIFEST row names one (POCOVID copies, labelled tweets); clips already
    detected (``probes``, by file name) are not detected again."""
    right = total = 0
    wrong = []
    with open(realdata / "MANIFEST.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["probe"] not in ("convex", "linear"):
                continue
            path = realdata / row["file"]
            try:
                probe = probes[path.name] if path.name in probes else detect_clip(path).probe
            except CovidxError as exc:
                probe = f"error ({exc})"
            total += 1
            right += probe == row["probe"]
            if probe != row["probe"]:
                wrong.append(f"{path.name} ({row['probe']} called {probe})")
    print(f"\nprobe on the {total} MANIFEST clips that name one: {right}/{total} right"
          + (f"; wrong: {', '.join(wrong)}" if wrong else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidence", type=Path, default=Path("/tmp/covidx-us-realclips-evidence"))
    parser.add_argument("--realdata", type=Path, default=SHARED / "realdata")
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--json", type=Path, help="also write the per-clip rows here")
    parser.add_argument("--no-manifest", action="store_true", help="skip the probe check over the MANIFEST")
    args = parser.parse_args()
    if not (args.realdata / "MANIFEST.csv").is_file():
        print(f"no real clips at {args.realdata}", file=sys.stderr)
        return 2
    probes: dict[str, str] = {}
    rows = report(run_truth(args.realdata, args.evidence, args.only, probes))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if not args.no_manifest and not args.only:
        probe_on_manifest(args.realdata, probes)
    print(f"\nevidence images: {args.evidence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
