"""Frame selection: deleted ranges, sampling rate, maximum count, and their order."""

from __future__ import annotations

import pytest

from processing.errors import CovidxError
from processing.pixels.frames import evenly_spaced, parse_ranges, select_frames


def stamps(n: int, fps: float) -> list[float]:
    return [round(i / fps, 9) for i in range(n)]


def test_no_parameters_keep_every_frame() -> None:
    assert select_frames(stamps(7, 10)) == tuple(range(7))


def test_deleted_inclusive_ranges_are_dropped_and_numbers_stay_source_numbers() -> None:
    assert select_frames(stamps(10, 10), deleted=((2, 4), (8, 8))) == (0, 1, 5, 6, 7, 9)


def test_three_hz_from_a_30_fps_clip_keeps_every_tenth_frame() -> None:
    assert select_frames(stamps(65, 30), sample_hz=3) == (0, 10, 20, 30, 40, 50, 60)


def test_three_hz_from_a_25_fps_clip_takes_the_first_frame_at_or_after_each_third_of_a_second() -> None:
    # grid 0, 1/3, 2/3, 1, 4/3 s -> frames at 0, 0.36, 0.68, 1.0, 1.36 s
    assert select_frames(stamps(36, 25), sample_hz=3) == (0, 9, 17, 25, 34)


def test_rate_above_the_clip_rate_keeps_every_frame() -> None:
    assert select_frames(stamps(12, 10), sample_hz=30) == tuple(range(12))


def test_rate_sampling_follows_uneven_timestamps() -> None:
    ts = [0.0, 0.1, 0.3, 0.35, 0.65, 0.75, 1.3]  # a GIF with uneven delays
    assert select_frames(ts, sample_hz=2) == (0, 4, 6)


def test_max_frames_is_evenly_spaced_with_first_and_last() -> None:
    assert select_frames(stamps(100, 10), max_frames=5) == (0, 25, 50, 74, 99)
    assert evenly_spaced(10, 3) == (0, 5, 9)  # 4.5 rounds up
    assert evenly_spaced(3, 10) == (0, 1, 2)
    assert evenly_spaced(10, 1) == (0,)


def test_max_frames_rounds_the_even_spread_half_up() -> None:
    # 332 / 16 = 20.75 apart: 20.75 -> 21, 41.5 -> 42, 62.25 -> 62, 124.5 -> 125, 290.5 -> 291 ...
    assert select_frames(stamps(333, 30), max_frames=17) == (
        0, 21, 42, 62, 83, 104, 125, 145, 166, 187, 208, 228, 249, 270, 291, 311, 332)


def test_rules_apply_in_order_delete_then_rate_then_cap() -> None:
    # 30 fps, frames 0-59 deleted: rate sampling starts at the grid point 2 s (frame 60), not at frame 0
    ts = stamps(150, 30)
    assert select_frames(ts, deleted=((0, 59),), sample_hz=3) == tuple(range(60, 150, 10))
    # the cap then spreads over those 9 sampled frames
    assert select_frames(ts, deleted=((0, 59),), sample_hz=3, max_frames=3) == (60, 100, 140)


def test_parse_ranges_reads_the_release_spelling() -> None:
    assert parse_ranges("131-133, 143-146,154-202") == ((131, 133), (143, 146), (154, 202))
    assert parse_ranges("47-50,61,") == ((47, 50), (61, 61))
    assert parse_ranges("") == ()


@pytest.mark.parametrize("text", ["3-1", "a-b", "1-2-3"])
def test_parse_ranges_rejects_bad_text_naming_it(text: str) -> None:
    with pytest.raises(CovidxError, match=text):
        parse_ranges(text)


@pytest.mark.parametrize("kwargs", [{"sample_hz": 0}, {"sample_hz": -3}, {"max_frames": 0}])
def test_invalid_parameters_raise(kwargs) -> None:
    with pytest.raises(CovidxError):
        select_frames(stamps(5, 10), **kwargs)
