"""The per-clip pipeline: probe -> crop -> select frames -> mask -> inpaint -> write images and videos.

A clip is decoded once when no ``max_frames`` cap is set (the header is enough to plan, frames are chosen while
they stream, the probe's checks run at the end of the same pass); with a cap it is probed first, then decoded.

I/O lives here, pixels are done by the pure functions of crop.py, masks.py, inpaint.py; frame choice by
frames.py. One clip is streamed frame by frame (bounded memory). Outputs follow the release layout under
``out_root``::

    data/video/original/<id><ext>                        copy of the source clip
    data/video/cropped/<id>_prc.mov                      every source frame, cropped
    data/video/clean/<id>_prc_<probe>_clean.mov          every kept (not deleted) frame, cropped and inpainted
    data/image/clean/<id>_prc_<probe>_clean_frame<N>.png selected frames (N = source frame number)

Videos are lossless (MagicYUV in .mov, see clips.VIDEO_CODEC) with the source fps and the source timestamps, so deleted
frames leave a gap in time rather than speeding the clip up. Every file is written to a temporary name and
renamed; frames go to a staging folder moved into place only after the whole clip succeeded, so a failure
leaves no partial output (and the previous run's outputs for that clip stay). No HTTP, no ``datasets``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from processing import progress
from processing.errors import ClipError, CovidxError, check_choice
from processing.fileutil import atomic_write, temp_prefix
from processing.pixels.clips import (
    VIDEO_SUFFIX,
    ClipHeader,
    ClipInfo,
    FrameReader,
    VideoWriter,
    probe_clip,
    probe_header,
)
from processing.pixels.crop import check_window, crop
from processing.pixels.frames import StreamSelector, is_deleted, select_frames
from processing.pixels.inpaint import METHODS, inpaint, margin, regions
from processing.pixels.masks import MaskSet, find_mask
from processing.pixels.png import encode_png
from processing.vocabulary import IMAGE_FORMATS, IMAGE_SUFFIXES
from processing.windows import Window

if TYPE_CHECKING:
    from processing.release.catalogue import Video

log = logging.getLogger(__name__)

WORKERS = max(2, min(4, os.cpu_count() or 1))  # threads inpainting and compressing frames (both release the GIL)
IMAGE_QUEUE = 2 * WORKERS + 2  # frames in flight: decoded, not yet in the clean video
STAGES = ("probe", "decode", "crop", "inpaint", "encode", "write")


@dataclass(frozen=True)
class ProcessingOptions:
    """How clips are processed. Validated on construction; errors list the valid values."""

    max_frames: int | None = None  # evenly spaced, deterministic
    sample_hz: float | None = None  # e.g. 3.0 (POCOVID)
    inpaint: str = "ns"  # "ns" | "telea"
    image_format: str = "png"  # "png" | "jpeg"
    jpeg_quality: int = 95
    write_videos: bool = True  # data/video/{original,cropped,clean}
    write_cropped: bool = True  # with write_videos: also the cropped (not inpainted) video; builds skip it
    mask_dirs: tuple[Path, ...] = ()  # user override folders, searched before the release masks

    def __post_init__(self) -> None:
        check_choice("inpaint", self.inpaint, tuple(METHODS))
        check_choice("image_format", self.image_format, IMAGE_FORMATS)
        if self.max_frames is not None and (not isinstance(self.max_frames, int) or self.max_frames < 1):
            raise CovidxError(f"invalid max_frames {self.max_frames!r}: must be a positive integer or None")
        if self.sample_hz is not None and not self.sample_hz > 0:
            raise CovidxError(f"invalid sample_hz {self.sample_hz!r}: must be a positive number or None")
        if not 1 <= self.jpeg_quality <= 100:
            raise CovidxError(f"invalid jpeg_quality {self.jpeg_quality!r}: must be 1..100")
        object.__setattr__(self, "mask_dirs", tuple(Path(p) for p in self.mask_dirs))


@dataclass(frozen=True)
class ClipPlan:
    """What to do with one clip; from a catalogue Video (:func:`plan_for_video`) or from ``covidx-us clean``."""

    clip_id: str
    probe: str
    window: Window | None = None
    main_mask: Path | None = None
    frame_masks: Mapping[int, Path] = field(default_factory=dict)
    deleted: tuple[tuple[int, int], ...] = ()
    tight: bool = False
    fov_mask: Path | None = None  # white = the field of view, drawn on the crop: outside it the clean frame is black

    def __post_init__(self) -> None:
        if not self.clip_id or "/" in self.clip_id or self.clip_id.startswith("."):
            raise CovidxError(f"invalid clip_id {self.clip_id!r}: must be a plain file-name stem")


def mask_name(video_id: str, probe: str, frame: int) -> str:
    """Release mask file name: ``<id>_prc_<probe>_frame<N>_mask.jpg``."""
    return f"{video_id}_prc_{probe}_frame{frame}_mask.jpg"


def clip_for_plan(path: Path | str, options: ProcessingOptions) -> ClipInfo | ClipHeader:
    """What planning a clip needs, as cheaply as :func:`process_clip` can use it: the header (no decode) when
    ``options`` stream (no ``max_frames``), else the full probe (``max_frames`` needs the frame count first;
    process_clip then reuses the remembered probe)."""
    return probe_header(path) if options.max_frames is None else probe_clip(path)


def plan_for_video(
    video: Video, release_mask_dir: Path, options: ProcessingOptions, clip: ClipInfo | ClipHeader,
) -> ClipPlan:
    """The plan for a catalogue video: its crop rule applied to the clip's real size, its masks resolved (user
    mask folders first, then the release's ``data/mask``), its deleted ranges and tightness. Only the clip's
    size (and path) is used, so a :class:`ClipHeader` (:func:`clip_for_plan`) does as well as a full probe.

    Raises :class:`ClipError` naming the video and file when a mask the release lists cannot be found.
    """
    plan = video.masks
    try:
        window = video.crop_rule.window(clip.width, clip.height)
    except CovidxError as exc:
        raise ClipError(f"video {video.id} ({clip.path}): {exc}") from exc

    def resolve(name: str) -> Path:
        found = find_mask(name, options.mask_dirs, release_mask_dir)
        if found is None:
            dirs = [str(d) for d in (*options.mask_dirs, release_mask_dir)]
            raise ClipError(f"video {video.id}: mask {name} not found in {', '.join(dirs)}")
        return found

    main_mask = None
    frame_masks: dict[int, Path] = {}
    if plan.needs_mask:
        if plan.main_mask:
            main_mask = resolve(plan.main_mask)
        for first, last in plan.frame_masks:
            for n in range(first, last + 1):
                frame_masks[n] = resolve(mask_name(video.id, video.probe, n))
    return ClipPlan(
        clip_id=video.id,
        probe=video.probe,
        window=window,
        main_mask=main_mask,
        frame_masks=frame_masks,
        deleted=tuple(plan.deleted),
        tight=bool(plan.tight),
    )


@dataclass(frozen=True)
class FrameRecord:
    index: int  # source frame number
    timestamp: float  # seconds from the clip's first frame
    path: Path  # the written image
    masked: bool  # inpainted


@dataclass(frozen=True)
class ProcessingRecord:
    clip_id: str
    frames_read: int
    frames_kept: int  # frames written as images
    frames_deleted: int  # frames in the deleted ranges
    frames_masked: int  # written images that were inpainted
    source_size: tuple[int, int]  # (w, h)
    crop_size: tuple[int, int]  # (w, h)
    fps: float
    frames: tuple[FrameRecord, ...]
    clean_video: Path | None
    timings: Mapping[str, float]  # seconds per stage: probe, decode, crop, inpaint, encode, write
    cropped_video: Path | None = None
    original_video: Path | None = None


def output_paths(out_root: Path, plan: ClipPlan, source: Path) -> dict[str, Path]:
    """Where the outputs of ``plan`` go under ``out_root``."""
    video = Path(out_root) / "data" / "video"
    return {
        "original": video / "original" / f"{plan.clip_id}{source.suffix.lower()}",
        "cropped": video / "cropped" / f"{plan.clip_id}_prc{VIDEO_SUFFIX}",
        "clean": video / "clean" / f"{plan.clip_id}_prc_{plan.probe}_clean{VIDEO_SUFFIX}",
        "images": Path(out_root) / "data" / "image" / "clean",
    }


def frame_name(plan: ClipPlan, index: int, image_format: str) -> str:
    return f"{plan.clip_id}_prc_{plan.probe}_clean_frame{index}{IMAGE_SUFFIXES[image_format]}"


def _save_image(image: np.ndarray, path: Path, options: ProcessingOptions) -> None:
    if options.image_format == "jpeg":
        Image.fromarray(image).save(path, format="JPEG", quality=options.jpeg_quality)
        return
    path.write_bytes(encode_png(image))  # lossless; libdeflate (processing/pixels/png.py)


def _clean_frame(
    image: np.ndarray, mask: np.ndarray | None, boxes: list, save_to: Path | None, options: ProcessingOptions,
    field: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float]:
    """Blank what lies outside the field of view (``field``: uint8, non-zero inside), inpaint one cropped frame and
    write its image (on a worker thread): ``(clean, inpaint_s, write_s)``. Outside the field nothing is anatomy:
    black, not a neighbour's pixels."""
    clock = time.perf_counter()
    if field is not None:
        # A fresh array: zeros, then the frame's pixels where the field is (one SIMD pass, not a boolean-index copy)
        image = cv2.copyTo(image, field)
    clean = inpaint(image, mask, options.inpaint, boxes=boxes) if mask is not None and boxes else image
    now = time.perf_counter()
    if save_to is not None:
        _save_image(clean, save_to, options)  # a view of the decoded frame when nothing was masked
    return clean, now - clock, time.perf_counter() - now


