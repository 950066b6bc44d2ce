"""Specification of covidx_us (the builder) and `covidx-us build`.

Fast tests check configs, features and dataset_infos.json; the slow end-to-end tests build every config from the
simulated release served by a LoopbackSite (``--mirror``, original hosts off) and load the export with stock
`datasets`, offline.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections import defaultdict
from pathlib import Path

import av
import datasets
import numpy as np
import pytest

import covidx_us
from covidx_us import CONFIG_NAMES, PROCESSING_FORMAT, CovidxUS, CovidxUSConfig, compare_counts, features_for
from processing import cli
from processing.build.splits import assign_splits
from processing.errors import CovidxError, InvalidChoiceError
from processing.release.catalogue import TASKS, load_catalogue

# ---- configs


def test_six_configs_with_the_papers_defaults():
    assert CONFIG_NAMES == ("frames-binary", "frames-3class", "frames-4class",
                            "videos-binary", "videos-3class", "videos-4class")
    for name in CONFIG_NAMES:
        config = CovidxUS.BUILDER_CONFIGS[CONFIG_NAMES.index(name)]
        assert isinstance(config, CovidxUSConfig) and isinstance(config, datasets.BuilderConfig)
        assert (config.release, config.max_frames, config.sample_hz, config.inpaint, config.image_format) == (
            "1.5", None, None, "ns", "png")
        assert (config.split, config.seed, config.sources, config.probes) == ("default", 0, None, None)
        assert config.kind == name.split("-")[0] and config.task == name.split("-")[1]


def test_parameters_override_the_config_and_change_its_cache_id(tmp_path):
    builder = CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), max_frames=8, sources=["litfl"])
    assert builder.config.max_frames == 8 and builder.config.sources == ("litfl",)
    assert builder.config_id != "frames-4class"
    assert CovidxUS.BUILDER_CONFIGS[2].max_frames is None  # the shared default is untouched
    assert CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path)).config_id == "frames-4class"


def test_configs_are_frozen_and_replace_revalidates():
    config = CovidxUS.BUILDER_CONFIGS[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    assert dataclasses.replace(config, seed=3).seed == 3
    with pytest.raises(InvalidChoiceError, match="valid values: ns, telea"):
        dataclasses.replace(config, inpaint="biharmonic")


@pytest.mark.parametrize("kwargs,message", [
    ({"config_name": "frames-5class"}, "invalid config 'frames-5class'; valid values: frames-binary, frames-3class"),
    ({"max_frame": 3}, "invalid parameter 'max_frame'; valid values: .*max_frames"),
    ({"inpaint": "fast"}, "invalid inpaint 'fast'; valid values: ns, telea"),
    ({"image_format": "gif"}, "invalid image_format 'gif'; valid values: png, jpeg"),
    ({"split": "random"}, "invalid split 'random'; valid values: default, none, kfold"),
    ({"split": "kfold", "fold": 9}, "invalid fold 9; valid values: 0, 1, 2, 3, 4"),
    ({"release": "2.0"}, "invalid release '2.0'; valid values: 1.0, 1.1"),
    ({"sources": ["youtube"]}, "invalid source 'youtube'; valid values: butterfly, grepmed"),
    ({"probes": ["phased"]}, "invalid probe 'phased'; valid values: convex, linear"),
    ({"max_frames": 0}, "invalid max_frames 0"),
    ({"sample_hz": -3.0}, "invalid sample_hz -3.0"),
    ({"mirrors": ("ftp://x/",)}, "invalid mirror 'ftp://x/'"),
    ({"custom_release": True}, "custom_release needs release_dir"),
])
def test_bad_parameters_are_named_with_their_valid_values(tmp_path, kwargs, message):
    kwargs = {"config_name": "frames-4class", **kwargs}
    with pytest.raises(CovidxError, match=message):
        CovidxUS(cache_dir=str(tmp_path), **kwargs)


# ---- features and dataset_infos.json


def test_features_of_frames_and_videos_configs():
    frames = features_for("frames-3class")
    assert list(frames) == ["image", "label", "video_id", "frame_index", "timestamp", "source", "probe", "width",
                            "height", "original_width", "original_height", "patient_id", "luss", "release", "origin",
                            "copy_repository", "copy_commit"]
    assert isinstance(frames["image"], datasets.Image)
    assert frames["label"].names == ["covid", "pneumonia", "normal"]
    videos = features_for("videos-binary")
    assert list(videos) == ["video", "label", "video_id", "source", "probe", "width", "height", "fps",
                            "num_frames", "patient_id", "luss", "release", "origin", "copy_repository",
                            "copy_commit"]
    assert isinstance(videos["video"], datasets.Video) and videos["label"].names == ["covid", "non-covid"]


def test_dataset_infos_json_holds_every_configs_features():
    infos = json.loads(covidx_us.DATASET_INFOS_PATH.read_text())
    assert sorted(infos) == sorted(CONFIG_NAMES)
    for name in CONFIG_NAMES:
        assert datasets.Features.from_dict(infos[name]["features"]) == features_for(name)


def test_dataset_infos_json_split_sizes_are_those_of_the_official_release(reference_release, tmp_path):
    catalogue = load_catalogue("1.5", reference_release, cache_dir=tmp_path)
    infos = json.loads(covidx_us.DATASET_INFOS_PATH.read_text())
    for name in CONFIG_NAMES:
        task = name.split("-")[1]
        videos = catalogue.filter(task=task).videos
        splits = assign_splits([v.group for v in videos], [v.task_label(task) for v in videos], seed=0)
        expected = {s: splits.count(s) for s in ("train", "validation", "test")}
        assert infos[name]["expected_videos"]["splits"] == expected
        assert infos[name]["expected_videos"]["commit"] == catalogue.commit
    assert sum(infos["frames-4class"]["expected_videos"]["splits"].values()) == 242  # 243 ids less the withdrawn one


def test_compare_counts_says_what_differs():
    assert compare_counts({"train": 3, "test": 1}, {"train": 3, "test": 1}) == []
    assert compare_counts({"train": 3, "test": 1}, {"train": 2, "test": 1}) == ["train: expected 3 videos, built 2"]


def test_only_default_video_parameters_make_a_size_mismatch_an_error():
    base = CovidxUS.BUILDER_CONFIGS[2]
    assert base.counts_are_checked()
    assert dataclasses.replace(base, max_frames=5, inpaint="telea").counts_are_checked()  # frames, not videos
    for change in ({"seed": 1}, {"sources": ("litfl",)}, {"split": "none"}, {"release": "1.2"}):
        assert not dataclasses.replace(base, **change).counts_are_checked()


def test_cli_rejects_an_unknown_config(capsys):
    assert cli.main(["build", "--config", "frames-9class"]) == 2
    assert "invalid config 'frames-9class'; valid values: frames-binary" in capsys.readouterr().err


# ---- end to end on the simulated release, served by a loopback site


@pytest.fixture(scope="module")
def simulated(simulated_site):
    """The simulated release at half size and full length, served by a loopback site (tests/site_fixtures.py)."""
    served = simulated_site(0.5, 1.0)
    return served.sim, served.catalogue, served.site


def _build_args(sim, site, tmp: Path, *extra: str) -> list[str]:
    return ["build", "--release-dir", str(sim.release_dir), "--custom-release", "--mirror", site.prefix,
            "--no-original", "--delay", "0", "--cache-dir", str(tmp / "cache"), "--output", str(tmp / "covidx_us"),
            *extra]


@pytest.fixture(scope="module")
def built(simulated, tmp_path_factory):
    sim, catalogue, site = simulated
    tmp = tmp_path_factory.mktemp("build")
    assert cli.main(_build_args(sim, site, tmp, "--config", "all")) == 0
    return tmp / "covidx_us", catalogue


def _load(export: Path, name: str, monkeypatch, **kwargs):
    monkeypatch.chdir(export.parent)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return datasets.load_dataset(export.name, name, cache_dir=str(export.parent / "hf-cache"), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_config_builds_loads_offline_and_does_not_leak(built, name, monkeypatch):
    export, catalogue = built
    ds = _load(export, name, monkeypatch)
    task = name.split("-")[1]
    wanted = catalogue.filter(task=task).videos
    expected_split = dict(zip([v.id for v in wanted], assign_splits(
        [v.group for v in wanted], [v.task_label(task) for v in wanted], seed=0), strict=True))
    names = ds["train"].features["label"].names
    assert names == list(TASKS[task])
    split_of_video: dict[str, set[str]] = defaultdict(set)
    split_of_group: dict[str, set[str]] = defaultdict(set)
    for split, part in ds.items():
        for row in part.remove_columns([c for c in ("image", "video") if c in part.column_names]):
            video = catalogue[row["video_id"]]
            assert names[row["label"]] == video.task_label(task)  # labels match the catalogue
            assert (row["source"], row["probe"], row["patient_id"]) == (video.source, video.probe, video.patient_id)
            assert row["release"] == "1.5+custom"
            split_of_video[row["video_id"]].add(split)
            split_of_group[video.group].add(split)
    assert set(split_of_video) == {v.id for v in wanted}  # every clip of the task, nothing else
    assert all(len(s) == 1 for s in split_of_video.values()) and all(len(s) == 1 for s in split_of_group.values())
    assert {v: s.pop() for v, s in split_of_video.items()} == expected_split


@pytest.mark.slow
def test_frames_are_embedded_images_matching_their_fields_and_stream(built, monkeypatch):
    export, _catalogue = built
    ds = _load(export, "frames-4class", monkeypatch)["train"]
    row = ds[0]
    assert row["image"].size == (row["width"], row["height"])
    assert row["original_width"] >= row["width"] and row["original_height"] >= row["height"]
    streamed = next(iter(_load(export, "frames-4class", monkeypatch, streaming=True)["train"]))
    assert streamed["video_id"] == row["video_id"] and streamed["frame_index"] == row["frame_index"]
    assert streamed["image"].tobytes() == row["image"].tobytes()


@pytest.mark.slow
def test_video_bytes_decode_with_pyav_and_match_their_fields(built, monkeypatch):
    export, _catalogue = built
    ds = _load(export, "videos-4class", monkeypatch)["train"].cast_column("video", datasets.Video(decode=False))
    row = ds[0]
    with av.open(io.BytesIO(row["video"]["bytes"])) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    assert len(frames) == row["num_frames"]
    assert frames[0].size == (row["width"], row["height"])


@pytest.mark.slow
def test_card_records_a_custom_release_and_the_parameters(built):
    export, _catalogue = built
    card = (export / "README.md").read_text()
    # the simulated release's folder carries SIMULATED.md: a custom release whose card says it is simulated
    assert "SIMULATED release 1.5 (covidx-us demo)" in card and "not the official COVIDx-US" in card
    assert '"inpaint": "ns"' in card and "Download manifest sha256: " in card
    assert "| The POCUS Atlas (`pocusatlas`) | 2 | CC BY-NC 4.0 |" in card


@pytest.mark.slow
def test_missing_videos_stop_the_build_before_the_export_unless_allowed(simulated_site, tmp_path, capsys):
    served = simulated_site(0.5, 1.0, missing=("7_litfl_pneumonia",))
    sim, catalogue, site = served.sim, served.catalogue, served.site
    gone = catalogue["7_litfl_pneumonia"]
    out = tmp_path / "covidx_us"
    out.mkdir()
    (out / "README.md").write_text("previous export\n")
    args = _build_args(sim, site, tmp_path, "--config", "videos-binary", "--source", "litfl")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "7_litfl_pneumonia" in err and "--allow-missing" in err
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]  # the earlier export is untouched
    assert (out / "README.md").read_text() == "previous export\n"
    assert cli.main([*args, "--allow-missing"]) == 0
    card = (out / "README.md").read_text()
    assert "Missing videos left out (1): 7_litfl_pneumonia" in card
    loaded = datasets.load_dataset(str(out), "videos-binary", cache_dir=str(tmp_path / "hf"))
    ids = {vid for part in loaded.values() for vid in part["video_id"]}
    assert ids == {v.id for v in catalogue.filter(sources=["litfl"]).videos} - {gone.id}


def test_a_default_build_with_other_split_sizes_fails_and_says_what_differs(tmp_path):
    config = CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path)).config
    expected = covidx_us.load_expected()["frames-4class"]
    with pytest.raises(covidx_us.ExpectedCountsError, match=f"test: expected {expected['test']} videos, built "):
        covidx_us.check_counts(config, {**expected, "test": expected["test"] - 1})
    assert covidx_us.check_counts(config, dict(expected)) == ()  # equal: fine


def test_a_non_default_build_only_records_the_differences_for_one_line_per_build(tmp_path, caplog):
    config = CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), seed=7).config
    with caplog.at_level("INFO", logger="covidx_us"):
        differences = covidx_us.check_counts(config, {"train": 1, "validation": 1, "test": 1})  # not a default build
    assert "train: expected 170 videos, built 1" in differences
    assert caplog.text == ""  # covidx-us build says it once for all configs (tests/test_demo.py)


@pytest.mark.slow
def test_builder_used_directly_caches_in_the_download_manager_and_reuses_processed_clips(simulated, tmp_path,
                                                                                          monkeypatch):
    sim, catalogue, site = simulated
    params = dict(release_dir=str(sim.release_dir), custom_release=True, mirrors=(site.prefix,), use_original=False,
                  download_delay=0, sources=["pocusatlas"])
    # videos first: a frames config needs no clean video, so its records would not do for a videos config
    builder = CovidxUS(config_name="videos-binary", cache_dir=str(tmp_path / "hf"), **params)
    builder.download_and_prepare()
    clips = builder.as_dataset()
    assert (tmp_path / "hf" / "downloads" / "covidx_us" / "processed").is_dir()
    pocus = {v.id for v in catalogue.filter(sources=["pocusatlas"]).videos}
    assert {vid for part in clips.values() for vid in part["video_id"]} == pocus

    import processing.pixels.pipeline

    def no_processing(*args, **kwargs):
        raise AssertionError("processed clips should come from the cache")

    monkeypatch.setattr(processing.pixels.pipeline, "process_clip", no_processing)
    again = CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path / "hf"), **params)
    again.download_and_prepare()
    frames = again.as_dataset()
    assert {vid for part in frames.values() for vid in part["video_id"]} == pocus


@pytest.mark.slow
def test_kfold_build_exports_one_split_per_fold_and_folds_partition_the_patients(simulated, tmp_path):
    sim, catalogue, site = simulated
    args = _build_args(sim, site, tmp_path, "--config", "videos-4class", "--split", "kfold", "--num-folds", "3")
    assert cli.main(args) == 0
    out = tmp_path / "covidx_us"
    ds = datasets.load_dataset(str(out), "videos-4class", cache_dir=str(tmp_path / "hf"))
    assert sorted(ds) == ["fold0", "fold1", "fold2"]
    groups = {split: {catalogue[v].group for v in part["video_id"]} for split, part in ds.items()}
    assert not (groups["fold0"] & groups["fold1"]) and not (groups["fold1"] & groups["fold2"])
    assert not (groups["fold0"] & groups["fold2"])
    assert sum(len(part) for part in ds.values()) == len(catalogue.videos)


# ---- crops and masks: release | auto | both (issue 7), plans moved between windows


def test_crop_and_masks_parameters_are_validated_with_their_valid_values(tmp_path):
    with pytest.raises(InvalidChoiceError, match="invalid crop 'sector'; valid values: release, auto"):
        CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), crop="sector")
    with pytest.raises(InvalidChoiceError, match="invalid masks 'none'; valid values: release, auto, both"):
        CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), masks="none")
    with pytest.raises(CovidxError, match="invalid num_proc 0; valid values: a positive integer"):
        CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), num_proc=0)
    config = CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), crop="auto", masks="both").config
    assert (config.crop, config.masks) == ("auto", "both")


def test_default_crop_and_masks_keep_the_processed_cache_key_and_num_proc_changes_nothing_recorded(tmp_path):
    base = CovidxUS.BUILDER_CONFIGS[2]
    # default crop/masks add nothing to the key; the format is the processed-output version of covidx_us.py
    assert base.processing_key() == {"format": PROCESSING_FORMAT, "max_frames": None, "sample_hz": None,
                                     "inpaint": "ns", "image_format": "png"}
    assert dataclasses.replace(base, crop="auto").processing_key()["crop"] == "auto"
    fast = CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), num_proc=7)
    assert fast.config.workers() == 7 and fast.config_id == "frames-4class"
    card = dataclasses.replace(base, work_dir="/home/me/cache", num_proc=3).card_parameters()
    assert not {"num_proc", "work_dir", "data_dir", "release_dir"} & set(card) and card["inpaint"] == "ns"


def test_move_mask_keeps_pixels_at_their_place_in_the_source_frame():
    from processing.build.processed import move_mask
    from processing.windows import Window

    mask = np.zeros((4, 6), bool)
    mask[1, 2] = mask[3, 5] = True  # source pixels (12, 21) and (15, 23) of a window at x=10, y=20
    moved = move_mask(mask, Window(10, 20, 6, 4), Window(11, 18, 4, 5))
    assert moved.shape == (5, 4)
    assert np.argwhere(moved).tolist() == [[3, 1]]  # (12, 21) -> row 21-18, col 12-11; (15, 23) is cut away
    with pytest.raises(CovidxError, match="does not match its window"):
        move_mask(mask, Window(0, 0, 5, 4), Window(0, 0, 5, 4))


def test_dropped_frames_become_merged_inclusive_ranges():
    from processing.build.processed import frame_ranges, merge_ranges

    assert frame_ranges((9, 3, 4, 5)) == [(3, 5), (9, 9)]
    assert merge_ranges([(10, 12), (3, 5), (6, 6), (11, 20)]) == ((3, 6), (10, 20))


@pytest.mark.slow
def test_masks_both_is_the_union_of_the_release_and_the_detected_masks(simulated, tmp_path):
    from processing.build.processed import ClipJob, move_mask, run_job
    from processing.pixels.autodetect import detect_clip
    from processing.pixels.crop import fit_mask
    from processing.pixels.masks import read_mask
    from processing.pixels.pipeline import ProcessingOptions
    from processing.windows import Window

    sim, catalogue, _site = simulated
    video = next(v for v in catalogue.videos if v.masks.main_mask)
    source = sim.clips[video.id]
    job = ClipJob(video=video, source=source, source_sha256=None, mask_dir=sim.release_dir / "data" / "mask",
                  out_root=tmp_path, options=ProcessingOptions(max_frames=2), crop="release", masks="both")
    data = run_job(job)
    plan = data["plan"]
    window = Window(*plan["window"])
    assert (plan["crop"], plan["masks"]) == ("release", "both")
    union = read_mask(plan["main_mask"])
    release_file = sim.release_dir / "data" / "mask" / video.masks.main_mask
    release = fit_mask(read_mask(release_file), window.size, source, release_file)
    detection = detect_clip(source, clip_id=video.id, pointer_policy="drop")
    detected = move_mask(detection.main_mask, detection.window, window)
    assert (union == (release | detected)).all()
    assert release.any() and detected.any()
    assert data["record"]["frames_kept"] == 2 and json.loads(job.record_path.read_text()) == data


# ---- speed, incremental rebuilds, crash safety (issue 9), build record


def _export_files(out: Path) -> dict[str, bytes]:
    """Every file of an export but build_record.json (which holds the time and local paths)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "build_record.json"}


