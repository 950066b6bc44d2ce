"""Clip I/O: read mp4, gif, avi, mov and wmv frame by frame, and write lossless cropped/clean videos.

Reading decodes one frame at a time with PyAV (FFmpeg), so memory stays bounded whatever the clip length.
Frame numbers count decoded frames from 0; timestamps are seconds from the first frame, taken from the
stream's presentation times (GIF frame durations are honoured because FFmpeg's GIF demuxer reads them).
Three ways in: :func:`probe_header` (no decode: size and rate, for planning), :func:`probe_clip` (a full decode:
true frame count and timestamps, truncation checks) and :class:`FrameReader` / :func:`iter_frames` (the frames;
a FrameReader also ends with what probe_clip would report, so one decode can serve both).
This module knows containers and codecs; it must not know about crops, masks or the release.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from processing.errors import ClipError

log = logging.getLogger(__name__)

#: Containers the reader is tested on (by file extension); others FFmpeg knows are tried too.

#: Output videos: MagicYUV (FFmpeg's encoder) in planar RGB, one slice, gradient prediction, in a QuickTime ``.mov``:
#: lossless (frames decode bit-exact), any frame size (no chroma subsampling), the source's timestamps exact (the
#: container's 90 kHz clock; AVI would round them to a fixed rate), read by every FFmpeg-based reader (torchcodec,
#: PyAV, OpenCV, datasets.Video). Chosen in issue 18 over lossless H.264 (libx264rgb, qp 0, preset ultrafast, in
#: .mp4; processing formats <= 4) for CPU: per 1080x1080 frame 4.6 ms to encode against 7.7 ms, 2.8 ms to decode
#: against 9.8. Files about as large over 90 real clips (+3% in all; up to 3x on still clips, 0.5-0.8x on GIFs and
#: noisy clips). See BENCHMARKS.md (issue 18).
VIDEO_CODEC = "magicyuv"
VIDEO_FORMAT = "mov"
VIDEO_SUFFIX = ".mov"
_VIDEO_OPTIONS = {"pred": "gradient"}  # median: 1% smaller files, decoded 3.5x slower; left: larger and slower
_TIME_BASE = Fraction(1, 90000)  # MPEG's 90 kHz clock: exact for every common frame rate and for GIF centiseconds


@dataclass(frozen=True)
class ClipInfo:
    """What a full decode of a clip found. ``frame_count`` is counted, never taken from the header."""

    path: Path
    container: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    timestamps: tuple[float, ...] = ()  # seconds from the first frame, one per decoded frame


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``index`` counts from 0 in decode order, ``image`` is RGB uint8 ``(H, W, 3)``."""

    index: int
    timestamp: float
    image: np.ndarray


