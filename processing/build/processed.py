"""One clip of a build, from its verified download to its processed record on disk (the builder's clip cache).

A :class:`ClipJob` says everything one clip needs: the catalogue video, the downloaded file, the release mask folder,
the processing options, where the processed cache lies and how crops and masks are chosen:

- ``crop="release"``: the release's crop rule on the clip's real size; ``"auto"``: the window
  :func:`processing.pixels.autodetect.detect_clip` finds.
- ``masks="release"``: the release's hand-drawn masks and deleted frames, each replaced by a user mask file of the
  same name found in ``options.mask_dirs`` (searched in order); ``"auto"``: the detected overlays (main mask,
  per-frame pointer masks; a frame with a pointer over the lung dropped as the release did, or its pointer masked,
  per ``pointer_policy``); ``"both"``: the union of the two (and of their deleted frames).

The fingerprint holds the digests of the user masks a clip uses, so adding or changing one redoes only that clip.

A video without a crop rule or mask plan (a custom catalogue) falls back to ``auto`` for that part. Masks are moved
between windows in source-frame pixels, so release masks work under an automatic crop and vice versa. Masks that are
not the release's own files are written as PNG under ``<out_root>/data/mask/<video id>/`` and used from there.

:func:`run_job` processes the clip (:func:`processing.pixels.pipeline.process_clip`) and writes
``<out_root>/records/<video id>.json`` atomically, *after* every output file is in place: a record on disk always
describes complete outputs, so a build killed at any point resumes by redoing only the clips without a valid record
(:func:`cached_record`). Everything here is module-level and picklable, so a process pool can run it
(:func:`init_worker`). Must not know ``datasets`` or HTTP; it reads only the files a job names.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from processing.errors import ClipError, CovidxError, check_choice
from processing.fileutil import atomic_write, folder_bytes, json_digest
from processing.vocabulary import CROP_MODES, MASK_MODES, POINTER_POLICIES
from processing.windows import Window

if TYPE_CHECKING:  # the pipeline (OpenCV, PyAV) is imported on first use: the builder imports this module eagerly
    from processing.pixels.autodetect import Detection
    from processing.pixels.copymap import CopyMap
    from processing.pixels.pipeline import ClipPlan, ProcessingOptions, ProcessingRecord
    from processing.release.catalogue import Video

log = logging.getLogger(__name__)

RECORD_FORMAT = 2  # bump when the record's JSON layout changes (old records are then redone)
# What to do with a frame whose detected pointer touches the lung (POINTER_POLICIES, from processing.vocabulary, as
# processing.pixels.autodetect.POINTER_POLICIES): mask it, or drop the frame.
COPY_PLANS = ("mapped", "auto")
POINTER_POLICY = "drop"  # the builds' default: a pointer over the lung drops its frame, as the release did


@dataclass(frozen=True)
class ClipJob:
    """One clip to process; see the module docstring."""

    video: Video
    source: Path  # the verified download
    source_sha256: str | None
    mask_dir: Path  # the release's data/mask folder
    out_root: Path  # the processed cache for these processing options
    options: ProcessingOptions
    crop: str = "release"
    masks: str = "release"
    official: bool = True
    need_video: bool = True  # a cached record without the clean video does not do (a videos-* config needs it)
    pointer_policy: str = POINTER_POLICY  # detected pointers over the lung: "mask" or "drop" (auto/both masks)
    # A public copy instead of the original file: "mapped" (the release's plan moved into the copy by ``copy``) or
    # "auto" (the copy's place in the original is unknown: the builder asks for the automatic crop and masks).
    copy_plan: str | None = None
    copy: CopyMap | None = None

    def __post_init__(self) -> None:
        check_choice("crop", self.crop, CROP_MODES)
        if self.copy_plan is not None:
            check_choice("copy_plan", self.copy_plan, COPY_PLANS)
            if (self.copy_plan == "mapped") != (self.copy is not None):
                raise CovidxError(f"video {self.video.id}: copy_plan {self.copy_plan!r} needs a copy map exactly "
                                  "when 'mapped'")
        check_choice("masks", self.masks, MASK_MODES)
        check_choice("pointer_policy", self.pointer_policy, POINTER_POLICIES)

    @property
    def crop_mode(self) -> str:
        """The crop mode used for this video (``auto`` when the video has no crop rule)."""
        return self.crop if getattr(self.video, "crop_rule", None) is not None else "auto"

    @property
    def mask_mode(self) -> str:
        """The mask mode used for this video (``auto`` when the video has no mask plan)."""
        return self.masks if getattr(self.video, "masks", None) is not None else "auto"

    @property
    def record_path(self) -> Path:
        return self.out_root / "records" / f"{self.video.id}.json"

    def fingerprint(self) -> str:
        """What the processed outputs depend on besides the options (those pick ``out_root``)."""
        video = self.video
        parts: dict[str, Any] = {
            "format": RECORD_FORMAT, "source": self.source_sha256, "official": self.official,
            "crop": self.crop_mode, "masks": self.mask_mode, "mask_dir": str(self.mask_dir),
            "crop_rule": repr(getattr(video, "crop_rule", None)), "mask_plan": repr(getattr(video, "masks", None)),
        }
        if "auto" in (self.crop_mode, self.mask_mode) or self.mask_mode == "both":
            parts["autodetect"] = _autodetect_digest()  # a better detector redoes the automatic clips
        if self.mask_mode in ("auto", "both"):
            parts["pointer_policy"] = self.pointer_policy
        if self.copy_plan is not None:  # only for copies, so the caches of originals stay valid
            parts["copy"] = [self.copy_plan, repr(self.copy)]
        overrides = self.mask_overrides()
        if overrides:  # only then, so caches made before user masks existed stay valid
            parts["mask_overrides"] = overrides
        return json_digest(parts)

    def mask_overrides(self) -> dict[str, str]:
        """Release mask name -> sha256 of the user mask file (``options.mask_dirs``) that replaces it, for the
        masks this clip's release plan uses (none when its release masks are not used)."""
        from processing.pixels.masks import find_mask

        plan = getattr(self.video, "masks", None)
        dirs = self.options.mask_dirs
        if not dirs or plan is None or not plan.needs_mask or self.mask_mode not in ("release", "both"):
            return {}
        out = {}
        for name in plan.mask_names(self.video.id, self.video.probe):
            found = find_mask(name, dirs, None)
            if found is not None:
                out[name] = hashlib.sha256(found.read_bytes()).hexdigest()
        return out


