"""Specification of the simulated release: upstream file format, crop rows that reproduce the truth, masks made from
the truth, URLs in each source's layout, determinism, and a catalogue that loads it."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from processing.demo.simrelease import SimulatedRelease, write_simulated_release
from processing.demo.simulate import GroundTruth
from processing.windows import Window

CSV_FILES = (
    "utils/video_metadata.csv", "utils/video_cropping_metadata.csv", "utils/mask_metadata.csv",
    "utils/video_files_properties.csv", "utils/LUSS_metadata.csv", "labels/COVIDx-US1.4_4class.csv",
    "labels/COVIDx-US1.4_3class.csv", "labels/COVIDx-US1.4_binary.csv",
)
URL_LAYOUTS = {
    "butterfly": r"https://butterflynetwork\.getbynder\.com/transfer/[0-9a-f]{64}",
    "grepmed": r"https://img\.grepmed\.com/uploads/\d+/[a-z0-9-]+-original\.mp4",
    "litfl": r"https://litfl\.com/wp-content/uploads/20\d\d/\d\d/[A-Za-z0-9_-]+\.mp4",
    "pocusatlas": r"https://images\.squarespace-cdn\.com/content/v1/58118909e3df282037abfad7/\d{13}-[A-Z0-9]{20}/"
                  r"image-asset\.gif",
    "core": r"https://d25ixnv6uinqzi\.cloudfront\.net/post_files/uotw\d+\.\d+\.mp4",
    "uf": r"https://anest\.ufl\.edu/files/2016/\d\d/[A-Za-z0-9_-]+\.(wmv|mov|mp4)",
    "paper": r"https://static-content\.springer\.com/esm/art%3A10\.1186%2Fcc\d+/MediaObjects/[A-Za-z0-9_]+\.avi",
}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> SimulatedRelease:
    return write_simulated_release(tmp_path_factory.mktemp("sim"), seed=0)


def _rows(release: SimulatedRelease, rel: str) -> list[dict[str, str]]:
    with open(release.release_dir / rel, encoding="latin-1", newline="") as handle:
        return [r for r in csv.DictReader(handle) if r[next(iter(r))]]


def _by(rows: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    return {r[key].rsplit(".", 1)[0] if key == "filename" else r[key]: r for r in rows}


def _square_rule(width: int, height: int, del_upper: float, width_rate: float) -> Window:
    """NOTES-upstream.md's rule, written out independently of processing.demo.simrelease."""
    b = int(width * width_rate)
    box = int(width - 2 * b)
    if box + del_upper > height:
        box = int(height - del_upper)
        b = int(width / 2 - box / 2)
    return Window(b, int(del_upper), box, box)


def test_release_csvs_parse_as_latin1_with_the_expected_row_count(release):
    for rel in CSV_FILES:
        frame = pd.read_csv(release.release_dir / rel, encoding="latin-1")
        expected = {"labels/COVIDx-US1.4_3class.csv": 13}.get(rel, 16)
        assert len(frame.dropna(how="all")) == expected, rel


def test_release_csv_headers_equal_upstream(release, reference_release):
    for rel in CSV_FILES:
        ours = pd.read_csv(release.release_dir / rel, encoding="latin-1", nrows=0).columns.tolist()
        theirs = pd.read_csv(reference_release / rel, encoding="latin-1", nrows=0).columns.tolist()
        assert ours == theirs, rel


def test_line_endings_follow_upstream(release, reference_release):
    for rel in CSV_FILES:
        ours = (release.release_dir / rel).read_bytes()
        theirs = (reference_release / rel).read_bytes()
        assert (b"\r\n" in ours) == (b"\r\n" in theirs), rel


def test_crop_rows_reproduce_the_ground_truth_fov_windows(release):
    crop = _by(_rows(release, "utils/video_cropping_metadata.csv"), "filename")
    kinds = set()
    for vid in release.ids:
        truth = release.load_truth(vid)
        row = crop[vid]
        width, height = int(row["org_width"]), int(row["org_height"])
        assert (width, height) == truth.size
        if row["x1_w_y1_h"]:
            x1, w, y1, h = map(int, re.fullmatch(r"\((\d+), (\d+), (\d+), (\d+)\)", row["x1_w_y1_h"]).groups())
            window = Window(x1, y1, min(w, width - x1), min(h, height - y1))
            kinds.add("rect")
        else:
            window = _square_rule(width, height, float(row["del_upper"]), float(row["width_rate"]))
            kinds.add("square-height" if float(row["width_rate"]) == 0 else "square-width")
        assert window == truth.fov_window, vid
        # crp_width and crp_height are swapped, as upstream stored them.
        assert (float(row["crp_width"]), float(row["crp_height"])) == (window.h, window.w)
        assert row["probe"] == truth.probe.capitalize()
    assert kinds == {"rect", "square-height", "square-width"}