@pytest.fixture(scope="module")
def tiny(simulated_site):
    """A small simulated release (frames quartered, sizes halved) served by a loopback site."""
    served = simulated_site(0.5, 0.25)
    return served.sim, served.catalogue, served.site


def _params(sim, site, work: Path, **extra):
    return {"release_dir": str(sim.release_dir), "custom_release": True, "mirrors": (site.prefix,),
            "use_original": False, "download_delay": 0, "work_dir": str(work), **extra}


@pytest.mark.slow
def test_two_processes_export_the_same_bytes_as_one(tiny, tmp_path):
    from processing.cli.build import build

    sim, catalogue, site = tiny
    names = ("frames-4class", "videos-binary")
    serial, summary = build(names, _params(sim, site, tmp_path / "c1", num_proc=1), tmp_path / "serial")
    parallel, _ = build(names, _params(sim, site, tmp_path / "c2", num_proc=2), tmp_path / "parallel")
    assert len(summary["videos-binary"]["processed"]) == len(catalogue.videos)  # fresh caches: all processed
    assert _export_files(serial) == _export_files(parallel)
    assert any(name.endswith(".parquet") for name in _export_files(serial))


@pytest.mark.slow
def test_rebuilds_redo_only_what_a_changed_parameter_touches(tiny, tmp_path):
    from processing.cli.build import build

    sim, catalogue, site = tiny
    names = ("frames-4class",)
    every = sorted(v.id for v in catalogue.videos)
    _, first = build(names, _params(sim, site, tmp_path / "cache"), tmp_path / "out")
    assert sorted(first["frames-4class"]["processed"]) == every
    assert not list((tmp_path / "cache" / "processed").rglob("*.mp4"))  # frames only: no video is encoded
    records = sorted((tmp_path / "cache" / "processed").rglob("records/*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in records}
    before = _export_files(tmp_path / "out")
    hits = len(site.hits())

    _, again = build(names, _params(sim, site, tmp_path / "cache"), tmp_path / "out")
    assert again["frames-4class"]["processed"] == () and sorted(again["frames-4class"]["reused"]) == every
    assert {p: p.stat().st_mtime_ns for p in records} == stamps  # nothing rewritten
    assert _export_files(tmp_path / "out") == before
    assert len(site.hits()) == hits  # verified downloads reused: no request at all

    _, seed = build(names, _params(sim, site, tmp_path / "cache", seed=5), tmp_path / "out")
    assert seed["frames-4class"]["processed"] == ()  # a new split: export only
    assert {p: p.stat().st_mtime_ns for p in records} == stamps

    _, telea = build(names, _params(sim, site, tmp_path / "cache", inpaint="telea"), tmp_path / "out")
    assert sorted(telea["frames-4class"]["processed"]) == every  # other pixels: reprocessed ...
    assert len(site.hits()) == hits  # ... from the cached downloads
    assert {p: p.stat().st_mtime_ns for p in records} == stamps  # the ns clips stay cached beside

    _, both = build(("frames-4class", "videos-4class"), _params(sim, site, tmp_path / "cache"), tmp_path / "out")
    assert sorted(both["videos-4class"]["processed"]) == every  # the clean videos were never made ...
    assert both["frames-4class"]["processed"] == ()  # ... and frames reuse those records, in either order
    assert {k: v for k, v in _export_files(tmp_path / "out").items() if k.startswith("frames-4class/")} == {
        k: v for k, v in before.items() if k.startswith("frames-4class/")}


def _run_build(args: list[str], log: Path):
    import subprocess
    import sys

    env = {**os.environ, "COVIDX_US_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "processing.cli", *args], cwd=str(Path(covidx_us.__file__).parent),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _kill_when(proc, ready, timeout: float = 60.0) -> bool:
    """SIGKILL ``proc`` (the build process only, not its workers) once ``ready()``; False if it ended first."""
    import signal
    import time

    def ready_now() -> bool:
        try:
            return ready()
        except FileNotFoundError:  # a folder the predicate looks into was renamed or removed by the build meanwhile
            return False

    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready_now():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def _group_gone(pgid: int, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_a_build_killed_at_any_point_resumes_to_the_same_export(tiny, tmp_path):
    import random
    import time

    sim, catalogue, site = tiny
    log = tmp_path / "build.log"

    def args(tag: str) -> list[str]:
        return ["build", "--config", "frames-4class,videos-binary", "--release-dir", str(sim.release_dir),
                "--custom-release", "--mirror", site.prefix, "--no-original", "--delay", "0", "--num-proc", "2",
                "--cache-dir", str(tmp_path / f"cache-{tag}"), "--output", str(tmp_path / f"out-{tag}")]

    clock = time.monotonic()
    reference = _run_build(args("ref"), log)
    assert reference.wait(timeout=120) == 0, log.read_text()[-3000:]
    whole = time.monotonic() - clock
    expected = _export_files(tmp_path / "out-ref")

    records = tmp_path / "cache-crash" / "processed"
    out = tmp_path / "out-crash"

    def state() -> dict[str, tuple[int, int]]:
        """Every file of the crashing build's cache and outputs: what a kill can interrupt."""
        files = {}
        for root in (tmp_path / "cache-crash", out, *tmp_path.glob(".out-crash*")):
            for path in list(root.rglob("*")) if root.exists() else ():
                try:
                    stat = path.stat()
                except FileNotFoundError:  # renamed or removed by the build meanwhile
                    continue
                files[str(path)] = (stat.st_size, stat.st_mtime_ns)
        return files

    def records_done() -> int:
        # processed/<key>/records/*.json only: a walk of the whole tree would race the build's staging folders
        return len(list(records.glob("*/records/*.json")))

    # Each kill point is made when its build starts: delays run from that start, record counts from what the
    # earlier runs left.
    def after_records(n: int):
        def arm():
            before = records_done()
            return lambda: records_done() >= before + n
        return arm

    def at_delay(seconds: float):
        def arm():
            start = time.monotonic()
            return lambda: time.monotonic() - start >= seconds
        return arm

    def exporting():
        return lambda: any(tmp_path.glob(".out-crash.tmp-*/*/*.parquet"))

    rng = random.Random(9)
    points = [at_delay(rng.uniform(0.3, 0.5) * whole), after_records(1), after_records(len(catalogue.videos) // 3),
              at_delay(rng.uniform(0.6, 0.9) * whole), exporting]
    killed = []
    for arm in points:
        before = state()
        proc = _run_build(args("crash"), log)
        fired = _kill_when(proc, arm())
        assert _group_gone(proc.pid), "worker processes outlived the killed build"
        killed.append(fired and state() != before)  # a kill counts only if the build had changed something
    assert sum(killed) >= 3, f"the build ended before most kill points, or was killed before doing anything: " \
                             f"{killed}; the test did not test much"
    final = _run_build(args("crash"), log)
    assert final.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert _export_files(out) == expected
    assert not list(tmp_path.glob(".out-crash.*"))  # no leftover of the killed exports
    assert not [p for p in records.rglob(".*") if "tmp-" in p.name]  # nor of the killed clips
    downloads = tmp_path / "cache-crash" / "downloads"
    assert not [p for p in downloads.rglob(".*") if "tmp-" in p.name]  # nor of the killed downloads (.part.tmp-*.json)
    record = json.loads((out / "build_record.json").read_text())
    assert sorted(v["id"] for v in record["videos"]) == sorted(v.id for v in catalogue.videos)


@pytest.mark.slow
def test_build_record_describes_every_video_beside_the_export(simulated_site, tmp_path):
    from processing.cli.build import build

    served = simulated_site(0.5, 0.25, missing=("7_litfl_pneumonia",))
    sim, catalogue, site = served.sim, served.catalogue, served.site
    gone = catalogue["7_litfl_pneumonia"]
    out, summaries = build(("frames-4class", "videos-3class"),
                           _params(sim, site, tmp_path / "cache", allow_missing=True, max_frames=3), tmp_path / "out")
    record = json.loads((out / "build_record.json").read_text())
    assert not list((tmp_path / "cache" / "processed").rglob("cropped/*"))  # no example needs the cropped video
    assert record["format"] == 1 and record["configs"] == ["frames-4class", "videos-3class"]
    assert record["created"].endswith("Z") and record["parameters"]["max_frames"] == 3
    assert record["release"] == {"version": "1.5", "commit": None, "official": False, "simulated": True,
                                 "release_dir": str(sim.release_dir.absolute())}
    from processing import __version__

    assert record["tool"]["version"] == __version__
    assert record["work_dir"] == str((tmp_path / "cache").absolute())
    assert record["splits"]["frames-4class"] == summaries["frames-4class"]["videos"]
    assert "Download manifest sha256: " + record["download_manifest_digest"] in (out / "README.md").read_text()
    entries = {v["id"]: v for v in record["videos"]}
    assert list(entries) == [v.id for v in catalogue.videos]  # catalogue order, every video of any config
    missing = entries[gone.id]
    assert missing["download"]["status"] == "missing" and missing["plan"] is None and missing["record"] is None
    assert missing["reason"]
    loaded = datasets.load_dataset(str(out), "frames-4class", cache_dir=str(tmp_path / "hf"))
    rows = defaultdict(list)
    for split, part in loaded.items():
        for vid, index in zip(part["video_id"], part["frame_index"], strict=True):
            rows[vid].append((split, index))
    for video in catalogue.videos:
        if video.id == gone.id:
            continue
        entry = entries[video.id]
        assert (entry["source"], entry["label"], entry["probe"]) == (video.source, video.label, video.probe)
        assert entry["download"]["status"] == "mirror" and Path(entry["download"]["path"]).is_file()
        assert entry["plan"]["crop"] == "release" and entry["plan"]["masks"] == "release"
        assert entry["plan"]["window"] == _xywh(video, entry)
        frames = entry["record"]["frames"]
        assert entry["record"]["frames_kept"] == len(frames) == len(rows[video.id])
        assert sorted(i for _s, i in rows[video.id]) == sorted(f[0] for f in frames)
        assert {s for s, _i in rows[video.id]} == {entry["split"]["frames-4class"]}
        assert all(Path(f[2]).is_file() for f in frames)
        assert ("videos-3class" in entry["split"]) == (video.label != "other")
        clean = entry["record"]["clean_video"]  # encoded only for the clips a videos config holds
        assert Path(clean).is_file() if video.label != "other" else clean is None


def _xywh(video, entry):
    window = video.crop_rule.window(*entry["record"]["source_size"])
    return [window.x, window.y, window.w, window.h]


@pytest.mark.slow
def test_crop_auto_finds_the_release_windows_and_builds(simulated, tmp_path):
    from processing.cli.build import build
    from processing.pixels.autodetect import window_iou
    from processing.windows import Window

    sim, catalogue, site = simulated
    out, _ = build(("frames-4class",), _params(sim, site, tmp_path / "cache", crop="auto", max_frames=2),
                   tmp_path / "out")
    record = json.loads((out / "build_record.json").read_text())
    ious = {}
    for entry in record["videos"]:
        video = catalogue[entry["id"]]
        release = video.crop_rule.window(*entry["record"]["source_size"])
        assert entry["plan"]["crop"] == "auto" and entry["plan"]["masks"] == "release"
        ious[entry["id"]] = window_iou(Window(*entry["plan"]["window"]), release)
        assert entry["record"]["crop_size"] == entry["plan"]["window"][2:]
    assert len(ious) == len(catalogue.videos) and min(ious.values()) >= 0.9, ious
    loaded = datasets.load_dataset(str(out), "frames-4class", cache_dir=str(tmp_path / "hf"))
    assert sum(len(part) for part in loaded.values()) == 2 * len(catalogue.videos)


@pytest.mark.slow
def test_progress_bars_show_per_clip_on_a_terminal_and_stay_quiet_otherwise(tiny, tmp_path, monkeypatch, capfd):
    from processing.cli.build import build

    sim, _catalogue, site = tiny
    params = _params(sim, site, tmp_path / "cache", sources=["litfl"], max_frames=1, num_proc=1)
    monkeypatch.setenv("COVIDX_US_PROGRESS", "0")
    build(("frames-4class",), params, tmp_path / "quiet")
    assert "%|" not in capfd.readouterr().err  # neither ours nor datasets'
    monkeypatch.setenv("COVIDX_US_PROGRESS", "1")
    build(("frames-4class",), {**params, "max_frames": 2}, tmp_path / "bars")
    err = capfd.readouterr().err
    assert "download: 100%" in err and "process frames-4class: 100%" in err


def test_without_num_proc_little_work_stays_in_this_process(tiny, tmp_path, monkeypatch):
    from processing.cli.build import build

    sim, catalogue, site = tiny
    assert covidx_us._source_pixels([type("J", (), {"video": v}) for v in catalogue.videos]) < \
        covidx_us.PARALLEL_MIN_PIXELS

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started for a few small clips")

    monkeypatch.setattr(covidx_us, "ProcessPoolExecutor", no_pool)
    _, summary = build(("frames-4class",), _params(sim, site, tmp_path / "cache", max_frames=1, sources=["litfl"]),
                       tmp_path / "out")
    assert summary["frames-4class"]["processed"]


def test_a_video_without_crop_rule_or_mask_plan_falls_back_to_auto(simulated):
    from processing.build.processed import ClipJob
    from processing.pixels.pipeline import ProcessingOptions

    sim, catalogue, _site = simulated
    video = catalogue.videos[0]
    job = ClipJob(video=video, source=sim.clips[video.id], source_sha256=None, mask_dir=sim.release_dir,
                  out_root=Path("unused"), options=ProcessingOptions())
    assert (job.crop_mode, job.mask_mode) == ("release", "release")
    bare = dataclasses.replace(job, video=dataclasses.replace(video, crop_rule=None, masks=None))
    assert (bare.crop_mode, bare.mask_mode) == ("auto", "auto")
    assert bare.fingerprint() != job.fingerprint()
    with pytest.raises(InvalidChoiceError, match="invalid masks 'all'; valid values: release, auto, both"):
        dataclasses.replace(job, masks="all")


@pytest.mark.slow
def test_masks_auto_uses_the_detected_overlays_and_drops_pointer_frames(simulated, tmp_path):
    from processing.build.processed import ClipJob, frame_ranges, run_job
    from processing.pixels.autodetect import detect_clip
    from processing.pixels.pipeline import ProcessingOptions

    sim, catalogue, _site = simulated
    video = next(v for v in catalogue.videos if v.masks.frame_masks or v.masks.deleted)  # a clip with a pointer
    source = sim.clips[video.id]
    data = run_job(ClipJob(video=video, source=source, source_sha256=None, mask_dir=sim.release_dir / "data" / "mask",
                           out_root=tmp_path, options=ProcessingOptions(max_frames=3), crop="auto", masks="auto"))
    detection = detect_clip(source, clip_id=video.id, pointer_policy="drop")
    assert detection.frame_masks and detection.dropped_frames  # the clip does exercise both
    plan = data["plan"]
    assert plan["window"] == [detection.window.x, detection.window.y, detection.window.w, detection.window.h]
    assert plan["deleted"] == [list(r) for r in frame_ranges(detection.dropped_frames)]
    assert sorted(map(int, plan["frame_masks"])) == sorted(detection.frame_masks)
    assert all(Path(p).parent == tmp_path / "data" / "mask" / video.id for p in plan["frame_masks"].values())
    assert data["record"]["frames_deleted"] == len(detection.dropped_frames)


# ---- user mask overrides, classes, pointer policy (issues 3 and 7)


def test_classes_and_pointer_policy_are_validated_with_their_valid_values(tmp_path):
    with pytest.raises(InvalidChoiceError, match="invalid class 'viral'; valid values: covid, pneumonia, normal, "
                                                 "other"):
        CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), classes=["viral"])
    with pytest.raises(InvalidChoiceError, match="invalid pointer_policy 'erase'; valid values: mask, drop"):
        CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), pointer_policy="erase")
    config = CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path), classes="normal",
                      mask_dirs=tmp_path).config
    assert config.classes == ("normal",) and config.mask_dirs == (str(tmp_path),)
    assert config.all_mask_dirs() == (tmp_path, covidx_us.PROJECT_MASK_DIR)
    assert CovidxUS.BUILDER_CONFIGS[2].pointer_policy == "drop"  # what the release did