class _Mismatch(Exception):
    """The single pass found the clip other than its header said (size or mean rate): redo it in two passes."""


def process_clip(path: Path, plan: ClipPlan, out_root: Path, options: ProcessingOptions) -> ProcessingRecord:
    """Process one clip as ``plan`` says and write its outputs under ``out_root`` (see the module docstring).

    Without ``max_frames`` the clip is decoded once: the header gives the size and rate, frames are chosen while
    they stream (:class:`processing.pixels.frames.StreamSelector`) and the probe's checks (truncation, zero frames, the
    rate) run at the end of that pass, before anything is moved into place. Should the decoded clip differ from
    its header (frame size, mean GIF rate), that pass is thrown away and the clip processed again the two-pass
    way (full probe, then decode), so the outputs are always those of the two-pass path. With ``max_frames``
    the clip is probed first (it needs the frame count).

    Raises :class:`ClipError` naming the clip for an unreadable clip, a window outside the frame or a mask of the
    wrong size; nothing of this clip is written then.
    """
    path, out_root = Path(path), Path(out_root)
    if options.max_frames is None:
        clock = time.perf_counter()
        header = probe_header(path)
        probe_s = time.perf_counter() - clock
        if header.width > 0 and header.height > 0:
            try:
                return _process(path, plan, out_root, options, header, probe_s)
            except _Mismatch as exc:
                log.info("%s: %s; processing it again in two passes", path, exc)
    return _process(path, plan, out_root, options, None, 0.0)


