"""``covidx-us clean``: crop, mask and inpaint a user's own clips exactly as the release clips are processed.

Each clip is processed on its own: a bad clip, or an operating-system error while writing it (a full disk),
reports one line and the others still complete; the exit code is 1 when any clip failed, and the last line says
how many. Two clips that would write the same outputs (the same file name stem, e.g. ``a/x.mp4`` and ``b/x.avi``)
are refused before anything is written, naming both. Temporary files an interrupted run left in ``--out`` are
removed when the next run starts. ``--crop auto`` / ``--mask auto`` ask :mod:`processing.pixels.autodetect` (when installed)
for the window and the overlay masks; detected masks are written to ``<output>/data/mask/`` as PNG and used from
there, so a run can be inspected and repeated with ``--mask``. With detection, each clip's line is followed by
what was detected: the window ``x,y,w,h``, the inferred probe and how many frames got their own (pointer) mask or
were dropped. ``--pointer-policy`` says what a detected pointer over the lung does: ``drop`` (the default, as the
release's hand-made masks and the builds do: the frame is left out) or ``mask`` (the pointer is inpainted and the
frame kept). Cuts to another scene and blank frames are always left out, and so counted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from processing.errors import ClipError, CovidxError, finite_float, os_error_message
from processing.fileutil import atomic_write, path_problem, sweep_leftovers, temp_prefix, untemp
from processing.vocabulary import IMAGE_FORMATS, INPAINT_METHODS, POINTER_POLICIES, PROBES
from processing.windows import Window

if TYPE_CHECKING:
    import numpy as np

    from processing.pixels.pipeline import ClipPlan

PROBE_CHOICES = (*PROBES, "unknown")  # "unknown": as detected with --crop auto, else named so in file names


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
    parser.add_argument("--pointer-policy", default="drop", choices=POINTER_POLICIES,
                        help="with --mask auto, a frame whose detected pointer touches the lung: drop (default: "
                        "leave the frame out, as the release did) or mask (inpaint the pointer, keep the frame)")
    parser.add_argument("--tight", action="store_true", help="dilate masks 1x1 instead of 5x5")
    parser.add_argument("--delete", default="", metavar="A-B,C", help="source frame ranges to drop (inclusive)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="at most N evenly spaced frames per clip")
    parser.add_argument("--fps", type=finite_float, dest="sample_hz", metavar="HZ", help="sample frames at HZ per second")
    parser.add_argument("--inpaint", default="ns", choices=INPAINT_METHODS, help="inpainting method (default ns)")
    parser.add_argument("--image-format", default="png", choices=IMAGE_FORMATS, help="frame format")
    parser.add_argument("--jpeg-quality", type=int, default=95, metavar="Q", help="JPEG quality 1-100")
    parser.add_argument("--probe", default="unknown", choices=PROBE_CHOICES, help="probe named in output file names")
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


def clip_id_of(path: Path) -> str:
    """The id a clip's outputs are named by: its file name stem, spaces made underscores."""
    return path.stem.replace(" ", "_")


def plan_for_clip(path: Path, args: argparse.Namespace) -> ClipPlan:
    """The :class:`ClipPlan` for one user clip from the command-line arguments (runs detection when asked)."""
    return plan_and_detection(path, args)[0]