def test_pointer_policy_keys_the_cache_only_with_detected_masks_and_classes_turn_off_the_count_check():
    from processing.build.processed import POINTER_POLICIES as builder_policies
    from processing.pixels.autodetect import POINTER_POLICIES

    assert builder_policies == POINTER_POLICIES
    base = CovidxUS.BUILDER_CONFIGS[2]
    assert dataclasses.replace(base, pointer_policy="mask").processing_key() == base.processing_key()
    for masks in ("auto", "both"):
        drop, mask = (dataclasses.replace(base, masks=masks, pointer_policy=p).processing_key()
                      for p in ("drop", "mask"))
        assert drop != mask and mask["pointer_policy"] == "mask"
    assert not dataclasses.replace(base, classes=("covid",)).counts_are_checked()
    assert "mask_dirs" not in base.card_parameters()  # a local path


def test_build_cli_passes_classes_mask_dirs_and_pointer_policy(tmp_path):
    from processing.cli.build import parameters_from_args

    parser = cli.build_parser()
    args = parser.parse_args(["build", "--class", "normal", "--class", "covid", "--mask-dir", "a", "--mask-dir",
                              "b", "--pointer-policy", "mask", "--cache-dir", str(tmp_path)])
    params = parameters_from_args(args)
    assert (params["classes"], params["mask_dirs"], params["pointer_policy"]) == (["normal", "covid"],
                                                                                 ("a", "b"), "mask")
    assert not {"classes", "mask_dirs", "pointer_policy"} & set(
        parameters_from_args(parser.parse_args(["build", "--cache-dir", str(tmp_path)])))
    with pytest.raises(SystemExit):
        parser.parse_args(["build", "--class", "viral"])