KEY_FILE = "key.json"  # in each processed cache folder: the processing key that named it
_FOLDER, _NAME_LENGTH = "processed", 16  # work_dir/processed/<16 hex digits of the key's digest>


def cache_root(work_dir: Path, key: dict[str, Any]) -> Path:
    """The processed cache folder of the processing ``key`` in ``work_dir``: ``processed/<16 hex digits>``."""
    return Path(work_dir) / _FOLDER / json_digest(key)[:_NAME_LENGTH]


def mark_cache(out_root: Path, key: dict[str, Any]) -> None:
    """Write ``out_root/key.json``, the processing key (with its ``format``) that names this cache folder, unless
    it already says the same: :func:`stale_caches` tells the folders of older processing formats by it."""
    path = Path(out_root) / KEY_FILE
    text = json.dumps(key, sort_keys=True, default=str, indent=1) + "\n"
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def stale_caches(work_dir: Path, current_format: int) -> list[tuple[Path, int]]:
    """The processed cache folders in ``work_dir`` that this version of covidx-us never reads again, with their
    size in bytes: those whose ``key.json`` names an older processing format, or that have none (folders made
    before key files existed). Folders of the current or a newer format, other parameters included, are kept.
    Only folders named as :func:`cache_root` names them are considered."""
    out = []
    processed_dir = Path(work_dir) / _FOLDER
    if not processed_dir.is_dir():
        return out
    for folder in sorted(processed_dir.iterdir()):
        name = folder.name
        if not folder.is_dir() or len(name) != _NAME_LENGTH or any(c not in "0123456789abcdef" for c in name):
            continue
        try:
            fmt = json.loads((folder / KEY_FILE).read_text()).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if not isinstance(fmt, int) or fmt < current_format:
            out.append((folder, folder_bytes(folder)))
    return out