def plan_and_detection(path: Path, args: argparse.Namespace) -> tuple[ClipPlan, Any]:
    """:func:`plan_for_clip` and the :class:`processing.pixels.autodetect.Detection` it used (None without auto)."""
    from processing.pixels.frames import parse_ranges
    from processing.pixels.pipeline import ClipPlan

    detection = None
    clip_id = clip_id_of(path)
    probe = args.probe
    window = None
    main_mask = Path(args.mask) if args.mask and args.mask != "auto" else None
    frame_masks: dict[int, Path] = {}
    fov_mask: Path | None = None
    deleted = parse_ranges(args.delete, "--delete")
    if args.crop == "auto" or args.mask == "auto":
        detection = _autodetect().detect_clip(path, clip_id=clip_id,
                                              pointer_policy=getattr(args, "pointer_policy", "drop"))
        if probe == "unknown":
            probe = detection.probe
        if args.crop == "auto":
            window = detection.window
        # Cuts to another scene and blank frames are not training data, whatever the masks.
        deleted += tuple((i, i) for i in sorted(detection.unusable_frames))
        if args.mask == "auto":
            if args.crop != "auto":
                raise CovidxError("--mask auto needs --crop auto (detected masks are drawn on the detected window)")
            folder = Path(args.out) / "data" / "mask"
            # the main mask has a name of its own: a pointer mask of frame 0 must not replace it
            main_mask = _save_mask(detection.main_mask, folder / f"{clip_id}_prc_{probe}_main_mask.png")
            for index, mask in detection.frame_masks.items():
                frame_masks[index] = _save_mask(mask, folder / f"{clip_id}_prc_{probe}_frame{index}_mask.png")
            deleted += tuple((i, i) for i in detection.dropped_frames)
            if detection.fov_mask is not None and not detection.fov_mask.all():  # black outside the field
                fov_mask = _save_mask(detection.fov_mask, folder / f"{clip_id}_prc_{probe}_fov_mask.png")
    if args.crop and args.crop != "auto":
        window = Window.parse(args.crop)
    if main_mask is not None and args.mask_dir:
        from processing.pixels.masks import find_mask

        main_mask = find_mask(main_mask.name, args.mask_dir, None) or main_mask
    if main_mask is not None and (problem := path_problem(main_mask, "file")):
        raise ClipError(f"clip {path}: mask {problem}")
    plan = ClipPlan(clip_id=clip_id, probe=probe, window=window, main_mask=main_mask, frame_masks=frame_masks,
                    deleted=deleted, tight=args.tight, fov_mask=fov_mask)
    return plan, detection


def distinct_clips(clips: list[Path]) -> list[Path]:
    """``clips`` without repeats of one file; :class:`CovidxError` naming both paths when two different files would
    write the same outputs (their clip ids are equal)."""
    by_id: dict[str, Path] = {}
    kept = []
    for path in clips:
        first = by_id.setdefault(clip_id_of(path), path)
        if first is path:
            kept.append(path)
        elif first.resolve() != path.resolve():
            raise CovidxError(f"{first} and {path} would write the same outputs (clip id {clip_id_of(path)!r}); "
                              "rename one or clean them into different --out folders. Nothing was written")
    return kept


def prepare_output(out: Path) -> None:
    """Make sure ``out`` is a folder this process can write to, and sweep what an interrupted run left in it."""
    if out.exists() and not out.is_dir():
        raise CovidxError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=temp_prefix("write-probe"), dir=out)  # can we write here at all?
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        exc.filename = str(out)  # the folder, not the probe's name
        raise CovidxError(f"--out {os_error_message(exc)}") from None
    data = out / "data"
    sweep_leftovers([data / "image" / "clean", data / "mask",
                     *(data / "video" / kind for kind in ("original", "cropped", "clean"))])


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
    clips = distinct_clips(list(args.clips))
    for folder in args.mask_dir:
        if problem := path_problem(folder, "folder"):
            raise CovidxError(f"--mask-dir {problem}")
    prepare_output(Path(args.out))
    failed = 0
    for path in clips:
        try:
            if problem := path_problem(path, "file"):
                raise ClipError(problem)
            plan, detection = plan_and_detection(path, args)
            record = process_clip(path, plan, args.out, options)
        except CovidxError as exc:
            failed += 1
            print(f"{path}: FAILED: {exc}", file=sys.stderr)
            continue
        except OSError as exc:  # e.g. the disk is full: this clip is lost, the next one may still fit
            failed += 1
            print(f"{path}: FAILED: {os_error_message(untemp(exc), args.out)}", file=sys.stderr)
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
        others = "; the others were written" if failed < len(clips) else ""
        print(f"{failed} of {len(clips)} clips failed{others}", file=sys.stderr)
    return 1 if failed else 0
