"""`covidx-us clean`: user clips cleaned like release clips; one bad clip does not stop the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clipfactory import textured_frames, write_clip
from PIL import Image

from processing.cli import main


def mask_file(path: Path, size=(41, 33)) -> Path:
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[2:10, 2:10] = 255
    Image.fromarray(mask).save(path)
    return path


def test_clean_writes_frames_and_videos_and_prints_them(tmp_path: Path, capsys) -> None:
    a = write_clip(tmp_path / "a.mp4", textured_frames(10))
    b = write_clip(tmp_path / "b.avi", textured_frames(10, seed=1))
    out = tmp_path / "out"
    code = main(["clean", str(a), str(b), "--out", str(out), "--crop", "2,2,41,33",
                 "--mask", str(mask_file(tmp_path / "m.png")), "--max-frames", "3", "--probe", "linear"])
    assert code == 0
    printed = capsys.readouterr().out
    for stem in ("a", "b"):
        frames = sorted((out / "data" / "image" / "clean").glob(f"{stem}_prc_linear_clean_frame*.png"))
        assert [p.name for p in frames] == [f"{stem}_prc_linear_clean_frame{n}.png" for n in (0, 5, 9)]
        assert np.asarray(Image.open(frames[0])).shape == (33, 41, 3)
        clean = out / "data" / "video" / "clean" / f"{stem}_prc_linear_clean.mov"
        assert clean.is_file() and str(clean) in printed
    assert printed.count("3 frames written") == 2


def test_one_bad_clip_is_reported_and_the_others_complete(tmp_path: Path, capsys) -> None:
    good = write_clip(tmp_path / "good.mp4", textured_frames(6))
    bad = tmp_path / "bad.mp4"
    bad.write_text("<html>403</html>")
    out = tmp_path / "out"
    code = main(["clean", str(bad), str(good), "--out", str(out), "--fps", "5", "--image-format", "jpeg",
                 "--inpaint", "telea"])
    assert code == 1
    captured = capsys.readouterr()
    assert "bad.mp4" in captured.err and "FAILED" in captured.err
    assert sorted(p.name for p in (out / "data" / "image" / "clean").iterdir()) == [
        "good_prc_unknown_clean_frame0.jpg", "good_prc_unknown_clean_frame2.jpg", "good_prc_unknown_clean_frame4.jpg"]


def test_crop_outside_the_frame_fails_that_clip_naming_it(tmp_path: Path, capsys) -> None:
    clip = write_clip(tmp_path / "small.mp4", textured_frames(4))
    assert main(["clean", str(clip), "--out", str(tmp_path / "out"), "--crop", "0,0,100,100"]) == 1
    assert "small.mp4" in capsys.readouterr().err


def test_invalid_crop_text_fails_naming_it(tmp_path: Path, capsys) -> None:
    clip = write_clip(tmp_path / "c.mp4", textured_frames(4))
    assert main(["clean", str(clip), "--out", str(tmp_path / "out"), "--crop", "1,2,3"]) == 1
    assert "'1,2,3'" in capsys.readouterr().err


def test_crop_and_mask_auto_use_the_detector(tmp_path: Path, capsys) -> None:
    simulate = pytest.importorskip("processing.demo.simulate")
    pytest.importorskip("processing.pixels.autodetect")
    spec = simulate.ClipSpec(width=160, height=120, num_frames=8)
    simulate.write_clip(spec, tmp_path / "sim.mp4")
    out = tmp_path / "out"
    code = main(["clean", str(tmp_path / "sim.mp4"), "--out", str(out), "--crop", "auto", "--mask", "auto",
                 "--no-videos"])
    assert code == 0, capsys.readouterr().err
    frames = sorted((out / "data" / "image" / "clean").glob("sim_prc_*_clean_frame*.png"))
    assert len(frames) == 8
    h, w = np.asarray(Image.open(frames[0])).shape[:2]
    assert abs(w - spec.window.w) <= 2 and abs(h - spec.window.h) <= 2  # the detector found the simulated field
    assert list((out / "data" / "mask").glob("sim_prc_*_main_mask.png"))


def test_auto_reports_a_clip_without_a_field_by_name_writes_nothing_of_it_and_keeps_the_others(
        tmp_path: Path, capsys) -> None:
    simulate = pytest.importorskip("processing.demo.simulate")
    simulate.write_clip(simulate.ClipSpec(width=160, height=120, num_frames=8), tmp_path / "sim.mp4")
    write_clip(tmp_path / "blank.mp4", [np.zeros((120, 160, 3), np.uint8)] * 8)  # black: no field of view
    out = tmp_path / "out"
    code = main(["clean", str(tmp_path / "blank.mp4"), str(tmp_path / "sim.mp4"), "--out", str(out),
                 "--crop", "auto", "--mask", "auto", "--no-videos"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if "blank" in line]
    assert len(lines) == 1 and "no ultrasound field of view found" in lines[0] and "Traceback" not in err
    written = [p.name for p in out.rglob("*") if p.is_file()]
    assert not [n for n in written if n.startswith("blank")]
    assert len([n for n in written if n.startswith("sim_prc_") and "_clean_frame" in n]) == 8


def _pointer_clip(tmp_path: Path, simulated_site):
    """A simulated clip whose moving pointer crosses the lung in some frames."""
    autodetect = pytest.importorskip("processing.pixels.autodetect")
    source = simulated_site(0.5, 0.25).sim.clips["1_butterfly_covid"]  # the release drops its pointer frames
    clip = tmp_path / f"pointer{source.suffix}"
    clip.write_bytes(source.read_bytes())
    return clip, autodetect


def test_auto_prints_the_detected_window_probe_and_frame_counts_per_clip(tmp_path: Path, capsys,
                                                                        simulated_site) -> None:
    clip, autodetect = _pointer_clip(tmp_path, simulated_site)
    expected = autodetect.detect_clip(clip, clip_id="pointer", pointer_policy="mask")
    assert expected.frame_masks  # the clip does have pointer frames to count
    code = main(["clean", str(clip), "--out", str(tmp_path / "out"), "--crop", "auto", "--mask", "auto",
                 "--no-videos", "--max-frames", "2", "--pointer-policy", "mask"])
    assert code == 0, capsys.readouterr().err
    lines = [line for line in capsys.readouterr().out.splitlines() if "detected:" in line]
    w = expected.window
    assert len(lines) == 1
    assert f"window {w.x},{w.y},{w.w},{w.h} probe {expected.probe}" in lines[0]
    assert f"{len(expected.frame_masks)} frame masks, 0 dropped (of {expected.frame_count} frames)" in lines[0]


def test_pointer_policy_drop_is_the_default_and_mask_keeps_pointer_frames(tmp_path: Path, capsys,
                                                                          simulated_site) -> None:
    clip, autodetect = _pointer_clip(tmp_path, simulated_site)
    dropping = autodetect.detect_clip(clip, clip_id="pointer", pointer_policy="drop")
    assert dropping.dropped_frames
    common = ["--crop", "auto", "--mask", "auto", "--no-videos"]
    assert main(["clean", str(clip), "--out", str(tmp_path / "dropped"), *common]) == 0
    assert main(["clean", str(clip), "--out", str(tmp_path / "kept"), *common, "--pointer-policy", "mask"]) == 0
    out = capsys.readouterr().out
    assert f"{len(dropping.dropped_frames)} dropped (of {dropping.frame_count} frames)" in out

    def written(root: str) -> set[int]:
        names = (tmp_path / root / "data" / "image" / "clean").glob("pointer_prc_*_clean_frame*.png")
        return {int(p.stem.rsplit("frame", 1)[1]) for p in names}

    assert written("kept") == set(range(dropping.frame_count))  # "mask": every frame kept
    assert written("dropped") == set(range(dropping.frame_count)) - set(dropping.dropped_frames)  # the default
    with pytest.raises(SystemExit):
        main(["clean", str(clip), "--out", str(tmp_path / "x"), "--pointer-policy", "erase"])
    assert "invalid choice: 'erase'" in capsys.readouterr().err


# ---- clean --crop auto --mask auto on real overlay clips (../shared/realdata, read in place)

def test_a_pointer_on_frame_0_does_not_replace_the_main_mask(tmp_path: Path, capsys, monkeypatch) -> None:
    # The main mask and frame 0's own mask (main | pointer) are two files: frame 0's pointer must not be inpainted
    # on every frame.
    import dataclasses

    simulate = pytest.importorskip("processing.demo.simulate")
    autodetect = pytest.importorskip("processing.pixels.autodetect")
    simulate.write_clip(simulate.ClipSpec(width=160, height=120, num_frames=8), tmp_path / "p0.mp4")
    real = autodetect.detect_clip

    def with_pointer_on_frame_0(*args, **kwargs):
        detection = real(*args, **kwargs)
        pointer = np.zeros_like(detection.main_mask)
        pointer[40:50, 40:50] = True
        return dataclasses.replace(detection, frame_masks={0: detection.main_mask | pointer})

    monkeypatch.setattr(autodetect, "detect_clip", with_pointer_on_frame_0)
    out = tmp_path / "out"
    code = main(["clean", str(tmp_path / "p0.mp4"), "--out", str(out), "--crop", "auto", "--mask", "auto",
                 "--no-videos", "--pointer-policy", "mask"])
    assert code == 0, capsys.readouterr().err
    folder = out / "data" / "mask"
    main_mask = np.asarray(Image.open(next(folder.glob("p0_prc_*_main_mask.png")))) > 127
    own = np.asarray(Image.open(next(folder.glob("p0_prc_*_frame0_mask.png")))) > 127
    assert own[40:50, 40:50].all() and not main_mask[40:50, 40:50].any()


TRUTH = Path(__file__).resolve().parents[1] / "benchmarks" / "realclip_truth.json"


def _written_masks(out: Path, clip_id: str) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray | None]:
    """The main mask, the frame masks and the field of view that clean wrote for ``clip_id`` (white = True)."""
    folder = out / "data" / "mask"

    def load(path: Path) -> np.ndarray:
        return np.asarray(Image.open(path).convert("L")) > 127

    main_mask = load(folder / f"{clip_id}_prc_convex_main_mask.png")
    frames = {int(p.name.rsplit("_frame", 1)[1].split("_")[0]): load(p)
              for p in folder.glob(f"{clip_id}_prc_convex_frame*_mask.png")}
    fov = folder / f"{clip_id}_prc_convex_fov_mask.png"
    return main_mask, frames, load(fov) if fov.is_file() else None


@pytest.mark.slow
@pytest.mark.parametrize("stem", [
    "1457933751766421505",  # one sector, blue 'B' orientation dot, depth ruler over the sector's right edge
    "1354269183555600384",  # one sector filling the frame's width, orientation dot top left, depth ruler right
])
def test_clean_auto_removes_real_burned_in_marks_and_leaves_every_other_pixel_as_decoded(realdata, tmp_path, capsys,
                                                                                        stem) -> None:
    import cv2

    from processing.pixels.clips import iter_frames
    from processing.pixels.evaluate import load_truth, mark_pixels
    from processing.windows import Window

    clip = realdata / "videos" / f"twitter_taotepocus__{stem}.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is not available")
    clip_id = clip.stem
    out = tmp_path / "out"
    assert main(["clean", str(clip), "--out", str(out), "--crop", "auto", "--mask", "auto", "--max-frames", "4",
                 "--no-videos"]) == 0
    printed = capsys.readouterr().out
    x, y, w, h = (int(v) for v in printed.split(" window ", 1)[1].split()[0].split(","))
    window = Window(x, y, w, h)
    main_mask, frame_masks, fov = _written_masks(out, clip_id)
    fov = np.ones((h, w), bool) if fov is None else fov
    written = {int(p.stem.rsplit("frame", 1)[1]): p
               for p in (out / "data" / "image" / "clean").glob(f"{clip_id}_prc_convex_clean_frame*.png")}
    assert len(written) == 4
    truth = load_truth(TRUTH)[clip.name]
    marks = {o.kind: o for o in truth.overlays if o.kind in ("dot", "ruler")}
    assert set(marks) == {"dot", "ruler"}
    checked = 0
    for frame in iter_frames(clip):
        if frame.index not in written:
            continue
        source = frame.image
        cropped = source[window.slices()]
        clean = np.asarray(Image.open(written[frame.index]).convert("RGB"))
        assert clean.shape == cropped.shape
        # the pipeline inpaints the frame's mask (its own joined with the main one) grown by a 5x5 square
        mask = frame_masks.get(frame.index, np.zeros_like(main_mask)) | main_mask
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        untouched = fov & ~grown
        assert untouched.mean() > 0.5  # most of the crop is held to exact equality
        assert np.array_equal(clean[untouched], cropped[untouched]), "a pixel outside the masks changed"
        assert not clean[~fov].any(), "outside the field of view the clean frame is black"
        # the hand-located marks: what stood out in their boxes of the source frame no longer does
        gray = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
        black = float(np.percentile(gray, 2))
        placed = np.zeros_like(source)
        placed[window.slices()] = clean
        in_window = np.zeros(gray.shape, bool)
        in_window[window.slices()] = True
        for kind, overlay in marks.items():
            before = mark_pixels(source, overlay, black) & in_window
            after = mark_pixels(placed, overlay, black) & before
            assert before.sum() > 300, f"{kind}: the hand-drawn box holds no mark in frame {frame.index}"
            residue = after.sum() / before.sum()
            # the dot is wholly gone; the ruler's box also holds the sector's edge, so a rim of tissue may stay
            assert residue <= (0.0 if kind == "dot" else 0.15), f"{kind}: {residue:.1%} left in frame {frame.index}"
            placed_gray = cv2.cvtColor(placed, cv2.COLOR_RGB2GRAY)
            assert placed_gray[before].mean() < 0.3 * gray[before].mean()
        checked += 1
    assert checked == 4