def _open(path: Path):
    if not path.is_file():
        raise ClipError(f"clip {path} does not exist")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ClipError(f"clip {path} cannot be opened as a video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise ClipError(f"clip {path} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame threading: same frames, faster decode
    return container, stream


def _decoded(path: Path) -> Iterator[tuple[av.VideoFrame, float | None, float | None]]:
    """Yield ``(frame, time, duration)`` for every decoded frame, turning FFmpeg failures into ClipError.

    FFmpeg stops quietly at the end of a truncated file, so truncation is checked explicitly: fewer packets than
    the container's index lists (mp4, mov, avi), an ASF file shorter than its header declares (wmv), or a GIF
    without its trailer byte.
    """
    container, stream = _open(path)
    try:
        tb = stream.time_base
        listed = stream.frames or 0
        packets = 0
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
            for frame in packet.decode():
                time = float(frame.pts * tb) if frame.pts is not None and tb is not None else None
                duration = float(frame.duration * tb) if frame.duration and tb is not None else None
                yield frame, time, duration
        if listed and packets < listed and container.format.name.split(",")[0] in ("mov", "avi"):
            raise ClipError(f"clip {path} is truncated: its index lists {listed} frames, the file holds {packets}")
        if container.format.name == "asf":
            declared = _asf_declared_size(path)
            if declared is not None and declared > path.stat().st_size:
                raise ClipError(f"clip {path} is truncated: its ASF header declares {declared} bytes, "
                                f"the file has {path.stat().st_size}")
        if path.suffix.lower() == ".gif" and _tail(path) != b"\x3b":
            raise ClipError(f"clip {path} is truncated: the GIF has no trailer byte")
    except av.FFmpegError as exc:
        raise ClipError(f"clip {path} is unreadable or truncated: {exc}") from exc
    finally:
        container.close()


_ASF_FILE_PROPERTIES = bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")  # GUID 8CABDCA1-A947-11CF-8EE4-...


def _asf_declared_size(path: Path) -> int | None:
    """The file size an ASF (wmv) header declares, or None when absent or flagged invalid (broadcast)."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    at = head.find(_ASF_FILE_PROPERTIES)
    if at < 0 or at + 92 > len(head):
        return None
    size = int.from_bytes(head[at + 40:at + 48], "little")
    broadcast = int.from_bytes(head[at + 88:at + 92], "little") & 1
    return None if broadcast or size == 0 else size


def _tail(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1)


def _rate(stream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) < 1000:
            return float(rate)
    return None


def _nominal_fps(path: Path) -> float | None:
    container, stream = _open(path)
    try:
        return _rate(stream)
    finally:
        container.close()


class _Timeline:
    """Turn presentation times into seconds from the first frame, strictly increasing.

    A frame without a pts (or with one not after its predecessor) is placed 1/fps after the previous frame.
    probe_clip, FrameReader and probe_header share this so their timestamps agree exactly.
    """

    def __init__(self, fps: float) -> None:
        self.step = 1 / fps
        self.origin: float | None = None
        self.previous: float | None = None

    def stamp(self, time: float | None) -> float:
        if time is not None and self.origin is None:
            self.origin = time if self.previous is None else time - (self.previous + self.step)
        if time is None or self.origin is None:
            value = 0.0 if self.previous is None else self.previous + self.step
        else:
            value = time - self.origin
            if self.previous is not None and value <= self.previous:
                value = self.previous + self.step
        value = round(value, 9)
        self.previous = value
        return value


_PROBED: OrderedDict[tuple, ClipInfo] = OrderedDict()  # the last few probes, by path and file identity
_PROBED_MAX = 8
_PROBED_LOCK = threading.Lock()


def probe_clip(path: Path | str) -> ClipInfo:
    """Decode the whole clip once (without keeping frames) and report its true size, frame count and timing.

    The last few results are remembered by path, inode, size and modification time, so a caller that probes a
    clip and then hands it to one that probes it again (a build: plan, then process) decodes it once, not twice;
    a rewritten file is probed anew.

    Raises :class:`ClipError` naming the clip when it cannot be opened, fails mid-stream or has no frame.
    """
    path = Path(path)
    key = _probe_key(path)
    with _PROBED_LOCK:
        info = _PROBED.get(key) if key is not None else None
        if info is not None:
            _PROBED.move_to_end(key)
            return info
    info = _probe(path)
    _remember(key, info)
    return info


def _probe_key(path: Path) -> tuple | None:
    try:
        stat = path.stat()
    except OSError:
        return None  # _open names the missing clip
    return (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _remember(key: tuple | None, info: ClipInfo) -> None:
    if key is None:
        return
    with _PROBED_LOCK:
        _PROBED[key] = info
        while len(_PROBED) > _PROBED_MAX:
            _PROBED.popitem(last=False)


def forget_probes() -> None:
    """Drop the remembered probes (benchmarks time a cold probe with it)."""
    with _PROBED_LOCK:
        _PROBED.clear()


def _probe(path: Path) -> ClipInfo:
    nominal = _nominal_fps(path)
    times: list[float | None] = []
    width = height = 0
    last_duration: float | None = None
    for frame, time, duration in _decoded(path):
        if not times:
            width, height = frame.width, frame.height
        times.append(time)
        last_duration = duration
    if not times:
        raise ClipError(f"clip {path} has zero decodable frames")
    timeline = _Timeline(nominal or 25.0)
    return _clip_info(path, nominal, [timeline.stamp(t) for t in times], width, height, last_duration)


def _clip_info(path: Path, nominal: float | None, stamps: list[float], width: int, height: int,
               last_duration: float | None) -> ClipInfo:
    """The :class:`ClipInfo` of a whole decode: ``stamps`` from :class:`_Timeline`, ``last_duration`` the last
    frame's (None when the stream gives none)."""
    fps = nominal or 25.0
    if last_duration is None:
        last_duration = 1 / fps
    duration = stamps[-1] + last_duration
    if nominal is None or path.suffix.lower() == ".gif":
        # GIFs carry per-frame delays, not a rate: report the mean rate over the clip.
        fps = len(stamps) / duration if duration > 0 else fps
    return ClipInfo(
        path=path,
        container=_container_name(path),
        width=width,
        height=height,
        fps=round(fps, 6),
        frame_count=len(stamps),
        duration=round(duration, 6),
        timestamps=tuple(stamps),
    )


def _container_name(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "unknown"


@dataclass(frozen=True)
class ClipHeader:
    """What a clip's header (and, for a GIF, a demux without decoding) tells: enough to plan a crop.

    ``width``/``height`` are the decoder's frame size as the container declares it; ``fps`` is the rate
    :func:`probe_clip` would report *if* the decoded frames match the packets (always checked afterwards by
    :class:`FrameReader` users: see :func:`processing.pixels.pipeline.process_clip`). Not a frame count.
    """

    path: Path
    container: str
    width: int
    height: int
    fps: float


def probe_header(path: Path | str) -> ClipHeader:
    """Read a clip's header without decoding a frame: size, container and the expected rate.

    For a GIF (per-frame delays, no rate) or a stream without a usable rate, the packets are demuxed (not decoded)
    to estimate the mean rate as :func:`probe_clip` computes it. Raises :class:`ClipError` naming the clip when it
    is missing, cannot be opened or has no video stream; truncation and zero frames are found by decoding.
    """
    path = Path(path)
    container, stream = _open(path)
    try:
        nominal = _rate(stream)
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        fps = round(nominal, 6) if nominal is not None else 25.0
        if nominal is None or path.suffix.lower() == ".gif":
            fps = _demuxed_mean_rate(container, stream, nominal, fps)
    except av.FFmpegError as exc:
        raise ClipError(f"clip {path} is unreadable: {exc}") from exc
    finally:
        container.close()
    return ClipHeader(path=path, container=_container_name(path), width=width, height=height, fps=fps)


def _demuxed_mean_rate(container, stream, nominal: float | None, fallback: float) -> float:
    """The mean rate :func:`_clip_info` would compute, from packet times instead of decoded frames' (no decode)."""
    tb = stream.time_base
    timeline = _Timeline(nominal or 25.0)
    stamps: list[float] = []
    last_duration: float | None = None
    for packet in container.demux(stream):
        if not packet.size:
            continue
        time = float(packet.pts * tb) if packet.pts is not None and tb is not None else None
        stamps.append(timeline.stamp(time))
        last_duration = float(packet.duration * tb) if packet.duration and tb is not None else None
    if not stamps:
        return fallback
    step = 1 / (nominal or 25.0)
    duration = stamps[-1] + (last_duration if last_duration is not None else step)
    return round(len(stamps) / duration if duration > 0 else (nominal or 25.0), 6)


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """The frame as RGB uint8. One swscale thread: each frame gets a fresh scaler context, and with automatic
    threads that context starts a thread pool per frame (measured 0.6 s vs 0.3 s for 180 1080x1080 frames, decode
    included); the pixels are the same (slices are converted independently either way)."""
    global _RGB_THREADS_KW
    if _RGB_THREADS_KW:
        try:
            return frame.to_ndarray(format="rgb24", threads=1)
        except TypeError:  # PyAV without the threads argument (< 15)
            _RGB_THREADS_KW = False
    return frame.to_ndarray(format="rgb24")


_RGB_THREADS_KW = True


class FrameReader:
    """Decode a clip once: iterating yields its frames (as :func:`iter_frames`); once the iteration has ended
    without error, :attr:`info` is exactly what :func:`probe_clip` reports (and probe_clip remembers it).

    The truncation and zero-frame checks of :func:`probe_clip` run at the end of the iteration and raise
    :class:`ClipError` naming the clip, after the last good frame was yielded.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.info: ClipInfo | None = None

    def __iter__(self) -> Iterator[Frame]:
        path = self.path
        key = _probe_key(path)
        nominal = _nominal_fps(path)
        timeline = _Timeline(nominal or 25.0)
        stamps: list[float] = []
        width = height = 0
        last_duration: float | None = None
        for index, (frame, time, duration) in enumerate(_decoded(path)):
            if index == 0:
                width, height = frame.width, frame.height
            stamp = timeline.stamp(time)
            stamps.append(stamp)
            last_duration = duration
            yield Frame(index=index, timestamp=stamp, image=_rgb(frame))
        if not stamps:
            raise ClipError(f"clip {path} has zero decodable frames")
        self.info = _clip_info(path, nominal, stamps, width, height, last_duration)
        _remember(key, self.info)


def iter_frames(path: Path | str) -> Iterator[Frame]:
    """Yield the clip's frames one at a time as RGB uint8 arrays; timestamps as :func:`probe_clip` reports them.

    Raises :class:`ClipError` naming the clip on unreadable data (frames already yielded stay valid).
    """
    yield from FrameReader(path)


class VideoWriter:
    """Write RGB frames to a lossless video (:data:`VIDEO_CODEC` in :data:`VIDEO_FORMAT`) with explicit
    presentation times.

    ``threads`` is the encoder's slice count, 1 by default: MagicYUV codes each slice on a thread of its own and its
    output bytes follow the slice count, whose automatic value follows the machine's cores; one fixed slice makes a
    video the same file on every machine (the pipeline is parallel across frames and clips already). 0 = one slice
    per core (faster alone, machine-dependent bytes; the benchmark's floor).
    Use as a context manager; ``write(image, timestamp)`` takes the source timestamp in seconds so a clip with
    deleted frames keeps its original timing (a gap, not a jump in speed). ``fps`` is the nominal rate recorded.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, threads: int = 1) -> None:
        import cv2  # here, not at the top: probing and reading clips need no OpenCV

        self._split = cv2.split
        self.path = Path(path)
        self._container = av.open(str(self.path), mode="w", format=VIDEO_FORMAT)
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self._stream = self._container.add_stream(VIDEO_CODEC, rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "gbrp"
        self._stream.options = dict(_VIDEO_OPTIONS, **({"slices": str(threads)} if threads > 0 else {}))
        self._stream.codec_context.thread_count = threads
        self._stream.codec_context.time_base = _TIME_BASE
        self._last_pts = -1
        self.frames = 0
        self._frame: av.VideoFrame | None = None

    def _frame_for(self, image: np.ndarray) -> av.VideoFrame:
        """``image`` split into this writer's one planar FFmpeg frame (planes G, B, R), reused from frame to frame:
        one pass of OpenCV's ``split`` straight into the planes (0.5 ms per 1080x1080 frame; swscale's rgb24 ->
        gbrp takes as long after a copy into an rgb24 frame, and gives a new frame each time, whose fresh buffers
        cost page faults). The encoder is done with the frame when ``encode`` returns, so ``make_writable`` keeps
        its buffers."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"video {self.path}: frames must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if self._frame is None or (self._frame.width, self._frame.height) != (width, height):
            self._frame = av.VideoFrame(width, height, "gbrp")
        frame = self._frame
        frame.make_writable()
        planes = [np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]
                  for plane in frame.planes]
        wanted = [planes[2], planes[0], planes[1]]  # R, G, B
        for written, plane in zip(self._split(image, wanted), wanted, strict=True):  # any strides: a crop view too
            if written is not plane:  # OpenCV wrote a copy instead (never seen): put it where the frame is
                np.copyto(plane, written)
        return frame

    def write(self, image: np.ndarray, timestamp: float) -> None:
        frame = self._frame_for(image)
        pts = max(round(timestamp / _TIME_BASE), self._last_pts + 1)  # strictly increasing, as muxers require
        frame.pts, frame.time_base = pts, _TIME_BASE
        self._last_pts = pts
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_video(path: Path, frames: Sequence[np.ndarray], timestamps: Sequence[float], fps: float) -> None:
    """Write a short list of frames (tests, small outputs); streaming callers use :class:`VideoWriter`."""
    if not frames:
        raise ClipError(f"video {path}: no frames to write")
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width, height, fps) as writer:
        for image, stamp in zip(frames, timestamps, strict=True):
            writer.write(image, stamp)