class _Laps:
    """Adds the time since the previous lap to a stage of ``timings``: the per-stage clock of :func:`_process`."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] += now - self.clock
        self.clock = now

    def restart(self) -> None:
        self.clock = time.perf_counter()


@dataclass
class _Selection:
    """Which frames of the clip are kept: chosen while streaming (``header`` known) or from the probe's list."""

    plan: ClipPlan
    width: int
    height: int
    fps: float
    info: ClipInfo | None = None
    stream: StreamSelector | None = None
    selected: frozenset[int] = frozenset()

    @classmethod
    def of(cls, path: Path, plan: ClipPlan, options: ProcessingOptions, header: ClipHeader | None,
           timings: dict[str, float]) -> _Selection:
        if header is not None:
            return cls(plan, header.width, header.height, header.fps,
                       stream=StreamSelector(deleted=plan.deleted, sample_hz=options.sample_hz))
        clock = time.perf_counter()
        info = probe_clip(path)
        timings["probe"] = time.perf_counter() - clock
        selected = select_frames(info.timestamps, deleted=plan.deleted, sample_hz=options.sample_hz,
                                 max_frames=options.max_frames)
        return cls(plan, info.width, info.height, info.fps, info=info, selected=frozenset(selected))

    def wanted(self, frame) -> bool:
        """Whether ``frame``'s image is written (the stream checks each frame against the header)."""
        if self.stream is None:
            return frame.index in self.selected
        if frame.image.shape[:2] != (self.height, self.width):
            raise _Mismatch(f"frame {frame.index} is {frame.image.shape[1]}x{frame.image.shape[0]}, "
                            f"the header says {self.width}x{self.height}")
        return self.stream.keep(frame.index, frame.timestamp)

    def decoded(self, reader: FrameReader, frames_read: int, path: Path) -> ClipInfo:
        """The clip's :class:`ClipInfo` after the pass, checked against the header and the frames read."""
        assert reader.info is not None  # the reader raised otherwise
        info = self.info
        if info is None:
            info = reader.info  # the probe's result, from this same decode (truncation checks included)
            if (info.width, info.height, info.fps) != (self.width, self.height, self.fps):
                raise _Mismatch(f"decoded {info.width}x{info.height} at {info.fps} fps, "
                                f"the header said {self.width}x{self.height} at {self.fps} fps")
        if frames_read != info.frame_count:
            raise ClipError(f"clip {path}: decoded {frames_read} frames, the probe counted {info.frame_count}")
        return info

    def deleted_count(self, info: ClipInfo) -> int:
        if self.stream is not None:
            return self.stream.deleted
        return sum(is_deleted(i, self.plan.deleted) for i in range(info.frame_count))