def test_masks_follow_upstream_naming_and_even_truncated_crop_size(release):
    masks = _by(_rows(release, "utils/mask_metadata.csv"), "filename")
    mask_dir = release.release_dir / "data" / "mask"
    odd = 0
    for vid in release.ids:
        row, truth = masks[vid], release.load_truth(vid)
        win = truth.fov_window
        odd += win.w % 2 or win.h % 2
        names = [row["mask_main_filename"]] if row["mask_main_filename"] else []
        for part in filter(None, (p.strip() for p in row["frame_specific_masks"].split(","))):
            a, _, b = part.partition("-")
            names += [f"{vid}_prc_{truth.probe}_frame{n}_mask.jpg" for n in range(int(a), int(b or a) + 1)]
        assert (row["need_mask_after_crop"] == "yes") == bool(row["mask_main_filename"])
        for name in names:
            assert re.fullmatch(rf"{vid}_prc_{truth.probe}_frame\d+_mask\.jpg", name)
            image = cv2.imread(str(mask_dir / name), cv2.IMREAD_UNCHANGED)
            assert image is not None and image.ndim == 2, name
            assert image.shape == (win.h - win.h % 2, win.w - win.w % 2), name
    assert odd >= 1, "at least one odd crop size (its masks are even-truncated)"
    written = {p.name for p in mask_dir.glob("*.jpg")}
    assert all(name.split("_prc_")[0] in release.ids for name in written)


def test_release_masks_cover_the_truth_overlays_inside_the_crop(release):
    masks = _by(_rows(release, "utils/mask_metadata.csv"), "filename")
    mask_dir = release.release_dir / "data" / "mask"
    checked = 0
    for vid in release.ids:
        row, truth = masks[vid], release.load_truth(vid)
        if row["need_mask_after_crop"] != "yes":
            continue
        win = truth.fov_window
        image = cv2.imread(str(mask_dir / row["mask_main_filename"]), cv2.IMREAD_GRAYSCALE) > 127
        h, w = image.shape
        static = truth.static_mask[win.slices()][:h, :w]
        assert image[static].all(), f"{vid}: the main mask misses overlay pixels"
        near = truth.dilated(4)[0][win.slices()][:h, :w]
        assert not (image & ~near).any(), f"{vid}: the main mask covers pixels far from any overlay"
        assert not (image & truth.fov_mask[win.slices()][:h, :w] & ~near).any()
        checked += 1
    assert checked >= 10


def test_frame_specific_masks_cover_the_pointer_of_their_frame(release):
    vid = "1_butterfly_covid"
    truth = release.load_truth(vid)
    win = truth.fov_window
    frame = 18
    image = cv2.imread(str(release.release_dir / "data" / "mask" / f"{vid}_prc_convex_frame{frame}_mask.jpg"), 0)
    image = image > 127
    h, w = image.shape
    assert image[truth.overlay_masks[frame][win.slices()][:h, :w]].all()
    main = cv2.imread(str(release.release_dir / "data" / "mask" / f"{vid}_prc_convex_frame0_mask.jpg"), 0) > 127
    assert (image & ~main).any(), "the pointer is only in the frame-specific mask"


def test_need_mask_after_crop_is_no_exactly_when_no_overlay_lies_in_the_crop(release):
    masks = _by(_rows(release, "utils/mask_metadata.csv"), "filename")
    plans = {"no": 0, "tight": 0, "deleted": 0, "frame_masks": 0}
    for vid in release.ids:
        row, truth = masks[vid], release.load_truth(vid)
        inside = truth.overlay_masks[:, truth.fov_window.y : truth.fov_window.y + truth.fov_window.h,
                                     truth.fov_window.x : truth.fov_window.x + truth.fov_window.w].any()
        assert (row["need_mask_after_crop"] == "yes") == bool(inside), vid
        plans["no"] += row["need_mask_after_crop"] == "no"
        plans["tight"] += row["tight_inpainting"] == "yes"
        plans["deleted"] += bool(row["delete_frames_from_to"])
        plans["frame_masks"] += row["need_multiple_masks"] == "yes"
    assert all(count >= 1 for count in plans.values()), plans


