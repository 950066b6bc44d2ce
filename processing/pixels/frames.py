"""Frame selection: which source frames become images. A pure function of timestamps and parameters.

Order of the rules (each applies to what the previous one kept):
1. drop the release's deleted frames (inclusive ranges of source frame numbers);
2. sample by rate (``sample_hz``): on the grid 0, 1/hz, 2/hz ... seconds from the clip start, keep the first
   remaining frame at or after each grid time (each frame serves at most one grid point);
3. cap by count (``max_frames``): keep ``max_frames`` evenly spaced frames, first and last included.
Rules 1 and 2 can be decided while a clip streams (:class:`StreamSelector`); rule 3 needs the frame count first.
Frame numbers always refer to the source clip. No I/O, no pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

from processing.errors import CovidxError, check_int, check_number

_EPS = 1e-6  # timestamps are rounded to 1 ns; this absorbs float error in k/hz


def parse_ranges(text: str, what: str = "frame ranges") -> tuple[tuple[int, int], ...]:
    """Parse ``"3-5, 9, 12-20"`` into inclusive ``((3, 5), (9, 9), (12, 20))``; empty text gives ``()``."""
    ranges = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        bounds = [b.strip() for b in part.split("-")]
        if len(bounds) not in (1, 2) or not all(b.isdigit() for b in bounds):
            raise CovidxError(f"invalid {what} {text!r}: expected 'a-b, c, d-e' with non-negative integers")
        first, last = int(bounds[0]), int(bounds[-1])
        if last < first:
            raise CovidxError(f"invalid {what} {text!r}: range {part!r} ends before it starts")
        ranges.append((first, last))
    return tuple(ranges)


def is_deleted(index: int, deleted: Sequence[tuple[int, int]]) -> bool:
    """True when source frame ``index`` lies in one of the inclusive ``deleted`` ranges."""
    return any(first <= index <= last for first, last in deleted)


def evenly_spaced(count: int, keep: int) -> tuple[int, ...]:
    """``keep`` positions out of ``range(count)``, evenly spaced with the first and last included (all if fewer)."""
    if keep >= count:
        return tuple(range(count))
    if keep == 1:
        return (0,)
    # integer arithmetic: round(i * (count-1) / (keep-1)) with halves rounded up, identical on every platform
    return tuple((2 * i * (count - 1) + (keep - 1)) // (2 * (keep - 1)) for i in range(keep))


class RateSampler:
    """``sample_hz`` decided frame by frame: :meth:`take` is asked about candidate frames in ascending order and
    keeps the first one at or after each time ``k / hz`` seconds (each frame serves at most one grid point).
    :func:`sample_by_rate` is this applied to a list, so both choose the same frames."""

    def __init__(self, hz: float) -> None:
        self.hz = hz
        self._target = 0  # grid step number k

    def take(self, timestamp: float) -> bool:
        if timestamp + _EPS >= self._target / self.hz:
            self._target = int((timestamp + _EPS) * self.hz) + 1  # next grid point strictly after t
            return True
        return False


def sample_by_rate(indices: Sequence[int], timestamps: Sequence[float], hz: float) -> tuple[int, ...]:
    """Of ``indices`` (ascending), keep the first frame at or after each time ``k / hz`` seconds."""
    sampler = RateSampler(hz)
    return tuple(index for index in indices if sampler.take(timestamps[index]))


class StreamSelector:
    """:func:`select_frames` without ``max_frames``, decided while a clip streams (its length still unknown).

    Ask :meth:`keep` about every source frame in order 0, 1, 2, ...; it answers as ``select_frames`` would on the
    whole timestamp list. ``deleted`` counts the frames seen so far that lie in the deleted ranges.
    """

    def __init__(self, *, deleted: Sequence[tuple[int, int]] = (), sample_hz: float | None = None) -> None:
        _check(sample_hz, None)
        self._deleted = tuple(deleted)
        self._sampler = RateSampler(sample_hz) if sample_hz is not None else None
        self._next = 0
        self.deleted = 0

    def keep(self, index: int, timestamp: float) -> bool:
        if index != self._next:
            raise CovidxError(f"StreamSelector: frame {index} asked out of order (expected {self._next})")
        self._next += 1
        if is_deleted(index, self._deleted):
            self.deleted += 1
            return False
        return self._sampler is None or self._sampler.take(timestamp)


def _check(sample_hz: float | None, max_frames: int | None) -> None:
    check_number("sample_hz", sample_hz, positive=True, none="every frame")
    check_int("max_frames", max_frames, minimum=1, none="every frame")


def select_frames(
    timestamps: Sequence[float],
    *,
    deleted: Sequence[tuple[int, int]] = (),
    sample_hz: float | None = None,
    max_frames: int | None = None,
) -> tuple[int, ...]:
    """Source frame numbers to keep, ascending, for a clip whose frame ``i`` is shown at ``timestamps[i]`` s."""
    _check(sample_hz, max_frames)
    kept: tuple[int, ...] = tuple(i for i in range(len(timestamps)) if not is_deleted(i, deleted))
    if sample_hz is not None:
        kept = sample_by_rate(kept, timestamps, sample_hz)
    if max_frames is not None:
        kept = tuple(kept[p] for p in evenly_spaced(len(kept), max_frames))
    return kept