@functools.cache
def _autodetect_digest() -> str:
    from processing.pixels import autodetect

    return hashlib.sha256(Path(autodetect.__file__).read_bytes()).hexdigest()[:16]


def cached_record(job: ClipJob) -> dict[str, Any] | None:
    """The record of ``job`` from the cache when it is complete and made from the same inputs, else None."""
    path = job.record_path
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != job.fingerprint():
        return None
    record = data.get("record") or {}
    if job.need_video and not record.get("clean_video"):
        return None
    files = [frame[2] for frame in record.get("frames", ())]
    files += [record.get("clean_video")] if record.get("clean_video") else []
    if not all(Path(f).is_file() for f in files):
        return None
    return data


def run_job(job: ClipJob) -> dict[str, Any]:
    """Plan and process one clip, write its record (last, atomically) and return it.

    Raises :class:`ClipError` naming the video for an unreadable clip, a missing mask or a clip without a field of
    view (auto modes); nothing is recorded then.
    """
    from processing.pixels.clips import probe_clip
    from processing.pixels.pipeline import clip_for_plan, process_clip

    _remove_leftovers(job)
    clock = time.perf_counter()
    info = clip_for_plan(job.source, job.options)  # the header when process_clip decodes the clip once
    plan, summary = _plan(job, info)
    detect_s = time.perf_counter() - clock
    record = process_clip(job.source, plan, job.out_root, job.options)
    if record.source_size != (info.width, info.height):  # a header that misstated the size: plan on the real one
        clock = time.perf_counter()
        plan, summary = _plan(job, probe_clip(job.source))
        detect_s += time.perf_counter() - clock
        record = process_clip(job.source, plan, job.out_root, job.options)
    if job.need_video and record.clean_video is None:
        raise ClipError(f"video {job.video.id}: processing wrote no clean video (write_videos is off)")
    data = {"format": RECORD_FORMAT, "fingerprint": job.fingerprint(), "video_id": job.video.id,
            "plan": summary, "record": record_dict(record, plan_s=detect_s)}
    with atomic_write(job.record_path) as tmp:
        tmp.write_text(json.dumps(data), encoding="utf-8")
    return data


def _remove_leftovers(job: ClipJob) -> None:
    """Remove the temporary files and staging folders a killed run of this clip left in the cache.

    Only this clip's (their names start with ``.<video id>``); one build processes a clip in one process at a time.
    """
    for folder in (job.out_root / "data" / "image" / "clean", *(job.out_root / "data" / "video" / kind
                                                               for kind in ("original", "cropped", "clean")),
                   job.record_path.parent):
        for leftover in folder.glob(f".{job.video.id}[._]*tmp-*") if folder.is_dir() else ():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def record_dict(record: ProcessingRecord, *, plan_s: float = 0.0) -> dict[str, Any]:
    """A :class:`ProcessingRecord` as JSON-ready data (the build record's ``record`` entry)."""
    return {
        "frames_read": record.frames_read, "frames_kept": record.frames_kept,
        "frames_deleted": record.frames_deleted, "frames_masked": record.frames_masked,
        "source_size": list(record.source_size), "crop_size": list(record.crop_size), "fps": record.fps,
        "clean_video": str(record.clean_video) if record.clean_video else None,
        "frames": [[f.index, f.timestamp, str(f.path), f.masked] for f in record.frames],
        "timings": {"plan": round(plan_s, 4), **{k: round(v, 4) for k, v in record.timings.items()}},
    }


# ---- plans