def test_release_covers_classes_probes_sources_versions_and_a_patient_with_two_clips(release):
    meta = _rows(release, "utils/video_metadata.csv")
    assert {r["class"] for r in meta} == {"COVID", "Pneumonia", "Normal", "Other"}
    assert {r["probe"] for r in meta} == {"Convex", "Linear"}
    assert {r["version"] for r in meta} == {"1.0", "1.1", "1.2", "1.3", "1.4"}
    assert {r["filetype"] for r in meta} == {"mp4", "gif", "wmv", "mov", "avi"}
    sources = {r["id"].split("_")[1] for r in meta}
    assert len(sources) >= 5 and {"butterfly", "grepmed", "litfl", "pocusatlas", "uf"} <= sources
    patients = [r["patient"] for r in _rows(release, "labels/COVIDx-US1.4_4class.csv")]
    assert len(set(patients)) < len(patients)
    for r in meta:
        source = r["id"].split("_")[1]
        assert re.fullmatch(URL_LAYOUTS[source], r["url"]), r["url"]
        assert release.urls[r["id"]] == r["url"]
    butterfly = [r for r in meta if r["source"] == "Butterfly"]
    assert len({r["url"] for r in butterfly}) == 1 and len(butterfly) >= 2
    for r in butterfly:
        folder = r["folder"].split("\\")[-1]
        assert release.archive_paths[r["id"]] == f"{folder}/{r['filename']}"
        assert release.filenames[r["id"]] == r["filename"] and r["filename"].endswith(".mp4")


def test_clips_decode_to_the_size_and_frame_count_the_release_states(release):
    props = _by(_rows(release, "utils/video_files_properties.csv"), "filename")
    for vid in release.ids:
        path = release.clips[vid]
        assert path.name == f"{vid}.{path.suffix[1:]}" and path.suffix[1:] == release.load_truth(vid).container
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        row = props[vid]
        assert frames[0].shape[:2] == (int(float(row["height"])), int(float(row["width"])))
        assert len(frames) == int(float(row["frame_count"])) == release.load_truth(vid).num_frames, vid


def _digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_writes_the_same_csv_and_mask_bytes(tmp_path):
    a = write_simulated_release(tmp_path / "a", seed=4, write_clips=False)
    b = write_simulated_release(tmp_path / "b", seed=4, write_clips=False)
    c = write_simulated_release(tmp_path / "c", seed=5, write_clips=False)
    assert _digest(a.release_dir) == _digest(b.release_dir)
    assert _digest(a.release_dir) != _digest(c.release_dir)
    for vid in a.ids:
        assert np.array_equal(GroundTruth.load(a.truth[vid]).overlay_masks, GroundTruth.load(b.truth[vid]).overlay_masks)


def test_scale_changes_sizes_and_keeps_crops_equal_to_the_truth(tmp_path):
    small = write_simulated_release(tmp_path / "s", seed=0, scale=0.5, frames=0.5, write_clips=False)
    crop = _by(_rows(small, "utils/video_cropping_metadata.csv"), "filename")
    for vid in small.ids:
        truth = small.load_truth(vid)
        row = crop[vid]
        assert truth.size == (int(row["org_width"]), int(row["org_height"]))
        if not row["x1_w_y1_h"]:
            rule = _square_rule(*truth.size, float(row["del_upper"]), float(row["width_rate"]))
            assert rule == truth.fov_window


def test_catalogue_loads_the_simulated_release_with_the_generated_records(release):
    catalogue = pytest.importorskip("processing.release.catalogue")
    cat = catalogue.load_catalogue("1.4", release.release_dir, custom=True)
    assert cat.ids == release.ids and not cat.official
    meta = _by(_rows(release, "utils/video_metadata.csv"), "id")
    masks = _by(_rows(release, "utils/mask_metadata.csv"), "filename")
    for video in cat:
        truth = release.load_truth(video.id)
        assert video.crop_window == truth.fov_window
        assert video.probe == truth.probe and video.label == truth.label
        assert video.url == release.urls[video.id] and video.filename == release.filenames[video.id]
        assert video.version_added == meta[video.id]["version"]
        assert video.masks.needs_mask == (masks[video.id]["need_mask_after_crop"] == "yes")
        assert (video.expected.width, video.expected.height) == truth.size
    assert cat["1_butterfly_covid"].masks.frame_masks == ((8, 10), (17, 19))
    assert cat["1_butterfly_covid"].masks.deleted == ((11, 16),)
    assert cat["5_grepmed_pneumonia"].masks.tight
    assert cat["6_litfl_pneumonia"].group == cat["7_litfl_pneumonia"].group
    assert cat["8_pocusatlas_covid"].task_label("binary") == "covid"
    assert cat["11_litfl_other"].task_label("3class") is None
    views = {v: len(catalogue.load_catalogue(v, release.release_dir, custom=True)) for v in ("1.0", "1.1", "1.2")}
    assert views == {"1.0": 9, "1.1": 10, "1.2": 12}


