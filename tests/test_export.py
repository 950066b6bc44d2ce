"""Specification of processing.hub.export: a Hub-layout folder that stock `datasets` loads offline, written atomically."""

from __future__ import annotations

import io
import os

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from processing.hub import export
from processing.hub.export import ExportError, Provenance, export_hub_folder

LABELS = ["covid", "pneumonia", "normal", "other"]


def _png(value: int, w: int = 6, h: int = 4) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _frames(n: int, first_video: int, source: str) -> datasets.Dataset:
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=LABELS),
            "video_id": datasets.Value("string"),
            "frame_index": datasets.Value("int32"),
            "source": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "image": [{"bytes": _png(10 * i), "path": None} for i in range(n)],
            "label": [i % 4 for i in range(n)],
            "video_id": [f"{first_video + i // 2}_{source}_covid" for i in range(n)],
            "frame_index": [i % 2 for i in range(n)],
            "source": [source] * n,
        },
        features=features,
    )


def _videos() -> datasets.Dataset:
    features = datasets.Features(
        {"video": datasets.Video(), "label": datasets.ClassLabel(names=LABELS), "video_id": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict(
        {"video": [{"bytes": b"\x00\x00\x00\x18ftypmp42", "path": "1_grepmed_covid.mp4"}], "label": [0],
         "video_id": ["1_grepmed_covid"]},
        features=features,
    )


BUILDS = {
    "frames-4class": datasets.DatasetDict(train=_frames(6, 1, "litfl"), test=_frames(2, 20, "pocusatlas")),
    "videos-4class": datasets.DatasetDict(train=_videos()),
}
PROVENANCE = Provenance("1.5", "caf3aca8", True, {"frames-4class": {"seed": 0}}, manifest_sha256="ab" * 32,
                        tool={"version": "9.8.7", "git_commit": "f" * 40, "git_modified": False})


def _front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_layout_is_config_split_shards_plus_card(tmp_path):
    out = export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "croissant.json",
        "frames-4class/test-00000-of-00001.parquet",
        "frames-4class/train-00000-of-00001.parquet",
        "videos-4class/train-00000-of-00001.parquet",
    ]
    meta = _front_matter((out / "README.md").read_text())
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert configs["frames-4class"]["data_files"] == [
        {"split": "train", "path": "frames-4class/train-*"},
        {"split": "test", "path": "frames-4class/test-*"},
    ]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in infos["frames-4class"]["splits"]} == {"train": 6, "test": 2}
    assert [f["name"] for f in infos["videos-4class"]["features"]] == ["video", "label", "video_id"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_large_splits_are_sharded_like_push_to_hub(tmp_path):
    out = export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE, max_shard_bytes=200)
    shards = sorted(p.name for p in (out / "frames-4class").glob("train-*"))
    assert len(shards) > 1
    assert shards == export.shard_paths("train", len(shards))
    assert sum(pq.read_metadata(out / "frames-4class" / s).num_rows for s in shards) == 6


def test_images_are_embedded_bytes_not_paths(tmp_path):
    out = export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
    table = pq.read_table(out / "frames-4class" / "train-00000-of-00001.parquet")
    images = table.column("image").to_pylist()
    assert [im["bytes"] for im in images] == [_png(10 * i) for i in range(6)]


@pytest.mark.parametrize("streaming", [False, True])
def test_stock_load_dataset_reads_the_folder_offline_from_its_parent(tmp_path, monkeypatch, streaming):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
    monkeypatch.chdir(tmp_path)
    ds = datasets.load_dataset("covidx_us", "frames-4class", streaming=streaming, cache_dir=str(tmp_path / "cache"))
    rows = list(ds["test"])
    assert [r["video_id"] for r in rows] == ["20_pocusatlas_covid", "20_pocusatlas_covid"]
    assert [r["label"] for r in rows] == [0, 1]
    assert np.asarray(rows[1]["image"]).tolist() == np.full((4, 6, 3), 10, np.uint8).tolist()
    assert ds["train"].features["label"].names == LABELS


def test_video_bytes_load_without_a_decoder(tmp_path, monkeypatch):
    export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
    monkeypatch.chdir(tmp_path)
    ds = datasets.load_dataset("covidx_us", "videos-4class", split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds.features["video"], datasets.Video)
    row = ds.cast_column("video", datasets.Video(decode=False))[0]
    assert row["video"]["bytes"] == b"\x00\x00\x00\x18ftypmp42"