def _plan(job: ClipJob, info: Any) -> tuple[ClipPlan, dict[str, Any]]:
    from processing.pixels.pipeline import ClipPlan, mask_name

    video = job.video
    crop_mode, mask_mode = job.crop_mode, job.mask_mode
    release = _release_plan(job, info) if (crop_mode == "release" or mask_mode in ("release", "both")) else None
    if crop_mode == "release" and mask_mode == "release":
        assert release is not None
        return release, _summary(release, crop_mode, mask_mode, job.copy_plan)
    detection = _detect(job)
    window = release.window if crop_mode == "release" and release is not None else detection.window
    assert window is not None
    use_release = release is not None and mask_mode in ("release", "both")
    use_auto = mask_mode in ("auto", "both")

    def moved(mask: np.ndarray, source_window: Window) -> np.ndarray:
        return move_mask(mask, source_window, window)

    main = np.zeros((window.h, window.w), bool)
    frames: dict[int, np.ndarray] = {}
    deleted: list[tuple[int, int]] = []
    if use_release:
        from processing.pixels.crop import fit_mask
        from processing.pixels.masks import read_mask

        assert release is not None and release.window is not None
        size = release.window.size
        if release.main_mask is not None:
            main |= moved(fit_mask(read_mask(release.main_mask), size, job.source, release.main_mask), release.window)
        for index, path in release.frame_masks.items():
            frames[index] = moved(fit_mask(read_mask(path), size, job.source, path), release.window)
        deleted += release.deleted
    if use_auto:
        main |= moved(detection.main_mask, detection.window)
        for index, mask in detection.frame_masks.items():
            own = moved(mask, detection.window)
            frames[index] = frames[index] | own if index in frames else own
        deleted += frame_ranges(detection.dropped_frames)
    if detection.unusable_frames:  # cuts and blank frames are never training data, whichever masks are used
        deleted += frame_ranges(detection.unusable_frames)
    # The release's tight flag holds for its own masks; detected masks already include their rims but are grown
    # 5x5 as every release mask is.
    tight = bool(release.tight) if (release is not None and mask_mode == "release") else False
    folder = job.out_root / "data" / "mask" / video.id
    shutil.rmtree(folder, ignore_errors=True)  # masks of an earlier plan of this clip
    main_path = _save_mask(main, folder / f"{video.id}_prc_{video.probe}_main_mask.png") if main.any() else None
    frame_paths = {i: _save_mask(m, folder / mask_name(video.id, video.probe, i).replace(".jpg", ".png"))
                   for i, m in sorted(frames.items())}
    fov_path = None
    if use_auto and detection.fov_mask is not None:  # blank what lies outside the detected field of view
        fov = moved(detection.fov_mask, detection.window)
        if not fov.all():
            fov_path = _save_mask(fov, folder / f"{video.id}_prc_{video.probe}_fov_mask.png")
    plan = ClipPlan(clip_id=video.id, probe=video.probe, window=window, main_mask=main_path,
                    frame_masks=frame_paths, deleted=merge_ranges(deleted), tight=tight, fov_mask=fov_path)
    summary = _summary(plan, crop_mode, mask_mode, job.copy_plan)
    summary["detected"] = {"window": list(_xywh(detection.window)), "probe": detection.probe,
                           "frame_masks": len(detection.frame_masks), "dropped": len(detection.dropped_frames),
                           "unusable": {str(i): why for i, why in sorted(detection.unusable_frames.items())}}
    return plan, summary


def _detect(job: ClipJob) -> Detection:
    from processing.pixels.autodetect import detect_clip

    try:
        return detect_clip(job.source, clip_id=job.video.id, pointer_policy=job.pointer_policy)
    except ClipError:
        raise
    except CovidxError as exc:
        raise ClipError(f"video {job.video.id}: automatic crop/masks failed: {exc}") from exc


def _xywh(window: Window) -> tuple[int, int, int, int]:
    return window.x, window.y, window.w, window.h


def _release_plan(job: ClipJob, info: Any) -> ClipPlan:
    """The release's plan for the clip: as it is for an original, moved into the copy's pixels and frames for a
    mapped copy (crop offset and scale; frame offset, or timestamps where the frame rate changed)."""
    from processing.pixels.crop import fit_mask
    from processing.pixels.masks import read_mask
    from processing.pixels.pipeline import ClipPlan, plan_for_video

    video, copy = job.video, job.copy
    if copy is None:
        return plan_for_video(video, job.mask_dir, job.options, info)
    original_size = _Size(video.expected.width, video.expected.height, job.source)
    original = plan_for_video(video, job.mask_dir, job.options, original_size)
    assert original.window is not None
    try:
        window = copy.window(original.window)
    except CovidxError as exc:
        raise ClipError(f"video {video.id}: {exc}") from exc
    folder = job.out_root / "data" / "mask" / f"{video.id}.copy"
    shutil.rmtree(folder, ignore_errors=True)  # masks of an earlier plan of this clip

    def mapped(path: Path, name: str) -> Path:
        mask = fit_mask(read_mask(path), original.window.size, job.source, path)
        return _save_mask(copy.mask(mask, original.window), folder / name)

    main = mapped(original.main_mask, "main_mask.png") if original.main_mask is not None else None
    frame_masks: dict[int, Path] = {}
    saved: dict[int, Path] = {}
    for k, n in copy.frame_sources().items():
        if n in original.frame_masks:
            if n not in saved:
                saved[n] = mapped(original.frame_masks[n], f"original_frame{n}_mask.png")
            frame_masks[k] = saved[n]
    return ClipPlan(clip_id=video.id, probe=video.probe, window=window, main_mask=main, frame_masks=frame_masks,
                    deleted=copy.deleted(original.deleted), tight=original.tight)