@pytest.mark.slow
def test_pipeline_removes_the_truth_overlays_and_keeps_far_ultrasound_pixels(release, tmp_path):
    catalogue = pytest.importorskip("processing.release.catalogue")
    pipeline = pytest.importorskip("processing.pixels.pipeline")
    clips = pytest.importorskip("processing.pixels.clips")
    cat = catalogue.load_catalogue("1.4", release.release_dir, custom=True)
    from processing.pixels.masks import MaskSet

    options = pipeline.ProcessingOptions(write_videos=False)
    masks, whites = {}, 0
    for video in cat:
        info = clips.probe_clip(release.clips[video.id])
        plan = pipeline.plan_for_video(video, release.release_dir / "data" / "mask", options, info)
        record = pipeline.process_clip(release.clips[video.id], plan, tmp_path, options)
        size = (plan.window.w, plan.window.h) if plan.window else (info.width, info.height)
        masks[video.id] = MaskSet(release.clips[video.id], size, plan.main_mask, plan.frame_masks, plan.tight,
                                  fov_mask=plan.fov_mask)
        truth = release.load_truth(video.id)
        win = truth.fov_window
        near = truth.dilated(7)
        original = {f.index: f.image for f in clips.iter_frames(release.clips[video.id])}
        for frame in record.frames:
            image = cv2.cvtColor(cv2.imread(str(frame.path)), cv2.COLOR_BGR2RGB).astype(int)
            h, w = image.shape[:2]
            overlay = truth.overlay_masks[frame.index][win.slices()][:h, :w]
            before = original[frame.index][win.slices()][:h, :w].astype(int)
            chroma = image.max(axis=-1) - image.min(axis=-1)
            assert not (chroma[overlay] > 40).any(), f"{video.id} frame {frame.index}: a coloured overlay is left"
            # white text, ruler and marker: drawn in pure white; what was near-white on them is no longer
            white_before = (before.min(axis=-1) >= 200) & overlay
            white_after = (image.min(axis=-1) >= 200) & white_before
            assert white_after.sum() <= 0.01 * max(1, white_before.sum()), f"{video.id} frame {frame.index}: white left"
            whites += int(white_before.sum())
            # far from every overlay and outside the masks the pipeline inpainted, the pixels are the decoded ones
            used = masks[video.id].for_frame(frame.index)
            far = ~near[frame.index][win.slices()][:h, :w] & truth.fov_mask[win.slices()][:h, :w]
            if used is not None:
                assert (far & used).sum() <= 0.05 * far.sum()  # the masks stay near the overlays
                far &= ~used
            assert np.array_equal(image[far], before[far]), f"{video.id} frame {frame.index}"
    assert whites > 1000  # the release drew white overlays inside the crops: the check above saw them


@pytest.mark.parametrize("scale,frames", [(0.5, 0.5), (0.25, 0.1), (0.5, 0.3), (1.0, 0.7), (2.0, 1.5), (1.0, 3.0)])
def test_scaled_releases_load_and_keep_every_pointer_frame_masked_or_deleted(tmp_path, scale, frames):
    catalogue = pytest.importorskip("processing.release.catalogue")
    sim = write_simulated_release(tmp_path, seed=0, scale=scale, frames=frames, write_clips=False)
    cat = catalogue.load_catalogue("1.4", sim.release_dir, custom=True)  # every listed mask file exists
    for video in cat:
        truth = sim.load_truth(video.id)
        masked = {n for a, b in video.masks.frame_masks for n in range(a, b + 1)}
        deleted = {n for a, b in video.masks.deleted for n in range(a, b + 1)}
        assert not masked & deleted, f"{video.id}: a frame-specific mask on a deleted frame"
        assert max(masked | deleted, default=0) < truth.num_frames
        # The pointer is drawn only where a frame-specific mask covers it or the frame is dropped.
        assert set(truth.pointer_frames) <= masked | deleted, video.id
        for n in masked - {0}:
            mask = cv2.imread(str(sim.release_dir / "data" / "mask" / f"{video.id}_prc_{video.probe}_frame{n}_mask.jpg"),
                              cv2.IMREAD_GRAYSCALE) > 127
            win = truth.fov_window
            inside = truth.overlay_masks[n][win.slices()][: mask.shape[0], : mask.shape[1]]
            assert not (inside & ~mask).any(), f"{video.id} frame {n}: the pointer is not covered"
