"""Specification of the LUS clip simulator: real encoders, exact overlay truth, FOV geometry, class differences."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pytest

from processing.demo.simulate import (
    CONTAINERS,
    LOGO_COLORS,
    POINTER_COLOR,
    RULER_COLOR,
    TEXT_COLOR,
    ClipSpec,
    GroundTruth,
    fov_layout,
    simulate_frames,
    simulate_truth,
    write_clip,
)
from processing.errors import CovidxError, InvalidChoiceError
from processing.windows import Window

OVERLAY_COLOURS = {TEXT_COLOR, RULER_COLOR, POINTER_COLOR, *LOGO_COLORS.values()}


def _frames(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    pairs = list(simulate_frames(spec))
    return np.stack([f for f, _ in pairs]), np.stack([m for _, m in pairs])


def _decode(path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], rate


@pytest.mark.parametrize("container", CONTAINERS)
def test_every_container_is_written_by_a_real_encoder_and_decodes_back(tmp_path, container):
    spec = ClipSpec(probe="convex", width=64, height=48, num_frames=10, fps=10.0, container=container,
                    pointer_frames=((3, 6),))
    truth = write_clip(spec, tmp_path / f"clip.{container}")
    frames, rate = _decode(tmp_path / f"clip.{container}")
    assert len(frames) == 10 == truth.num_frames
    assert frames[0].shape == (48, 64, 3)
    assert rate == pytest.approx(10.0, rel=0.05)
    assert not list(tmp_path.glob(".*tmp*")), "the atomic write left a temporary file behind"


def test_gif_keeps_overlay_colours_exactly(tmp_path):
    spec = ClipSpec(probe="linear", width=96, height=72, num_frames=6, container="gif", pointer_frames=((2, 4),))
    write_clip(spec, tmp_path / "clip.gif")
    decoded, _ = _decode(tmp_path / "clip.gif")
    frames, masks = _frames(spec)
    for got, want, mask in zip(decoded, frames, masks, strict=True):
        assert np.array_equal(got[mask], want[mask])


def test_overlay_pixels_are_exactly_where_the_truth_mask_says():
    spec = ClipSpec(probe="convex", label="covid", width=160, height=120, num_frames=8, pointer_frames=((2, 6),),
                    seed=3)
    frames, masks = _frames(spec)
    bare, bare_masks = _frames(replace(spec, overlays=(), pointer_frames=()))
    assert not bare_masks.any()
    changed = (frames != bare).any(axis=-1)
    assert not (changed & ~masks).any(), "a pixel outside the truth mask differs from the bare ultrasound"
    assert changed[masks].mean() > 0.97, "overlay pixels should differ from the background they cover"
    colours = {tuple(c) for c in frames[masks].reshape(-1, 3).tolist()}
    assert colours <= OVERLAY_COLOURS


def test_pixels_inside_the_fov_are_grey_speckle_and_black_outside():
    spec = ClipSpec(probe="convex", label="normal", width=160, height=120, num_frames=4, seed=5)
    truth = simulate_truth(spec)
    frames, masks = _frames(spec)
    tissue = truth.fov_mask[None] & ~masks
    pixels = frames[tissue]
    assert (pixels[:, 0] == pixels[:, 1]).all() and (pixels[:, 1] == pixels[:, 2]).all()
    assert pixels[:, 0].std() > 10 and pixels[:, 0].mean() > 5
    background = ~truth.fov_mask[None] & ~masks
    assert not frames[background].any()
    # Speckle changes over time inside the FOV (what a temporal-variance detector looks for).
    assert frames[:, truth.fov_mask].std(axis=0).mean() > 1.0


@pytest.mark.parametrize("probe", ["convex", "linear"])
@pytest.mark.parametrize("size", [(64, 48), (160, 120), (176, 216), (241, 181)])
def test_fov_mask_bounding_box_is_the_fov_window(probe, size):
    spec = ClipSpec(probe=probe, width=size[0], height=size[1], container="gif", num_frames=1)
    truth = simulate_truth(spec)
    ys, xs = np.nonzero(truth.fov_mask)
    box = Window(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    assert box == truth.fov_window == fov_layout(probe, *size)
    if probe == "convex":
        assert truth.fov_window.w == truth.fov_window.h, "a sector's window is a square"
        assert truth.fov_mask[truth.fov_window.slices()].mean() < 0.85, "a sector leaves the window's corners empty"
    else:
        assert truth.fov_mask[truth.fov_window.slices()].all()


def test_given_fov_window_is_honoured():
    window = Window(30, 10, 100, 100)
    truth = simulate_truth(ClipSpec(probe="convex", width=180, height=120, fov=window))
    ys, xs = np.nonzero(truth.fov_mask)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (30, 10, 130, 110)


def test_pointer_is_drawn_only_on_its_frames_and_moves():
    spec = ClipSpec(width=160, height=120, num_frames=12, pointer_frames=((3, 5), (9, 10)))
    truth = simulate_truth(spec)
    static = truth.static_mask
    extra = truth.overlay_masks & ~static[None]
    with_pointer = [t for t in range(12) if extra[t].any()]
    assert with_pointer == [3, 4, 5, 9, 10]
    assert truth.pointer_frames == (3, 4, 5, 9, 10)
    assert not np.array_equal(extra[3], extra[5])
    # It ends over the lung: the last pointer frame of a range touches the FOV.
    assert (extra[5] & truth.fov_mask).any()


def _b_line_score(label: str, seed: int) -> float:
    """Lateral contrast of the deep lung: B-lines make some columns much brighter than the median column."""
    spec = ClipSpec(probe="linear", label=label, width=160, height=120, num_frames=3, overlays=(), seed=seed)
    frames, _ = _frames(spec)
    win = spec.window
    deep = frames[:, win.y + win.h // 2 : win.y + win.h, win.x : win.x + win.w, 0].astype(float)
    columns = deep.mean(axis=(0, 1))
    return float((np.percentile(columns, 95) - np.median(columns)) / (np.median(columns) + 1.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_covid_has_b_lines_that_normal_lacks(seed):
    assert _b_line_score("covid", seed) > 2 * _b_line_score("normal", seed) + 0.5


def test_classes_differ_visibly_below_the_pleura():
    means = {}
    for label in ("covid", "pneumonia", "normal", "other"):
        spec = ClipSpec(probe="linear", label=label, width=160, height=120, num_frames=2, overlays=(), seed=7)
        frames, _ = _frames(spec)
        win = spec.window
        means[label] = frames[:, win.y + win.h // 2 : win.y + win.h, win.x : win.x + win.w, 0].mean()
    # Consolidation (tissue-like) is brighter than aerated normal lung; an effusion is darker than both.
    assert means["pneumonia"] > means["normal"]
    assert means["covid"] > means["normal"]


def test_same_seed_gives_same_frames_and_another_seed_differs():
    spec = ClipSpec(width=64, height=48, num_frames=3, pointer_frames=((1, 2),), seed=11)
    a, ma = _frames(spec)
    b, mb = _frames(spec)
    c, _ = _frames(replace(spec, seed=12))
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(a, c)


def test_simulate_truth_matches_the_rendered_masks():
    spec = ClipSpec(width=96, height=72, num_frames=6, pointer_frames=((1, 4),), seed=2)
    _, masks = _frames(spec)
    assert np.array_equal(simulate_truth(spec).overlay_masks, masks)


def test_ground_truth_round_trips_through_npz_and_dilates(tmp_path):
    truth = simulate_truth(ClipSpec(probe="linear", width=96, height=72, num_frames=4, pointer_frames=((1, 2),)))
    truth.save(tmp_path / "t.npz")
    back = GroundTruth.load(tmp_path / "t.npz")
    assert (back.probe, back.label, back.fov_window, back.fps, back.pointer_frames) == (
        truth.probe, truth.label, truth.fov_window, truth.fps, truth.pointer_frames)
    assert np.array_equal(back.fov_mask, truth.fov_mask)
    assert np.array_equal(back.overlay_masks, truth.overlay_masks)
    grown = truth.dilated(2)
    assert (grown | truth.overlay_masks).sum() == grown.sum() > truth.overlay_masks.sum()


def test_bad_spec_names_the_parameter_and_valid_values():
    with pytest.raises(InvalidChoiceError, match="probe 'sector'.*convex, linear"):
        ClipSpec(probe="sector")
    with pytest.raises(InvalidChoiceError, match="container 'mkv'"):
        ClipSpec(container="mkv")
    with pytest.raises(CovidxError, match="even frame size"):
        ClipSpec(width=65, height=48, container="mp4")
    with pytest.raises(CovidxError, match="pointer_frames"):
        ClipSpec(num_frames=5, pointer_frames=((3, 7),))
    with pytest.raises(CovidxError, match="does not fit"):
        ClipSpec(width=64, height=48, fov=Window(10, 10, 60, 30))
    ClipSpec(width=65, height=49, container="gif")  # odd sizes are fine for GIF


def test_a_release_sized_clip_renders_fast():
    import time

    spec = ClipSpec(width=480, height=360, num_frames=40, pointer_frames=((5, 30),))
    start = time.perf_counter()
    for _ in simulate_frames(spec):
        pass
    assert time.perf_counter() - start < 5.0