class _Cleaner:
    """Inpaints and writes kept frames on WORKERS threads (both release the GIL), at most IMAGE_QUEUE frames ahead,
    and hands the clean frames in source order to the clean video's encoder."""

    def __init__(self, stack: contextlib.ExitStack, masks: MaskSet, options: ProcessingOptions,
                 clean_video: _Encoder | None, timings: dict[str, float]) -> None:
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="covidx-frame")
        stack.callback(self.pool.shutdown, wait=True, cancel_futures=True)
        self.masks, self.options, self.clean_video, self.timings = masks, options, clean_video, timings
        self.field = None if masks.outside is None else (~masks.outside).view(np.uint8)  # cv2.copyTo: 1 = keep
        self.boxes: tuple[np.ndarray | None, list] = (None, [])
        self.in_flight: deque[tuple[Future, float]] = deque()  # (clean frame, timestamp) in source order

    def submit(self, index: int, image: np.ndarray, timestamp: float, save_to: Path | None) -> bool:
        """Queue frame ``index`` (cropped ``image``); True when it has a mask to inpaint."""
        mask = self.masks.for_frame(index)
        if mask is not None and self.boxes[0] is not mask:  # the main mask is reused: find its regions once
            self.boxes = (mask, regions(mask, margin()))
        masked = mask is not None and bool(self.boxes[1])  # no region <=> an empty mask
        self.in_flight.append((self.pool.submit(_clean_frame, image, mask if masked else None, self.boxes[1],
                                                save_to, self.options, self.field), timestamp))
        while len(self.in_flight) >= IMAGE_QUEUE:
            self._finish_one()
        return masked

    def _finish_one(self) -> None:
        future, timestamp = self.in_flight.popleft()
        clean, inpaint_s, write_s = future.result()  # re-raises a failed inpaint or image write
        self.timings["inpaint"] += inpaint_s
        self.timings["write"] += write_s
        if self.clean_video is not None:
            self.timings["encode"] += self.clean_video.submit(clean, timestamp)

    def drain(self) -> None:
        while self.in_flight:
            self._finish_one()


def _open_videos(stack: contextlib.ExitStack, outputs: dict[str, Path], options: ProcessingOptions,
                 crop_size: tuple[int, int], fps: float) -> dict[str, _Encoder]:
    """The cropped and clean videos' encoders, each on a thread of its own (one slice each, see VideoWriter; the
    encoder releases the GIL), written to temporary files that are discarded unless the clip completes."""
    writers: dict[str, _Encoder] = {}
    if options.write_videos:
        for kind in ("cropped", "clean") if options.write_cropped else ("clean",):
            temp = stack.enter_context(atomic_write(outputs[kind]))
            writers[kind] = _Encoder(stack.enter_context(VideoWriter(temp, *crop_size, fps)), kind)
            stack.callback(writers[kind].shutdown)
    return writers