@pytest.mark.slow
def test_a_user_mask_overrides_the_release_mask_of_its_name_and_only_its_clip_is_redone(tiny, tmp_path):
    from PIL import Image

    from processing.cli.build import build
    from processing.pixels.clips import iter_frames
    from processing.pixels.crop import crop
    from processing.windows import Window

    sim, catalogue, site = tiny
    video = catalogue["2_butterfly_covid"]  # a main mask only: no frame masks, no deleted frames
    assert video.masks.main_mask and not video.masks.frame_masks and not video.masks.deleted
    overrides = tmp_path / "my-masks"
    overrides.mkdir()
    params = _params(sim, site, tmp_path / "cache", max_frames=2, num_proc=1, mask_dirs=[str(overrides)])
    _, first = build(("frames-4class",), params, tmp_path / "out")
    assert sorted(first["frames-4class"]["processed"]) == sorted(v.id for v in catalogue.videos)

    def clean_frames() -> dict[int, np.ndarray]:
        record = json.loads((tmp_path / "out" / "build_record.json").read_text())
        entry = next(v for v in record["videos"] if v["id"] == video.id)
        return {f[0]: np.asarray(Image.open(f[2])) for f in entry["record"]["frames"]}, entry["plan"]

    inpainted, plan = clean_frames()
    assert plan["main_mask"] == str(sim.release_dir / "data" / "mask" / video.masks.main_mask)
    window = Window(*plan["window"])
    source = {f.index: crop(f.image, window) for f in iter_frames(sim.clips[video.id]) if f.index in inpainted}
    assert any((inpainted[i] != source[i]).any() for i in inpainted)  # the release mask was inpainted

    # An all-black mask of the same name (PNG beside the release's JPEG name): nothing to inpaint.
    black = overrides / (Path(video.masks.main_mask).stem + ".png")
    Image.fromarray(np.zeros((window.h, window.w), np.uint8)).save(black)
    _, second = build(("frames-4class",), params, tmp_path / "out")
    assert second["frames-4class"]["processed"] == (video.id,)
    clean, plan = clean_frames()
    assert plan["main_mask"] == str(black)
    assert sorted(clean) == sorted(inpainted)
    assert all((clean[i] == source[i]).all() for i in clean)  # the cropped source pixels, untouched

    _, third = build(("frames-4class",), params, tmp_path / "out")
    assert third["frames-4class"]["processed"] == ()  # the same override: cached


