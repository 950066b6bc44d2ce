"""How much of a caption burned in over the field the automatic masks remove, on every real clip.

    python benchmarks/bench_captions.py [--realdata DIR] [--only SUBSTRING ...]

Social-media clips carry words over the image. The truth clips have few (their labels sit at the border), so this
draws one on every clip of ../shared/realdata/videos, in memory, on every frame (OpenCV's Hershey sans, anti-aliased,
sized to the frame: 1/600 of its width, at least 0.5), and detects on the result. Three captions, across the field
at different heights and greys:

- "B-LINES 2 cm", white, at 55% of the height;
- "Pleural line", white, at 30%;
- "COVID-19 day 5", grey 210, at 75%.

A caption pixel is one the text covers at >= 50%; it is removed when the main mask, grown 5x5 as the pipeline grows it,
covers it. Prints one row per clip and caption, then per caption the median share removed and how many clips reach 90%
(clips whose window the caption misses are left out). Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processing.errors import CovidxError  # noqa: E402
from processing.pixels.autodetect import detect_frames  # noqa: E402
from processing.pixels.clips import iter_frames  # noqa: E402

CAPTIONS = (("B-LINES 2 cm", 0.55, 255), ("Pleural line", 0.30, 255), ("COVID-19 day 5", 0.75, 210))


def burn(frames: list[np.ndarray], text: str, at: float, grey: int) -> np.ndarray:
    """Draw ``text`` on every frame (in place), centred across, its baseline at ``at`` of the height; the text's
    coverage (uint8)."""
    height, width = frames[0].shape[:2]
    scale = max(0.5, width / 600)
    thickness = max(1, round(2 * scale))
    (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    origin = (max(0, (width - text_width) // 2), int(at * height))
    cover = np.zeros((height, width), np.uint8)
    cv2.putText(cover, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    for frame in frames:
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (grey, grey, grey), thickness, cv2.LINE_AA)
    return cover


def removed(path: Path, text: str, at: float, grey: int) -> tuple[int, float]:
    """``(caption pixels inside the window, share removed)`` for one clip and caption."""
    frames = [frame.image.copy() for frame in iter_frames(path)]
    cover = burn(frames, text, at, grey)
    detection = detect_frames(list(enumerate(frames)), clip_id=path.stem)
    letters = (cover > 128)[detection.window.slices()]
    masked = cv2.dilate(detection.main_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return int(letters.sum()), float(masked[letters].mean()) if letters.any() else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    parser.add_argument("--only", nargs="*", default=[], help="clips whose name contains one of these")
    args = parser.parse_args(argv)
    videos = args.realdata / "videos"
    if not videos.is_dir():
        print(f"no real clips at {videos}", file=sys.stderr)
        return 2
    paths = [p for p in sorted(videos.iterdir()) if not args.only or any(s in p.name for s in args.only)]
    for text, at, grey in CAPTIONS:
        shares = []
        for path in paths:
            try:
                pixels, share = removed(path, text, at, grey)
            except CovidxError as exc:
                print(f"{path.name}: {exc}")
                continue
            print(f"{text!r:18s} {path.name[:50]:50s} {pixels:6d} {share:6.3f}", flush=True)
            if pixels:
                shares.append(share)
        values = np.array(shares)
        print(f"{text!r}: {values.size} clips with the caption in the window; removed median {np.median(values):.3f}, "
              f">= 0.9 on {(values >= 0.9).sum()}, < 0.5 on {(values < 0.5).sum()}\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
