"""examples/train.py streams a Hub-layout build into the Trainer, trains a few steps and reports per-class accuracy."""

from __future__ import annotations

import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train.py"
CLASSES = ("covid", "pneumonia", "normal", "other")
CONFIG = "frames-4class"
# (videos per class, frames per video) for each split: 2x3x4 = 24 train frames, 1x3x4 = 12 validation frames.
SPLITS = {"train": (2, 3), "validation": (1, 3)}
LINE = re.compile(
    r"^accuracy\[(?P<name>[\w-]+)\] = (?P<value>n/a|[0-9.]+) \((?P<correct>\d+)/(?P<total>\d+)\)$"
)


def _png(rng: np.random.Generator, label: int) -> bytes:
    """A 40x32 speckled frame whose brightness depends on the class (so the classes differ at all)."""
    pixels = rng.integers(0, 80, size=(32, 40, 3), dtype=np.uint8) + np.uint8(40 * label)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_build(seed: int = 0):
    """A ``frames-4class`` DatasetDict (train, validation) with the build's column names; 36 frames of 40x32."""
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(CLASSES)),
            "video_id": datasets.Value("string"),
            "frame_index": datasets.Value("int32"),
            "source": datasets.Value("string"),
            "luss": datasets.Value("int32"),
        }
    )
    rng = np.random.default_rng(seed)
    splits = {}
    for split, (videos, frames) in SPLITS.items():
        rows: dict[str, list] = {name: [] for name in features}
        number = 0
        for label, name in enumerate(CLASSES):
            for _ in range(videos):
                number += 1
                for frame in range(frames):
                    rows["image"].append({"bytes": _png(rng, label), "path": None})
                    rows["label"].append(label)
                    rows["video_id"].append(f"{number}_{split}_{name}")
                    rows["frame_index"].append(frame * 5)
                    rows["source"].append("pocusatlas")
                    rows["luss"].append(None)  # a nullable column the model must never receive
        splits[split] = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(splits)


def write_hub_folder(root: Path, build) -> None:
    """Lay ``build`` out by hand as the Hub does: ``<config>/<split>-00000-of-00001.parquet`` + README ``configs:``."""
    for split, ds in build.items():
        path = root / CONFIG / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(path))
    (root / "README.md").write_text(
        "---\nconfigs:\n"
        f"- config_name: {CONFIG}\n  default: true\n  data_files:\n"
        + "".join(f"  - split: {split}\n    path: {CONFIG}/{split}-*.parquet\n" for split in build)
        + "---\n# tiny covidx-us export for tests\n"
    )


def export_with_the_exporter(root: Path, build) -> None:
    """Write ``build`` with the project's own exporter (skips while processing/hub/export.py is not there)."""
    try:
        from processing.hub.export import Provenance, export_hub_folder
    except ImportError as error:
        pytest.skip(f"processing.hub.export is not available: {error}")
    export_hub_folder(
        {CONFIG: build}, root, Provenance(release_version="1.5", release_commit=None, official=False)
    )


def run_train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module", params=["by-hand", "exporter"])
def export(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, list[int]]]:
    """An export folder and the labels written per split (to check the script's counts against)."""
    pytest.importorskip("datasets")
    build = tiny_build()
    root = tmp_path_factory.mktemp("export") / "covidx_us"
    if request.param == "by-hand":
        write_hub_folder(root, build)
    else:
        export_with_the_exporter(root, build)
    return root, {split: list(ds["label"]) for split, ds in build.items()}