@pytest.mark.slow
def test_classes_keep_only_videos_of_those_labels(tiny, tmp_path):
    from processing.cli.build import build

    sim, catalogue, site = tiny
    out, summary = build(("frames-4class",), _params(sim, site, tmp_path / "cache", max_frames=1,
                                                     classes=["pneumonia", "other"]), tmp_path / "out")
    wanted = sorted(v.id for v in catalogue.videos if v.label in ("pneumonia", "other"))
    assert sorted(summary["frames-4class"]["processed"]) == wanted
    loaded = datasets.load_dataset(str(out), "frames-4class", cache_dir=str(tmp_path / "hf"))
    assert sorted({vid for part in loaded.values() for vid in part["video_id"]}) == wanted
    names = loaded[next(iter(loaded))].features["label"].names
    assert {names[label] for part in loaded.values() for label in part["label"]} == {"pneumonia", "other"}


@pytest.mark.slow
def test_pointer_policy_mask_keeps_pointer_frames_with_their_pointer_masked(simulated, tmp_path):
    from processing.build.processed import ClipJob, run_job
    from processing.pixels.autodetect import detect_clip
    from processing.pixels.pipeline import ProcessingOptions

    sim, catalogue, _site = simulated
    video = next(v for v in catalogue.videos if v.masks.frame_masks or v.masks.deleted)  # a clip with a pointer
    source = sim.clips[video.id]
    job = ClipJob(video=video, source=source, source_sha256=None, mask_dir=sim.release_dir / "data" / "mask",
                  out_root=tmp_path, options=ProcessingOptions(max_frames=2, write_videos=False), crop="auto",
                  masks="auto", pointer_policy="mask", need_video=False)
    assert job.fingerprint() != dataclasses.replace(job, pointer_policy="drop").fingerprint()
    release_job = dataclasses.replace(job, crop="release", masks="release")
    assert release_job.fingerprint() == dataclasses.replace(release_job, pointer_policy="mask").fingerprint()
    data = run_job(job)
    dropping = detect_clip(source, clip_id=video.id, pointer_policy="drop")
    masking = detect_clip(source, clip_id=video.id, pointer_policy="mask")
    assert dropping.dropped_frames and not masking.dropped_frames
    assert data["plan"]["deleted"] == [] and data["record"]["frames_deleted"] == 0
    assert sorted(map(int, data["plan"]["frame_masks"])) == sorted(masking.frame_masks)
    assert set(dropping.dropped_frames) <= set(masking.frame_masks)  # the dropped frames are masked instead
    with pytest.raises(InvalidChoiceError, match="invalid pointer_policy 'keep'; valid values: mask, drop"):
        dataclasses.replace(job, pointer_policy="keep")