def _process(path: Path, plan: ClipPlan, out_root: Path, options: ProcessingOptions, header: ClipHeader | None,
             probe_s: float) -> ProcessingRecord:
    """One pass over the decoded frames: read -> crop -> mask -> inpaint -> write. ``header`` given: the single-pass
    way (selection while streaming, the clip's :class:`ClipInfo` from the same decode); None: probe first, then
    select from the full timestamp list."""
    timings = dict.fromkeys(STAGES, 0.0)
    timings["probe"] = probe_s
    selection = _Selection.of(path, plan, options, header, timings)
    if plan.window is not None:
        check_window(plan.window, selection.width, selection.height, path)
    crop_size = plan.window.size if plan.window is not None else (selection.width, selection.height)
    masks = MaskSet(path, crop_size, plan.main_mask, plan.frame_masks, plan.tight, fov_mask=plan.fov_mask)
    outputs = output_paths(out_root, plan, path)
    outputs["images"].mkdir(parents=True, exist_ok=True)
    records: list[FrameRecord] = []
    frames_read = 0
    reader = FrameReader(path)
    with contextlib.ExitStack() as stack:
        # Decoding and cropping run here; everything else on threads (see _Cleaner, _Encoder). All pools are shut
        # down (queued work cancelled, running work finished) before the video writers close and the staging
        # folder goes.
        staging = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix=temp_prefix(plan.clip_id), dir=outputs["images"])
        ))
        writers = _open_videos(stack, outputs, options, crop_size, selection.fps)
        cleaner = _Cleaner(stack, masks, options, writers.get("clean"), timings)
        frames = stack.enter_context(contextlib.closing(iter(reader)))  # closed early when a check fails
        frame_bar = progress.bar(desc=plan.clip_id,
                                 total=selection.info.frame_count if selection.info is not None else None)
        stack.callback(frame_bar.close)
        laps = _Laps(timings)
        for frame in frames:
            laps.lap("decode")
            frames_read += 1
            frame_bar.update(1)
            keep = not is_deleted(frame.index, plan.deleted)
            wanted = selection.wanted(frame)
            image = crop(frame.image, plan.window)
            laps.lap("crop")
            if "cropped" in writers:
                timings["encode"] += writers["cropped"].submit(image, frame.timestamp)
            if keep and (wanted or writers):
                name = frame_name(plan, frame.index, options.image_format)
                masked = cleaner.submit(frame.index, image, frame.timestamp, staging / name if wanted else None)
                if wanted:
                    records.append(FrameRecord(frame.index, frame.timestamp, outputs["images"] / name, masked))
            laps.restart()
        cleaner.drain()
        for writer in writers.values():
            timings["encode"] += writer.drain()
        info = selection.decoded(reader, frames_read, path)
        laps.restart()
        for writer in writers.values():
            writer.video.close()  # flush inside the stack so a failing flush still discards the temp files
        if options.write_videos:
            with atomic_write(outputs["original"]) as tmp:
                shutil.copyfile(path, tmp)
        _replace_images(outputs["images"], plan, staging)
        laps.lap("write")
    log.info("%s: %d frames read, %d written", plan.clip_id, frames_read, len(records))
    return ProcessingRecord(
        clip_id=plan.clip_id,
        frames_read=frames_read,
        frames_kept=len(records),
        frames_deleted=selection.deleted_count(info),
        frames_masked=sum(r.masked for r in records),
        source_size=(info.width, info.height),
        crop_size=crop_size,
        fps=info.fps,
        frames=tuple(records),
        clean_video=outputs["clean"] if options.write_videos else None,
        timings=timings,
        cropped_video=outputs["cropped"] if "cropped" in writers else None,
        original_video=outputs["original"] if options.write_videos else None,
    )


class _Encoder:
    """One video written on a thread of its own, frames in the order given, at most IMAGE_QUEUE waiting."""

    def __init__(self, video: VideoWriter, kind: str) -> None:
        self.video = video
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"covidx-{kind}")  # one: in order
        self._pending: deque[Future] = deque()

    def _write(self, image: np.ndarray, timestamp: float) -> float:
        clock = time.perf_counter()
        self.video.write(image, timestamp)
        return time.perf_counter() - clock

    def submit(self, image: np.ndarray, timestamp: float) -> float:
        """Queue a frame; the seconds spent encoding the frames that had to finish to make room for it."""
        self._pending.append(self._thread.submit(self._write, image, timestamp))
        spent = 0.0
        while len(self._pending) >= IMAGE_QUEUE:
            spent += self._pending.popleft().result()  # re-raises a failed encode
        return spent

    def drain(self) -> float:
        spent = 0.0
        while self._pending:
            spent += self._pending.popleft().result()
        return spent

    def shutdown(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)


def _replace_images(folder: Path, plan: ClipPlan, staging: Path) -> None:
    """Swap this clip's previous frame images for the staged ones (renames within one folder)."""
    prefix = f"{plan.clip_id}_prc_{plan.probe}_clean_frame"
    for old in folder.glob(f"{prefix}*"):
        if old.suffix in IMAGE_SUFFIXES.values() and old.stem[len(prefix):].isdigit():
            old.unlink()
    for staged in staging.iterdir():
        staged.replace(folder / staged.name)
