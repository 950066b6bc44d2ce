"""Frame selection: which source frames become images. A pure function of timestamps and parameters.

Order of the rules (each applies to what the previous one kept):
1. drop the release's deleted frames (inclusive ranges of source frame numbers);
2. sample by rate (``sample_hz``): on the grid 0, 1/hz, 2/hz ... seconds from the clip start, keep the first
   remaining frame at or after each grid time (each frame serves at most one grid point);
3. cap by count (``max_frames``): keep ``max_frames`` evenly spaced frames, first and last included.
Frame numbers always refer to the source clip. No I/O, no pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

from processing.errors import CovidxError

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


def sample_by_rate(indices: Sequence[int], timestamps: Sequence[float], hz: float) -> tuple[int, ...]:
    """Of ``indices`` (ascending), keep the first frame at or after each time ``k / hz`` seconds."""
    kept: list[int] = []
    target = 0  # grid step number k
    for index in indices:
        t = timestamps[index]
        if t + _EPS >= target / hz:
            kept.append(index)
            target = int((t + _EPS) * hz) + 1  # next grid point strictly after t
    return tuple(kept)


def select_frames(
    timestamps: Sequence[float],
    *,
    deleted: Sequence[tuple[int, int]] = (),
    sample_hz: float | None = None,
    max_frames: int | None = None,
) -> tuple[int, ...]:
    """Source frame numbers to keep, ascending, for a clip whose frame ``i`` is shown at ``timestamps[i]`` s."""
    if sample_hz is not None and not sample_hz > 0:
        raise CovidxError(f"invalid sample_hz {sample_hz!r}: must be a positive number of frames per second")
    if max_frames is not None and max_frames < 1:
        raise CovidxError(f"invalid max_frames {max_frames!r}: must be a positive integer")
    kept: tuple[int, ...] = tuple(i for i in range(len(timestamps)) if not is_deleted(i, deleted))
    if sample_hz is not None:
        kept = sample_by_rate(kept, timestamps, sample_hz)
    if max_frames is not None:
        kept = tuple(kept[p] for p in evenly_spaced(len(kept), max_frames))
    return kept
