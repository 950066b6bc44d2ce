"""Specification of ``covidx-us demo``: the whole pipeline offline on the simulated release.

The slow tests run the real command once (a subprocess, HOME, cwd and TMPDIR in a sandbox, HF_HUB_OFFLINE=1) and
check what the issue's "Done when" asks: ``load_dataset(DIR, "frames-4class", streaming=True)`` yields frames whose
overlay pixels (the simulator's ground truth, mapped through the crop window) are gone, while the pixels away from
the masks equal the source frame decoded here with PyAV; the printed counts match the loaded dataset; the loopback
server is closed afterwards; nothing is written outside the output and work folders; examples/train.py trains on it.
The fast tests check the options and that the server is closed when the build fails or is interrupted.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from processing import cli
from processing.cli import demo
from processing.demo.simulate import LOGO_COLORS, POINTER_COLOR, RULER_COLOR, TEXT_COLOR, GroundTruth
from processing.errors import CovidxError

ROOT = Path(__file__).resolve().parents[1]
OVERLAY_COLOURS = np.array([*LOGO_COLORS.values(), POINTER_COLOR, TEXT_COLOR, RULER_COLOR], dtype=int)
# How far from a drawn overlay pixel the pipeline may change anything: the release masks grow the truth by 2 px
# (simrelease.MASK_DILATION), the pipeline's 5x5 dilation by up to 3 px (diagonal), JPEG mask edges by 1 px, and the
# inpainting radius is 3 px. Pixels farther than that must come out exactly as decoded.
FAR = 2 + 3 + 1 + 3 + 1
COUNT_LINE = re.compile(r"^(?P<config>(frames|videos)-\w+): (?P<splits>.+)$")
SPLIT_PART = re.compile(r"^(?P<split>\w+) (?P<videos>\d+) videos?(?: (?P<frames>\d+) frames?)?$")


def _port_is_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---- fast: options and shutdown on failure


def test_work_dir_defaults_beside_the_output_and_may_not_overlap_it(tmp_path):
    options = demo.DemoOptions(output=tmp_path / "covidx_us_demo")
    assert options.work_dir == tmp_path / "covidx_us_demo.work"
    assert options.run_dir == tmp_path / "covidx_us_demo.work" / "seed0-scale1-frames1"
    for work in (tmp_path / "covidx_us_demo" / "work", tmp_path / "covidx_us_demo", tmp_path):
        with pytest.raises(CovidxError, match="invalid work dir"):
            demo.DemoOptions(output=tmp_path / "covidx_us_demo", work_dir=work)


@pytest.mark.parametrize("kwargs,message", [
    ({"seed": -1}, "invalid seed -1"), ({"scale": 0.1}, "invalid scale 0.1; valid values: 0.25 to 8"),
    ({"frames": 20.0}, "invalid frames 20.0; valid values: 0.1 to 10"),
])
def test_bad_options_are_named_with_their_valid_values(tmp_path, kwargs, message):
    with pytest.raises(CovidxError, match=message):
        demo.DemoOptions(output=tmp_path / "out", **kwargs)


def test_format_counts_gives_videos_and_frames_per_split():
    counts = {"frames-4class": {"train": demo.SplitCount(11, 216), "test": demo.SplitCount(1, 1)},
              "videos-binary": {"train": demo.SplitCount(2, 2)}}
    assert demo.format_counts(counts) == ["frames-4class: train 11 videos 216 frames; test 1 video 1 frame",
                                          "videos-binary: train 2 videos"]


@pytest.mark.parametrize("failure,code", [(CovidxError("covidx-us build exited with 2"), 2), (KeyboardInterrupt(), 130)])
def test_the_server_is_closed_when_the_build_fails_or_is_interrupted(tmp_path, monkeypatch, capsys, failure, code):
    seen: list[str] = []

    def failing_build(argv: list[str]) -> None:
        prefix = argv[argv.index("--mirror") + 1]
        port = int(prefix.rsplit(":", 1)[1].strip("/"))
        assert not _port_is_closed(port)  # the site is up while the build runs
        seen.append(prefix)
        raise failure

    monkeypatch.setattr(demo, "_run_build", failing_build)
    args = ["demo", "--output", str(tmp_path / "out"), "--scale", "0.25", "--frames", "0.1"]
    assert cli.main(args) == code
    assert len(seen) == 1 and _port_is_closed(int(seen[0].rsplit(":", 1)[1].strip("/")))
    assert not (tmp_path / "out").exists()  # nothing exported
    assert "[3/4] building all six configs" in capsys.readouterr().err


# ---- slow: the real command, once for the module


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    sandbox = tmp_path_factory.mktemp("demo")
    out, work = sandbox / "covidx_us_demo", sandbox / "work"
    home, cwd, tmp = sandbox / "home", sandbox / "cwd", sandbox / "tmp"
    for folder in (home, cwd, tmp):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "XDG_", "COVIDX_US_", "HUGGINGFACE_", "TMP", "TEMP"))}
    env.update(HOME=str(home), TMPDIR=str(tmp), HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(work / "hf-datasets"))
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "processing.cli", "demo", "--output", str(out), "--workdir",
                             str(work)], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    stray = {name: _files(folder) for name, folder in (("HOME", home), ("cwd", cwd), ("TMPDIR", tmp))}
    stray["sandbox"] = sorted(p.name for p in sandbox.iterdir() if p not in (out, work, home, cwd, tmp))
    return {"out": out, "work": work, "stdout": result.stdout, "stderr": result.stderr, "seconds": seconds,
            "stray": stray}


@pytest.mark.slow
def test_demo_finishes_well_under_five_minutes_and_shows_its_stages(demo_run):
    assert demo_run["seconds"] < 300  # the subprocess may run for 900 s: this bound can fail
    for n, stage in enumerate(("writing the simulated release", "serving the clips", "building all six configs",
                               "counting the export"), start=1):
        assert f"[{n}/4] {stage}" in demo_run["stderr"]
    assert "--no-original" in demo_run["stdout"] and "SIMULATED" in demo_run["stdout"]


@pytest.mark.slow
def test_nothing_is_written_outside_the_output_and_work_dirs(demo_run):
    assert demo_run["stray"] == {"HOME": [], "cwd": [], "TMPDIR": [], "sandbox": []}


@pytest.mark.slow
def test_the_loopback_server_is_closed_after_the_run(demo_run):
    match = re.search(r"served on http://127\.0\.0\.1:(\d+)/ \(now closed\)", demo_run["stdout"])
    assert match, demo_run["stdout"]
    assert _port_is_closed(int(match.group(1)))


@pytest.mark.slow
def test_printed_counts_and_load_dataset_line_match_the_loaded_dataset(demo_run):
    import datasets

    out = demo_run["out"]
    assert f'ds = load_dataset("{out}", "frames-4class")' in demo_run["stdout"]
    assert f'load_dataset("{out}", "frames-4class", streaming=True)' in demo_run["stdout"]
    printed: dict[str, dict[str, tuple[int, int | None]]] = {}
    for m in filter(None, map(COUNT_LINE.match, demo_run["stdout"].splitlines())):
        parts = [SPLIT_PART.match(p) for p in m["splits"].split("; ")]
        assert all(parts), m.group(0)
        printed[m["config"]] = {p["split"]: (int(p["videos"]), int(p["frames"]) if p["frames"] else None)
                                for p in parts}
    assert sorted(printed) == sorted(f"{k}-{t}" for k in ("frames", "videos") for t in ("binary", "3class", "4class"))
    for config, splits in printed.items():
        loaded = datasets.load_dataset(str(out), config, cache_dir=str(demo_run["work"] / "hf-datasets"))
        actual = {}
        for split, part in loaded.items():
            ids = part["video_id"]
            actual[split] = (len(set(ids)), len(ids) if config.startswith("frames") else None)
            if config.startswith("videos"):
                assert len(ids) == len(set(ids))  # one example per clip
        assert actual == splits, config


@pytest.fixture(scope="module")
def simulation(demo_run):
    """The simulated release the demo served: ground truth, clips and catalogue, read from its work folder."""
    from processing.release.catalogue import load_catalogue

    (sim,) = demo_run["work"].glob("*/sim")
    catalogue = load_catalogue("1.5", sim / "release", custom=True, cache_dir=demo_run["work"] / "test-release")
    return sim, catalogue


def _decoded(clip: Path) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.slow
def test_streamed_frames_lose_their_overlays_and_keep_every_far_pixel(demo_run, simulation):
    import datasets

    sim, catalogue = simulation
    stream = datasets.load_dataset(str(demo_run["out"]), "frames-4class", streaming=True)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * FAR + 1, 2 * FAR + 1))
    truths, sources, frames_of = {}, {}, {}
    overlay_pixels = pointer_frames = 0
    in_source: list[np.ndarray] = []
    for split, part in stream.items():
        for row in part:
            vid, index = row["video_id"], row["frame_index"]
            if vid not in truths:
                truths[vid] = GroundTruth.load(sim / "truth" / f"{vid}.npz")
                (clip,) = (sim / "clips").glob(f"{vid}.*")
                sources[vid] = _decoded(clip)
            truth, window = truths[vid], truths[vid].fov_window
            image = np.asarray(row["image"].convert("RGB")).astype(int)
            h, w = image.shape[:2]
            assert (w, h) == (row["width"], row["height"]) and w >= window.w - 1 and h >= window.h - 1
            frames_of.setdefault(vid, []).append(index)
            drawn = truth.overlay_masks[index]
            overlay = drawn[window.slices()][:h, :w]
            source = sources[vid][index][window.slices()][:h, :w].astype(int)
            where = f"{split} {vid} frame {index}"
            if overlay.any():
                overlay_pixels += int(overlay.sum())
                pointer_frames += index in truth.pointer_frames
                # Independent check that the truth maps onto this frame: the source shows overlay colours there
                # (pooled over all frames below: chroma subsampling blurs a thin pointer on its own frame).
                in_source.append(np.abs(source[overlay][:, None] - OVERLAY_COLOURS[None]).max(-1).min(-1))
                assert np.abs(image[overlay] - source[overlay]).max(-1).mean() > 40, f"{where}: overlay unchanged"
                # Gone: no cleaned pixel at an overlay position is anywhere near an overlay colour.
                left = np.abs(image[overlay][:, None] - OVERLAY_COLOURS[None]).max(-1).min(-1)
                assert left.min() > 40, f"{where}: {int((left <= 40).sum())} overlay-coloured pixels left"
            near = cv2.dilate(drawn.astype(np.uint8), kernel).astype(bool)[window.slices()][:h, :w]
            far = ~near
            assert far.sum() > 0.5 * h * w, where
            assert np.array_equal(image[far], source[far]), f"{where}: pixels away from the masks changed"
    # Every kept frame of every clip was streamed, in the frames-4class config.
    assert sorted(frames_of) == sorted(v.id for v in catalogue.videos)
    for video in catalogue.videos:
        kept = [t for t in range(truths[video.id].num_frames) if not video.masks.is_deleted(t)]
        assert sorted(frames_of[video.id]) == kept, video.id
    assert overlay_pixels > 10_000 and pointer_frames > 0  # the checks above did bite, pointer frames included
    assert np.median(np.concatenate(in_source)) <= 4


@pytest.mark.slow
def test_train_example_runs_three_steps_on_the_demo_build(demo_run, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train.py"), "--data", str(demo_run["out"]), "--config",
         "frames-4class", "--max-steps", "3", "--batch-size", "4", "--image-size", "32", "--shuffle-buffer", "16",
         "--output-dir", str(tmp_path / "model")],
        capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    loss = re.search(r"^train_loss = (\S+)$", result.stdout, re.MULTILINE)
    assert loss and np.isfinite(float(loss.group(1))), result.stdout
    match = re.search(r"^accuracy\[all\] = \S+ \((\d+)/(\d+)\)$", result.stdout, re.MULTILINE)
    validation = re.search(r"^frames-4class: .*validation \d+ videos? (\d+) frames?", demo_run["stdout"], re.MULTILINE)
    assert match and validation, result.stdout
    assert int(match.group(2)) == int(validation.group(1))  # the whole validation split was evaluated
    assert (tmp_path / "model" / "config.json").is_file()


@pytest.mark.slow
def test_keep_server_serves_the_sources_until_ctrl_c_then_closes(demo_run, simulation, tmp_path):
    import signal
    import urllib.request

    sim, catalogue = simulation
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(  # same work dir: downloads and processed clips are reused
        [sys.executable, "-m", "processing.cli", "demo", "--output", str(tmp_path / "out"), "--workdir",
         str(demo_run["work"]), "--keep-server"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal
    try:
        prefix = None
        for line in process.stderr:
            if m := re.match(r"serving (http://127\.0\.0\.1:\d+/) until Ctrl-C", line):
                prefix = m.group(1)
                break
        assert prefix, "the demo did not report its server"
        video = catalogue["6_litfl_pneumonia"]
        with urllib.request.urlopen(prefix + video.url.split("://", 1)[1], timeout=10) as response:
            assert response.read() == (sim / "clips" / "6_litfl_pneumonia.mp4").read_bytes()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "frames-4class: train" in stdout, stdout[-2000:] + stderr[-2000:]
    assert _port_is_closed(int(prefix.rsplit(":", 1)[1].strip("/")))


@pytest.mark.slow
def test_the_demo_card_says_simulated_first_and_push_refuses_it_offline(demo_run):
    out = demo_run["out"]
    body = (out / "README.md").read_text().split("---\n", 2)[2].lstrip("\n")
    assert body.splitlines()[0] == "# SIMULATED build: not COVIDx-US data (covidx-us demo)"
    assert "127.0.0.1" not in (out / "README.md").read_text()
    mlc = pytest.importorskip("mlcroissant")
    assert "SIMULATED" in mlc.Dataset(jsonld=str(out / "croissant.json")).metadata.name
    record = json.loads((out / "build_record.json").read_text())
    assert record["release"]["simulated"] is True and record["tool"]["version"]
    # one line per build about split sizes, not one per config
    assert demo_run["stderr"].count("split sizes differ from dataset_infos.json") == 1
    # the demo prints the next commands for the folder it wrote; push is refused before any network access
    assert f"covidx-us report {out}" in demo_run["stdout"] and f"push NAMESPACE/NAME {out}" in demo_run["stdout"]
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_x"}  # port 9: nothing listens
    result = subprocess.run([sys.executable, "-m", "processing.cli", "push", "someone/x", str(out)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "SIMULATED" in result.stderr and "--allow-custom" in result.stderr
