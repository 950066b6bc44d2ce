"""The builder's examples and splits, fast: ``_generate_examples`` fed hand-made items (HF's way), and a declarative
table of the simulated release's videos per split checked for counts, patients in one split only, and reloads."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from covidx_us import CovidxUS, features_for
from processing.pixels.png import encode_png
from processing.vocabulary import SOURCE_INFO, SOURCES

# Videos per split of the simulated release (covidx-us demo) at the default split parameters.
SIMULATED_SPLITS = {
    "binary": {"train": 11, "validation": 3, "test": 2},
    "3class": {"train": 9, "validation": 3, "test": 1},
    "4class": {"train": 11, "validation": 4, "test": 1},
}


def _frame_item(tmp_path, image: np.ndarray, index: int = 3) -> dict:
    path = tmp_path / f"7_litfl_covid_prc_convex_clean_frame{index}.png"
    path.write_bytes(encode_png(image))
    video = {"label": "covid", "video_id": "7_litfl_covid", "source": "litfl", "probe": "convex",
             "patient_id": "p7", "luss": 2, "release": "1.5+custom", "origin": "mirror", "copy_repository": None,
             "copy_commit": None}
    record = {"source_size": [40, 30], "frames": [[index, 0.25, str(path), True]]}
    return {"video": video, "record": record}


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_generate_examples_reads_a_processed_frame_and_its_record(tmp_path, streaming):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    builder = CovidxUS(config_name="frames-4class", cache_dir=str(tmp_path / "hf"))
    items = [_frame_item(tmp_path, image)]
    make = datasets.IterableDataset if streaming else datasets.Dataset
    dataset = make.from_generator(lambda: (ex for _, ex in builder._generate_examples(items)),
                                  features=features_for("frames-4class"))
    (example,) = list(dataset)
    assert np.array_equal(np.asarray(example["image"].convert("RGB")), image)
    assert (example["video_id"], example["frame_index"], example["width"], example["height"]) == (
        "7_litfl_covid", 3, 16, 16)
    assert (example["original_width"], example["original_height"], example["luss"]) == (40, 30, 2)
    assert example["label"] == features_for("frames-4class")["label"].str2int("covid")
    assert example["timestamp"] == pytest.approx(0.25)


def test_generate_examples_keys_are_video_and_frame(tmp_path):
    builder = CovidxUS(config_name="frames-binary", cache_dir=str(tmp_path / "hf"))
    item = _frame_item(tmp_path, np.zeros((16, 16, 3), np.uint8), index=12)
    ((key, example),) = list(builder._generate_examples([item]))
    assert key == "7_litfl_covid/12"
    assert Image.open(io.BytesIO(example["image"]["bytes"])).size == (16, 16)


def _splits(site, task: str, cache_dir: Path) -> dict[str, str]:
    builder = CovidxUS(config_name=f"frames-{task}", cache_dir=str(cache_dir), release_dir=str(site.sim.release_dir),
                       custom_release=True)
    split_of, videos = builder._videos(site.catalogue)
    return {v.id: split_of[v.id] for v in videos}


@pytest.mark.parametrize("task", sorted(SIMULATED_SPLITS))
def test_simulated_release_splits_have_the_expected_sizes_and_no_shared_patient(simulated_site, task, tmp_path):
    site = simulated_site(0.5, 0.25)
    split_of = _splits(site, task, tmp_path / "hf")
    assert dict(Counter(split_of.values())) == SIMULATED_SPLITS[task]
    group_splits: dict[str, set[str]] = {}
    for video in site.catalogue.filter(task=task).videos:
        group_splits.setdefault(video.group, set()).add(split_of[video.id])
    assert all(len(splits) == 1 for splits in group_splits.values()), group_splits
    assert _splits(site, task, tmp_path / "hf") == split_of  # a reload assigns the same splits


def test_every_source_has_one_engine_and_one_vocabulary_entry():
    from processing.sources import engines

    assert sorted(engines()) == sorted(SOURCES) == sorted(SOURCE_INFO)


def test_each_engine_lays_out_its_own_site_so_the_mirror_serves_every_simulated_video(simulated_site):
    import requests

    from processing.sources.download import mirror_url

    site = simulated_site(0.5, 0.25)
    served = {v.source for v in site.catalogue.videos if v.id in site.sim.clips}
    assert len(served) >= 7
    for video in site.catalogue.videos:
        if video.source in ("uf", "paper", "butterfly"):  # browser-only files, and an archive behind a page
            continue
        url = video.url.split("?", 1)[0] if video.source in ("litfl", "pocusatlas") else video.url
        if video.source == "pocusatlas":
            from processing.sources.pocusatlas import short_form

            url = short_form(url) or url
        if video.source == "core" and "vimeo.com" in url:
            continue
        answer = requests.get(mirror_url(site.mirror, url), timeout=10)
        assert answer.status_code == 200 and answer.content == site.sim.clips[video.id].read_bytes(), video.id

