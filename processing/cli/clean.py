"""``covidx-us clean``: crop, mask and inpaint a user's own clips exactly as the release clips are processed.

Each clip is processed on its own: a bad clip reports its error and the others still complete; the exit code
is 1 when any clip failed. ``--crop auto`` / ``--mask auto`` ask :mod:`processing.pixels.autodetect` (when installed)
for the window and the overlay masks; detected masks are written to ``<output>/data/mask/`` as PNG and used from
there, so a run can be inspected and repeated with ``--mask``. With detection, each clip's line is followed by
what was detected: the window ``x,y,w,h``, the inferred probe and how many frames got their own (pointer) mask or
were dropped. ``--pointer-policy`` says what a detected pointer over the lung does: ``mask`` (the default here:
the pointer is inpainted and the frame kept) or ``drop`` (the frame is left out, as the release and the builds do).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from processing.errors import ClipError, CovidxError
from processing.fileutil import atomic_write
from processing.vocabulary import IMAGE_FORMATS, INPAINT_METHODS, POINTER_POLICIES
from processing.windows import Window

if TYPE_CHECKING:
    import numpy as np

    from processing.pixels.pipeline import ClipPlan

PROBES = ("convex", "linear", "unknown")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "clean",
        help="crop, mask and inpaint your own clips",
        description="Clean user clips: crop, select frames, inpaint overlays, write frames and lossless videos.",
    )
    parser.add_argument("clips", nargs="+", type=Path, metavar="CLIP", help="mp4, gif, avi, mov or wmv files")
    parser.add_argument("--output", "--out", type=Path, required=True, dest="out", metavar="DIR",
                        help="output root (data/... inside)")
    parser.add_argument("--crop", metavar="X,Y,W,H|auto", help="crop window in source pixels, or auto-detect")
    parser.add_argument("--mask", metavar="FILE|auto", help="overlay mask for the cropped frame (white = inpaint)")
    parser.add_argument("--mask-dir", type=Path, action="append", default=[], metavar="DIR",
                        help="folder of masks overriding --mask by file name (repeatable)")
    parser.add_argument("--pointer-policy", default="mask", choices=POINTER_POLICIES,
                        help="with --mask auto, a frame whose detected pointer touches the lung: mask (default, "
                        "inpaint the pointer) or drop (leave the frame out, as the release did)")
    parser.add_argument("--tight", action="store_true", help="dilate masks 1x1 instead of 5x5")
    parser.add_argument("--delete", default="", metavar="A-B,C", help="source frame ranges to drop (inclusive)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="at most N evenly spaced frames per clip")
    parser.add_argument("--fps", type=float, dest="sample_hz", metavar="HZ", help="sample frames at HZ per second")
    parser.add_argument("--inpaint", default="ns", choices=INPAINT_METHODS, help="inpainting method (default ns)")
    parser.add_argument("--image-format", default="png", choices=IMAGE_FORMATS, help="frame format")
    parser.add_argument("--jpeg-quality", type=int, default=95, metavar="Q", help="JPEG quality 1-100")
    parser.add_argument("--probe", default="unknown", choices=PROBES, help="probe named in output file names")
    parser.add_argument("--no-videos", action="store_true", help="write frames only, no cropped/clean videos")
    parser.set_defaults(func=run)
    return parser


def _autodetect():
    try:
        return importlib.import_module("processing.pixels.autodetect")
    except ModuleNotFoundError as exc:
        if exc.name != "processing.pixels.autodetect":
            raise
        raise CovidxError("--crop auto / --mask auto need processing.pixels.autodetect, which is not installed") from exc


def _save_mask(mask: np.ndarray, path: Path) -> Path:
    import numpy as np
    from PIL import Image

    with atomic_write(path) as tmp:
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp, format="PNG")
    return path


def plan_for_clip(path: Path, args: argparse.Namespace) -> ClipPlan:
    """The :class:`ClipPlan` for one user clip from the command-line arguments (runs detection when asked)."""
    return plan_and_detection(path, args)[0]


def plan_and_detection(path: Path, args: argparse.Namespace) -> tuple[ClipPlan, Any]:
    """:func:`plan_for_clip` and the :class:`processing.pixels.autodetect.Detection` it used (None without auto)."""
    from processing.pixels.frames import parse_ranges
    from processing.pixels.pipeline import ClipPlan

    detection = None
    clip_id = path.stem.replace(" ", "_")
    probe = args.probe
    window = None
    main_mask = Path(args.mask) if args.mask and args.mask != "auto" else None
    frame_masks: dict[int, Path] = {}
    deleted = parse_ranges(args.delete, "--delete")
    if args.crop == "auto" or args.mask == "auto":
        detection = _autodetect().detect_clip(path, clip_id=clip_id,
                                              pointer_policy=getattr(args, "pointer_policy", "mask"))
        if probe == "unknown":
            probe = detection.probe
        if args.crop == "auto":
            window = detection.window
        if args.mask == "auto":
            if args.crop != "auto":
                raise CovidxError("--mask auto needs --crop auto (detected masks are drawn on the detected window)")
            folder = Path(args.out) / "data" / "mask"
            main_mask = _save_mask(detection.main_mask, folder / f"{clip_id}_prc_{probe}_frame0_mask.png")
            for index, mask in detection.frame_masks.items():
                frame_masks[index] = _save_mask(mask, folder / f"{clip_id}_prc_{probe}_frame{index}_mask.png")
            deleted += tuple((i, i) for i in detection.dropped_frames)
    if args.crop and args.crop != "auto":
        window = Window.parse(args.crop)
    if main_mask is not None and args.mask_dir:
        from processing.pixels.masks import find_mask

        main_mask = find_mask(main_mask.name, args.mask_dir, None) or main_mask
    if main_mask is not None and not main_mask.is_file():
        raise ClipError(f"clip {path}: mask file {main_mask} does not exist")
    plan = ClipPlan(clip_id=clip_id, probe=probe, window=window, main_mask=main_mask, frame_masks=frame_masks,
                    deleted=deleted, tight=args.tight)
    return plan, detection


def run(args: argparse.Namespace) -> int:
    from processing.pixels.pipeline import ProcessingOptions, process_clip

    options = ProcessingOptions(
        max_frames=args.max_frames,
        sample_hz=args.sample_hz,
        inpaint=args.inpaint,
        image_format=args.image_format,
        jpeg_quality=args.jpeg_quality,
        write_videos=not args.no_videos,
        mask_dirs=tuple(args.mask_dir),
    )
    failed = 0
    for path in args.clips:
        try:
            plan, detection = plan_and_detection(path, args)
            record = process_clip(path, plan, args.out, options)
        except CovidxError as exc:
            failed += 1
            print(f"{path}: FAILED: {exc}", file=sys.stderr)
            continue
        print(f"{path}: {record.frames_kept} frames written ({record.frames_read} read, "
              f"{record.frames_deleted} deleted, {record.frames_masked} inpainted), "
              f"crop {record.crop_size[0]}x{record.crop_size[1]}")
        if detection is not None:  # e.g. "sim: window 12,8,120,96 probe convex, masked 3.1%, 2 frame masks, ..."
            print(f"  detected: {detection.summary()}")
        if record.frames:
            print(f"  frames: {record.frames[0].path.parent}/{plan.clip_id}_prc_{plan.probe}_clean_frame<N>"
                  f"{record.frames[0].path.suffix}")
        for label, out in (("original", record.original_video), ("cropped", record.cropped_video),
                           ("clean", record.clean_video)):
            if out is not None:
                print(f"  {label}: {out}")
    if failed:
        print(f"{failed} of {len(args.clips)} clips failed", file=sys.stderr)
    return 1 if failed else 0