@pytest.mark.slow
def test_prune_cache_deletes_only_what_older_versions_left(tiny, tmp_path, capsys):
    sim, _catalogue, site = tiny
    args = ["build", "--config", "frames-binary", "--release-dir", str(sim.release_dir), "--custom-release",
            "--mirror", site.prefix, "--no-original", "--delay", "0", "--cache-dir", str(tmp_path / "cache"),
            "--output", str(tmp_path / "out")]
    assert cli.main(args) == 0
    processed = tmp_path / "cache" / "processed"
    (current,) = [p for p in processed.iterdir() if p.is_dir()]
    key = json.loads((current / "key.json").read_text())
    assert key == json.loads(json.dumps(CovidxUSConfig(name="frames-binary").processing_key()))
    assert key["format"] == PROCESSING_FORMAT
    records = sorted(p.name for p in (current / "records").iterdir())
    assert "older covidx-us" not in capsys.readouterr().out  # nothing stale yet: no hint

    def folder(name: str, fmt: int | None, size: int) -> Path:
        path = processed / name
        (path / "data" / "image" / "clean").mkdir(parents=True)
        (path / "data" / "image" / "clean" / "f.png").write_bytes(b"x" * size)
        if fmt is not None:
            (path / "key.json").write_text(json.dumps({"format": fmt}))
        return path

    before_keys = folder("0123456789abcdef", None, 1_500_000)  # made before key files existed
    older = folder("fedcba9876543210", PROCESSING_FORMAT - 1, 1_000_000)
    newer = folder("aaaaaaaaaaaaaaaa", PROCESSING_FORMAT + 1, 10)  # a newer covidx-us's: not ours to delete
    other = folder("my-notes", None, 10)  # not a cache folder's name

    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "2 processed-clip caches" in out and "(2.5 MB)" in out and "--prune-cache deletes them" in out
    assert before_keys.is_dir() and older.is_dir()

    assert cli.main([*args, "--prune-cache"]) == 0
    assert "deleted 2 processed-clip caches" in capsys.readouterr().out
    assert not before_keys.exists() and not older.exists()
    assert newer.is_dir() and other.is_dir()
    assert sorted(p.name for p in (current / "records").iterdir()) == records  # this build's cache is intact

    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "older covidx-us" not in out and "clips processed 0" in out  # the kept cache is still used
