"""Regenerate and check ``metadata/copies.csv``, the registry of pinned public copies of catalogue clips.

    python scripts/copies_registry.py              # regenerate from the inputs, then check; writes the CSV
    python scripts/copies_registry.py --check      # regenerate in memory, compare with the CSV, check; writes nothing

Inputs (read in place, never copied; defaults under ../shared beside the repository):
  --survey     reference/public_copies/survey.csv   (video, copy) pairs found in public Git repositories
  --crop-json  realdata/origin_metadata/pocovid_crop.json   POCOVID's [[top, left, size], [start, end]] per web clip
  --release    reference/covidx_us                  the pinned upstream release (the catalogue, errata applied)
  --realdata   realdata                              copies on disk (MANIFEST.csv) for the digest/geometry check

Only the facts a registry needs are kept: the copy's pinned URL, digest, size and geometry, what it changed, POCOVID's
crop and frame range where known and consistent with the copy, the match evidence, confidence and licence. Only high
and medium confidence rows with a known digest; only ids of the catalogue (the withdrawn 22_butterfly_covid is not).

Checks (exit 1, one line per problem): every row parses (digests, commit, URL, vocabulary); ids are in the catalogue;
one file under two ids only where the errata make them one split group; for every copy present in --realdata, the
file's sha256 and size and its decoded width, height, frame count and fps equal the row; and the CSV on disk equals
what the inputs give (--check).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processing.fileutil import atomic_write, sha256_file  # noqa: E402
from processing.release.copies import COLUMNS, REGISTRY_PATH, parse_row, raw_url  # noqa: E402

SHARED = ROOT.parent / "shared"
POCOVID_PREFIX = "code/data/"  # ar-ambuj23's copy of POCOVID's data folder; crop.json keys are relative to it


def _close(a: float, b: float) -> bool:
    """Frame counts that agree within 2 frames or 2 % (encoders drop or add one at the ends)."""
    return abs(a - b) <= max(2.0, 0.02 * max(a, b))


def changes_of(text: str) -> list[str]:
    """The survey's free-text 'changes' as the registry's vocabulary."""
    out = []
    if "crop" in text:
        out.append("cropped")
    if "resized" in text:
        out.append("resized")
    if "re-encoded" in text or "container" in text:
        out.append("re-encoded")
    if "trimmed" in text:
        out.append("trimmed")
    if re.search(r"fps [\d.]+->", text):
        out.append("resampled")
    return out or ["identical"]


def mapping_of(row: dict[str, str], changes: list[str], crop: list | None) -> dict[str, str]:
    """crop_*/frame_*/timing fields: POCOVID's crop and frame range when crop.json has the clip, and the timing
    only when both agree with the copy (square of the crop's size, or resized from it; as many frames as the range,
    or as many as the range lasts at the copy's fps). Otherwise timing stays empty: the mapping is unknown."""
    out = dict.fromkeys(("crop_top", "crop_left", "crop_size", "frame_start", "frame_end", "timing"), "")
    if not crop:
        return out
    (top, left, size), (start, end) = crop
    out.update(crop_top=str(int(top)), crop_left=str(int(left)), crop_size=str(int(size)),
               frame_start=str(int(start)), frame_end=str(int(end)))
    width, height, frames, fps = int(row["copy_w"]), int(row["copy_h"]), int(row["copy_frames"]), float(row["copy_fps"])
    org_w, org_h, org_fps = int(row["org_w"]), int(row["org_h"]), float(row["org_fps"])
    fits = top >= 0 and left >= 0 and top + size <= org_h and left + size <= org_w
    crop_ok = fits and width == height and (width == size or "resized" in changes)
    span = end - start
    if crop_ok and _close(frames, span) and abs(fps - org_fps) < 0.05:
        out["timing"] = "frames"
    elif crop_ok and _close(frames, span * fps / org_fps):
        out["timing"] = "time"
    elif crop_ok and _close(frames, span):
        out["timing"] = "frames"
    return out


def generate(survey: Path, crop_json: Path, release: Path) -> tuple[list[dict[str, str]], list[str]]:
    """The registry rows from the inputs, and notes on the survey rows left out."""
    from processing.release.catalogue import load_catalogue

    catalogue = load_catalogue("1.5", release)
    ids = {v.id: v for v in catalogue.videos}
    crops = json.loads(crop_json.read_text(encoding="utf-8"))
    rows, notes = [], []
    with open(survey, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            vid = row["covidxus_id"]
            if row["confidence"] not in ("high", "medium"):
                notes.append(f"{survey.name}:{line} {vid}: {row['confidence']} confidence, left out")
                continue
            if not row["sha256"]:
                notes.append(f"{survey.name}:{line} {vid}: no digest known for {row['copy_repo']}:{row['path']}")
                continue
            if vid not in ids:
                notes.append(f"{survey.name}:{line} {vid}: not in the catalogue (withdrawn), left out")
                continue
            changes = changes_of(row["changes"])
            path = row["path"]
            crop = crops.get(path[len(POCOVID_PREFIX):]) if path.startswith(POCOVID_PREFIX) else None
            rows.append({
                "video_id": vid, "url": raw_url(row["copy_repo"], row["commit"], path), "sha256": row["sha256"],
                "size": row["bytes"], "width": row["copy_w"], "height": row["copy_h"], "frames": row["copy_frames"],
                "fps": row["copy_fps"], "changes": ";".join(changes), **mapping_of(row, changes, crop),
                "evidence": row["evidence"], "confidence": row["confidence"], "licence": ids[vid].licence,
                "repository": row["copy_repo"], "commit": row["commit"], "path": path,
            })
    order = {v.id: i for i, v in enumerate(catalogue.videos)}
    rank = {"high": 0, "medium": 1}
    rows.sort(key=lambda r: (order[r["video_id"]], rank[r["confidence"]], r["repository"], r["path"]))
    return rows, notes


def render(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def probe(path: Path) -> tuple[int, int, int, float]:
    """Width, height, decoded frame count and average fps of a clip (PyAV)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = 0
        width = height = 0
        for frame in container.decode(stream):
            frames += 1
            width, height = frame.width, frame.height
        rate = stream.average_rate or stream.guessed_rate
        return width, height, frames, float(rate) if rate else 0.0


def check(text: str, release: Path, realdata: Path | None) -> list[str]:
    """Problems with the registry ``text`` (empty: it holds)."""
    from processing.release.catalogue import load_catalogue

    problems: list[str] = []
    catalogue = load_catalogue("1.5", release)
    groups = {v.id: v.group for v in catalogue.videos}
    copies = []
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            copies.append(parse_row(row, f"copies.csv:{line}"))
        except Exception as exc:  # every malformed row is reported, not just the first
            problems.append(str(exc))
    by_digest = defaultdict(set)
    for copy in copies:
        if copy.video_id not in groups:
            problems.append(f"{copy.video_id}: not a video of the catalogue")
            continue
        by_digest[copy.sha256].add(copy.video_id)
    for digest, vids in by_digest.items():
        if len({groups[v] for v in vids}) > 1:
            problems.append(f"one copy ({digest[:12]}) under {', '.join(sorted(vids))}, which the errata do not "
                            "make one split group")
    if realdata is not None and (realdata / "MANIFEST.csv").is_file():
        on_disk = {}
        with open(realdata / "MANIFEST.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                on_disk[(row["origin_repo"], row["origin_path"], row["origin_commit"])] = realdata / row["file"]
        for copy in copies:
            path = on_disk.get((copy.repository, copy.path, copy.commit))
            if path is None or not path.is_file():
                continue
            if path.stat().st_size != copy.size or sha256_file(path) != copy.sha256:
                problems.append(f"{copy.video_id}: {path} does not have the registry's size and sha256")
                continue
            width, height, frames, fps = probe(path)
            if (width, height, frames) != (copy.width, copy.height, copy.frames) or abs(fps - copy.fps) > 0.01:
                problems.append(f"{copy.video_id}: {path} decodes to {width}x{height}, {frames} frames at "
                                f"{fps:.3f} fps; the registry says {copy.width}x{copy.height}, {copy.frames} "
                                f"frames at {copy.fps:g} fps")
    return problems


def summary(text: str) -> str:
    rows = list(csv.DictReader(io.StringIO(text)))
    videos = {r["video_id"] for r in rows}
    butterfly = {v for v in videos if "_butterfly_" in v}
    mapped = {r["video_id"] for r in rows if r["timing"]}
    return (f"{len(rows)} copies of {len(videos)} catalogue videos ({len(butterfly)} Butterfly); "
            f"{len(mapped)} with a known place in the original")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--survey", type=Path, default=SHARED / "reference" / "public_copies" / "survey.csv")
    parser.add_argument("--crop-json", type=Path,
                        default=SHARED / "realdata" / "origin_metadata" / "pocovid_crop.json")
    parser.add_argument("--release", type=Path, default=SHARED / "reference" / "covidx_us")
    parser.add_argument("--realdata", type=Path, default=SHARED / "realdata")
    parser.add_argument("--output", type=Path, default=REGISTRY_PATH)
    parser.add_argument("--check", action="store_true", help="compare with --output and check; write nothing")
    args = parser.parse_args(argv)
    for name in ("survey", "crop_json", "release"):
        if not getattr(args, name).exists():
            print(f"copies_registry: input {getattr(args, name)} is absent", file=sys.stderr)
            return 2
    rows, notes = generate(args.survey, args.crop_json, args.release)
    text = render(rows)
    problems = []
    if args.check:
        on_disk = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if on_disk != text:
            problems.append(f"{args.output} differs from what the inputs give; rerun without --check")
    problems += check(text, args.release, args.realdata)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    if not args.check:
        with atomic_write(args.output) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    print(summary(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