@pytest.mark.slow
def test_train_streams_three_steps_and_reports_accuracy_for_every_class(export, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    root, written = export
    out = tmp_path / "model"
    result = run_train(
        "--data", str(root), "--config", CONFIG, "--max-steps", "3", "--batch-size", "4",
        "--image-size", "32", "--output-dir", str(out), "--seed", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    loss = re.search(r"^train_loss = (\S+)$", result.stdout, re.MULTILINE)
    assert loss, result.stdout
    assert math.isfinite(float(loss.group(1)))

    rows = {m["name"]: m for m in map(LINE.match, result.stdout.splitlines()) if m}
    assert set(rows) == {"all", *CLASSES}, result.stdout
    # The whole validation split was evaluated: each class's denominator is the number of frames written for it.
    expected = {name: written["validation"].count(k) for k, name in enumerate(CLASSES)}
    assert {name: int(rows[name]["total"]) for name in CLASSES} == expected
    assert int(rows["all"]["total"]) == len(written["validation"])
    for name in CLASSES:
        correct, total = int(rows[name]["correct"]), int(rows[name]["total"])
        assert 0 <= correct <= total
        assert float(rows[name]["value"]) == pytest.approx(correct / total, abs=1e-4)
    assert int(rows["all"]["correct"]) == sum(int(rows[name]["correct"]) for name in CLASSES)
    # The model is saved with the class names taken from the ClassLabel feature.
    config = (out / "config.json").read_text()
    assert all(f'"{name}"' in config for name in CLASSES)


def test_train_names_the_missing_config_and_lists_the_ones_found(export) -> None:
    root, _ = export
    result = run_train("--data", str(root), "--config", "frames-binary", timeout=60)
    assert result.returncode == 2
    assert "frames-binary" in result.stderr and f"configs found: {CONFIG}" in result.stderr


def test_train_refuses_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    result = run_train("--data", str(tmp_path), timeout=60)
    assert result.returncode == 2
    assert str(tmp_path) in result.stderr and "README.md" in result.stderr


# ---- the pure parts of the script, imported without torch ----


@pytest.fixture(scope="module")
def train_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("covidx_train_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pixel_values_are_resized_channels_first_and_normalised_to_minus_one_one(train_module) -> None:
    pixels = np.zeros((30, 50, 3), dtype=np.uint8)
    pixels[:, 25:] = 255  # left half black, right half white
    out = train_module.to_pixel_values(Image.fromarray(pixels), 16)
    assert out.shape == (3, 16, 16) and out.dtype == np.float32
    assert out[:, :, 0].tolist() == [[-1.0] * 16] * 3 and out[:, :, -1].tolist() == [[1.0] * 16] * 3


def test_grey_scale_frames_become_three_channels(train_module) -> None:
    out = train_module.to_pixel_values(Image.new("L", (20, 20), 255), 8)
    assert out.shape == (3, 8, 8) and np.all(out == 1.0)


def test_affine_with_no_movement_is_the_identity(train_module) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    out = train_module.random_affine(
        Image.fromarray(pixels), np.random.default_rng(1), max_rotate=0, max_shift=0, scale=(1, 1)
    )
    assert np.array_equal(np.asarray(out), pixels)


def test_affine_shrinking_keeps_the_centre_and_fills_the_border_black(train_module) -> None:
    image = Image.new("RGB", (40, 40), (200, 200, 200))
    out = np.asarray(
        train_module.random_affine(
            image, np.random.default_rng(0), max_rotate=0, max_shift=0, scale=(0.5, 0.5)
        )
    )
    assert out[20, 20].tolist() == [200, 200, 200]
    assert out[0, 0].tolist() == [0, 0, 0] and out[39, 39].tolist() == [0, 0, 0]
    assert 15 <= np.count_nonzero(out[20, :, 0]) <= 25  # about half the width remains


def test_accuracy_lines_count_each_class_and_say_n_a_for_an_empty_one(train_module) -> None:
    rows = train_module.per_class_accuracy(
        np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), ["covid", "normal", "other"]
    )
    assert rows == [("covid", 2, 3), ("normal", 1, 1), ("other", 0, 0)]
    assert train_module.format_accuracy(rows) == [
        "accuracy[all] = 0.7500 (3/4)",
        "accuracy[covid] = 0.6667 (2/3)",
        "accuracy[normal] = 1.0000 (1/1)",
        "accuracy[other] = n/a (0/0)",
    ]


def _fold_export(root: Path) -> dict[str, list[str]]:
    """A k-fold export laid out by hand (splits fold0..fold2); returns the video ids written per fold."""
    build = tiny_build()
    folds = {"fold0": build["train"].select(range(0, 12)), "fold1": build["validation"],
             "fold2": build["train"].select(range(12, 24))}
    import datasets

    write_hub_folder(root, datasets.DatasetDict(folds))
    return {name: list(ds["video_id"]) for name, ds in folds.items()}


def test_fold_trains_on_the_other_folds_and_evaluates_on_fold_i(train_module, tmp_path: Path) -> None:
    import datasets

    written = _fold_export(tmp_path / "kfold")
    args = train_module.parse_args(["--data", str(tmp_path / "kfold"), "--fold", "1"])
    assert args.eval_split == "fold1"
    streams = datasets.load_dataset(str(tmp_path / "kfold"), CONFIG, streaming=True)
    train, evaluation = train_module._train_and_eval(streams, args)
    assert sorted(r["video_id"] for r in train) == sorted(written["fold0"] + written["fold2"])
    assert [r["video_id"] for r in evaluation] == written["fold1"]


def test_a_kfold_export_without_fold_names_the_option_and_a_wrong_fold_lists_the_folds(train_module,
                                                                                      tmp_path: Path) -> None:
    import datasets

    _fold_export(tmp_path / "kfold")
    streams = datasets.load_dataset(str(tmp_path / "kfold"), CONFIG, streaming=True)
    with pytest.raises(SystemExit, match="pass --fold I"):
        train_module._train_and_eval(streams, train_module.parse_args(["--data", str(tmp_path / "kfold")]))
    with pytest.raises(SystemExit, match="folds: fold0, fold1, fold2"):
        train_module._train_and_eval(streams, train_module.parse_args(["--data", str(tmp_path / "kfold"),
                                                                       "--fold", "7"]))