def test_card_names_licences_citation_and_provenance(tmp_path):
    out = export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
    card = (out / "README.md").read_text()
    assert "| The POCUS Atlas (`pocusatlas`) | 1 | CC BY-NC 4.0 |" in card
    assert "| Life in the Fast Lane (LITFL) (`litfl`) | 3 | CC BY-NC-SA 4.0 |" in card
    assert "Radiopaedia" not in card  # no clip of that source in this build
    assert "arXiv:2103.10003" in card and "Ebadi, Ashkan" in card
    assert "commit caf3aca8" in card and "ab" * 32 in card
    custom = Provenance("1.5", None, False, {}, None, missing_videos=("7_litfl_covid",))
    card = (export_hub_folder(BUILDS, tmp_path / "c2", custom) / "README.md").read_text()
    assert "custom release 1.5: not the official COVIDx-US" in card
    assert "Missing videos left out (1): 7_litfl_covid" in card


def test_a_failed_export_leaves_the_previous_one_untouched(tmp_path, monkeypatch):
    out = export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = export._write_config

    def fail_on_videos(ds_dict, config_dir, max_shard_bytes):
        if config_dir.name == "videos-4class":
            raise OSError("disk full")
        return real(ds_dict, config_dir, max_shard_bytes)

    monkeypatch.setattr(export, "_write_config", fail_on_videos)
    with pytest.raises(OSError, match="disk full"):
        export_hub_folder({"frames-binary": BUILDS["frames-4class"], **BUILDS}, out, PROVENANCE)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["covidx_us"]


def test_a_failed_first_export_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_write_config", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
    assert os.listdir(tmp_path) == []


def test_an_empty_build_is_refused(tmp_path):
    with pytest.raises(ExportError, match="no examples"):
        export_hub_folder({"frames-4class": datasets.DatasetDict(train=_frames(0, 1, "litfl"))}, tmp_path / "x", PROVENANCE)


def test_the_same_builds_export_the_same_bytes(tmp_path):
    one = export_hub_folder(BUILDS, tmp_path / "one", PROVENANCE)
    two = export_hub_folder(BUILDS, tmp_path / "two", PROVENANCE)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)


def test_extra_files_appear_with_the_export_and_bad_names_are_refused(tmp_path):
    out = export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE,
                            extra_files={"build_record.json": '{"format": 1}\n', "notes/a.bin": b"\x00\x01"})
    assert (out / "build_record.json").read_text() == '{"format": 1}\n'
    assert (out / "notes" / "a.bin").read_bytes() == b"\x00\x01"
    assert "build_record" not in (out / "README.md").read_text()
    for name in ("../escape.json", "/abs.json", "README.md", "frames-4class"):
        with pytest.raises(ExportError, match="invalid extra file name"):
            export_hub_folder(BUILDS, out, PROVENANCE, extra_files={name: "x"})
    assert (out / "build_record.json").is_file()  # the refused exports changed nothing


def test_leftovers_of_a_killed_export_are_cleaned_and_a_half_swapped_export_is_put_back(tmp_path):
    out = export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (tmp_path / ".covidx_us.tmp-dead" / "frames-4class").mkdir(parents=True)  # killed while writing
    os.replace(out, tmp_path / ".covidx_us.old-dead")  # killed between the two renames of the swap
    with pytest.raises(ExportError):  # even an export that fails restores the previous one
        export_hub_folder({"frames-4class": datasets.DatasetDict(train=_frames(0, 1, "litfl"))}, out, PROVENANCE)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["covidx_us"]