@dataclass(frozen=True)
class _Size:
    """The original's size, for planning the release's crop on a clip we hold only a copy of."""

    width: int
    height: int
    path: Path


def _summary(plan: ClipPlan, crop_mode: str, mask_mode: str, copy_plan: str | None = None) -> dict[str, Any]:
    return {
        **({"copy": copy_plan} if copy_plan else {}),
        "window": list(_xywh(plan.window)) if plan.window is not None else None,
        "crop": crop_mode, "masks": mask_mode,
        "main_mask": str(plan.main_mask) if plan.main_mask is not None else None,
        "fov_mask": str(plan.fov_mask) if plan.fov_mask is not None else None,
        "frame_masks": {str(i): str(p) for i, p in sorted(plan.frame_masks.items())},
        "deleted": [list(r) for r in plan.deleted], "tight": plan.tight,
    }


def _save_mask(mask: np.ndarray, path: Path) -> Path:
    with atomic_write(path) as tmp:
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp, format="PNG")
    return path


def move_mask(mask: np.ndarray, source: Window, target: Window) -> np.ndarray:
    """``mask`` drawn on window ``source`` re-expressed on window ``target`` (both in source-frame pixels).

    Pixels of ``target`` outside ``source`` are False; pixels of ``source`` outside ``target`` are cut away.
    """
    if mask.shape != (source.h, source.w):
        raise CovidxError(f"mask of shape {mask.shape} does not match its window {source} (h, w = {source.h}, "
                          f"{source.w})")
    out = np.zeros((target.h, target.w), bool)
    x0, y0 = max(source.x, target.x), max(source.y, target.y)
    x1, y1 = min(source.x + source.w, target.x + target.w), min(source.y + source.h, target.y + target.h)
    if x1 > x0 and y1 > y0:
        out[y0 - target.y:y1 - target.y, x0 - target.x:x1 - target.x] = \
            mask[y0 - source.y:y1 - source.y, x0 - source.x:x1 - source.x]
    return out


def frame_ranges(frames: Any) -> list[tuple[int, int]]:
    """Sorted frame numbers as inclusive ranges: (3, 4, 5, 9) -> [(3, 5), (9, 9)]."""
    out: list[tuple[int, int]] = []
    for n in sorted(set(frames)):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def merge_ranges(ranges: Any) -> tuple[tuple[int, int], ...]:
    """Inclusive ranges merged where they overlap or touch, sorted."""
    out: list[tuple[int, int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple(out)


# ---- process pool workers


def init_worker(parent_pid: int) -> None:
    """Process-pool initializer: one OpenCV thread per worker, and exit when the build process dies.

    A build killed with SIGKILL cannot stop its workers; each worker notices its parent is gone within half a
    second and exits, so no orphan keeps writing into the cache while the next build runs.
    """
    import cv2

    cv2.setNumThreads(1)
    os.environ["COVIDX_US_PROGRESS"] = "0"  # per-frame bars from several processes would garble the terminal

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="covidx-parent-watch", daemon=True).start()


__all__ = ["CROP_MODES", "COPY_PLANS", "MASK_MODES", "POINTER_POLICIES", "POINTER_POLICY", "ClipJob", "cached_record", "run_job", "record_dict", "move_mask",
           "frame_ranges", "merge_ranges", "init_worker"]
