"""`covidx-us clean`: user clips cleaned like release clips; one bad clip does not stop the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processing.cli import main
from tests.clipfactory import textured_frames, write_clip


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
        clean = out / "data" / "video" / "clean" / f"{stem}_prc_linear_clean.mp4"
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
    assert list((out / "data" / "mask").glob("sim_prc_*_frame0_mask.png"))


def _pointer_clip(tmp_path: Path):
    """A simulated clip whose moving pointer crosses the lung in some frames."""
    autodetect = pytest.importorskip("processing.pixels.autodetect")
    from processing.demo.simrelease import write_simulated_release

    sim = write_simulated_release(tmp_path / "sim", scale=0.5, frames=0.25)
    source = sim.clips["1_butterfly_covid"]  # the release drops frames of this clip for its pointer
    clip = tmp_path / f"pointer{source.suffix}"
    clip.write_bytes(source.read_bytes())
    return clip, autodetect


def test_auto_prints_the_detected_window_probe_and_frame_counts_per_clip(tmp_path: Path, capsys) -> None:
    clip, autodetect = _pointer_clip(tmp_path)
    expected = autodetect.detect_clip(clip, clip_id="pointer", pointer_policy="mask")
    assert expected.frame_masks  # the clip does have pointer frames to count
    code = main(["clean", str(clip), "--out", str(tmp_path / "out"), "--crop", "auto", "--mask", "auto",
                 "--no-videos", "--max-frames", "2"])
    assert code == 0, capsys.readouterr().err
    lines = [line for line in capsys.readouterr().out.splitlines() if "detected:" in line]
    w = expected.window
    assert len(lines) == 1
    assert f"window {w.x},{w.y},{w.w},{w.h} probe {expected.probe}" in lines[0]
    assert f"{len(expected.frame_masks)} frame masks, 0 dropped (of {expected.frame_count} frames)" in lines[0]


def test_pointer_policy_drop_leaves_pointer_frames_out_and_mask_is_the_default(tmp_path: Path, capsys) -> None:
    clip, autodetect = _pointer_clip(tmp_path)
    dropping = autodetect.detect_clip(clip, clip_id="pointer", pointer_policy="drop")
    assert dropping.dropped_frames
    common = ["--crop", "auto", "--mask", "auto", "--no-videos"]
    assert main(["clean", str(clip), "--out", str(tmp_path / "kept"), *common]) == 0
    assert main(["clean", str(clip), "--out", str(tmp_path / "dropped"), *common, "--pointer-policy", "drop"]) == 0
    out = capsys.readouterr().out
    assert f"{len(dropping.dropped_frames)} dropped (of {dropping.frame_count} frames)" in out

    def written(root: str) -> set[int]:
        names = (tmp_path / root / "data" / "image" / "clean").glob("pointer_prc_*_clean_frame*.png")
        return {int(p.stem.rsplit("frame", 1)[1]) for p in names}

    assert written("kept") == set(range(dropping.frame_count))  # default "mask": every frame kept
    assert written("dropped") == set(range(dropping.frame_count)) - set(dropping.dropped_frames)
    with pytest.raises(SystemExit):
        main(["clean", str(clip), "--out", str(tmp_path / "x"), "--pointer-policy", "erase"])
    assert "invalid choice: 'erase'" in capsys.readouterr().err