@pytest.mark.parametrize("umask,expected", [(0o022, 0o755), (0o027, 0o750)])
def test_the_export_folder_has_the_umasks_mode_not_mkdtemps_0700(tmp_path, umask, expected):
    import stat

    old = os.umask(umask)
    try:
        out = export_hub_folder(BUILDS, tmp_path / "covidx_us", PROVENANCE)
        again = export_hub_folder(BUILDS, out, PROVENANCE)  # a swap over an earlier export too
        subfolder = stat.S_IMODE((out / "frames-4class").stat().st_mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE(again.stat().st_mode) == expected
    assert subfolder == expected  # the same mode as the folders inside it


# ---- the card: honest title, Hub-grade sections; croissant.json

SIMULATED = Provenance("1.5", None, False, {"frames-4class": {"mirrors": ["http://127.0.0.1:41234/"], "seed": 0},
                                           "videos-4class": {"mirrors": ["http://127.0.0.1:41234/"], "seed": 0}},
                       simulated=True, tool={"version": "9.8.7", "git_commit": None, "git_modified": None})


def _body(readme: str) -> list[str]:
    return readme.split("---\n", 2)[2].lstrip("\n").splitlines()


@pytest.mark.parametrize("provenance, title, pretty", [
    (PROVENANCE, "# COVIDx-US v1.5, rebuilt", "COVIDx-US v1.5 (rebuilt)"),
    (Provenance("1.5", None, False), "# CUSTOM release build: not the official COVIDx-US", "CUSTOM release"),
    (SIMULATED, "# SIMULATED build: not COVIDx-US data", "SIMULATED clips, not COVIDx-US data"),
])
def test_the_first_line_and_pretty_name_say_what_release_was_built(tmp_path, provenance, title, pretty):
    readme = (export_hub_folder(BUILDS, tmp_path / "out", provenance) / "README.md").read_text()
    assert _body(readme)[0].startswith(title)
    meta = _front_matter(readme)
    assert pretty in meta["pretty_name"]
    assert meta["covidx_us"]["release_kind"] == provenance.kind
    assert meta["covidx_us"]["official"] is (provenance.kind == "official")


def test_card_carries_the_hub_metadata_and_sections(tmp_path):
    readme = (export_hub_folder(BUILDS, tmp_path / "out", PROVENANCE) / "README.md").read_text()
    meta = _front_matter(readme)
    assert meta["license_link"].startswith("https://github.com/nrc-cnrc/COVID-US/blob/")
    assert meta["task_ids"] == ["multi-class-image-classification"]
    assert meta["covidx_us"]["built_with"]["version"] == "9.8.7"
    assert "https://arxiv.org/abs/2103.10003" in readme
    for section in ("## Fields", "## Counts per class and split", "## Classes by source", "## Uses",
                    "## Out of scope", "## Limitations", "## Licences", "## Provenance", "## Citation"):
        assert section in readme
    assert "not a diagnostic tool" in readme and "confounded with sources and devices" in readme
    assert "| `frame_index` | frames-4class |" in readme
    assert "covidx-us 9.8.7 (git commit " + "f" * 40 in readme


def test_counts_per_class_and_split_and_split_warnings():
    counts = export.config_counts(BUILDS["frames-4class"])
    # train: 6 frames, labels i % 4, videos 1..3 (two frames each): video 1 holds covid+pneumonia frames
    assert counts.splits["test"]["covid"] == export.ClassCount(videos=1, examples=1, patients=1)
    assert counts.splits["test"]["normal"] == export.ClassCount(0, 0, 0)
    assert counts.source_totals == {"litfl": 3, "pocusatlas": 1}
    warnings = export.split_warnings("frames-4class", counts.videos_per_split(), counts.classes)
    assert "frames-4class test: no video of class normal, other" in warnings
    assert any(w.startswith("frames-4class test: only") and w.endswith("(fewer than 3)") for w in warnings)
    assert not any(w.startswith("frames-4class train: only") for w in warnings)


def test_parameters_appear_once_with_no_loopback_or_local_path(tmp_path):
    provenance = Provenance("1.5", None, False, {
        "frames-4class": {"mirrors": ["http://127.0.0.1:41234/", "https://web.archive.org/web/2021id_/"],
                          "seed": 0, "max_frames": 8, "cache": "/home/me/cache"},
        "videos-4class": {"mirrors": ["http://127.0.0.1:41234/", "https://web.archive.org/web/2021id_/"],
                          "seed": 0, "max_frames": None, "cache": "/home/me/cache"},
    }, simulated=True)
    readme = (export_hub_folder(BUILDS, tmp_path / "out", provenance) / "README.md").read_text()
    assert readme.count('"seed": 0') == 1
    assert "127.0.0.1" not in readme and "/home/me" not in readme
    assert "https://web.archive.org/web/2021id_/" in readme and "(a local mirror)" in readme
    assert '- frames-4class: `{"max_frames": 8}`' in readme and '- videos-4class: `{"max_frames": null}`' in readme


def test_croissant_file_loads_with_mlcroissant_and_yields_the_records(tmp_path):
    mlc = pytest.importorskip("mlcroissant")
    out = export_hub_folder(BUILDS, tmp_path / "out", SIMULATED)
    dataset = mlc.Dataset(jsonld=str(out / "croissant.json"))
    assert "SIMULATED" in dataset.metadata.name
    frames = list(dataset.records("frames-4class"))
    assert sorted((r["frames-4class/split"].decode(), r["frames-4class/video_id"].decode()) for r in frames) == sorted(
        [("train", v) for v in BUILDS["frames-4class"]["train"]["video_id"]]
        + [("test", v) for v in BUILDS["frames-4class"]["test"]["video_id"]])
    first = next(r for r in frames if r["frames-4class/split"] == b"test")
    assert np.asarray(first["frames-4class/image"]).tolist() == np.full((4, 6, 3), 0, np.uint8).tolist()
    clips = list(dataset.records("videos-4class"))
    assert clips[0]["videos-4class/video"] == b"\x00\x00\x00\x18ftypmp42"
