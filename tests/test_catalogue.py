"""Specification of the release catalogue: typed records, errata, version views, tasks, release verification.

The upstream release is read in place from ../shared (parsed once per session); tests that modify files work on
copies in tmp_path. Expected values are computed here from the raw CSVs or by hand, not by the loader.
"""

from __future__ import annotations

import csv
import functools
import http.server
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest
from releasefactory import MINIMAL, write_minimal

from processing.errors import CovidxError, InvalidChoiceError, ReleaseError
from processing.release import files as release
from processing.release.catalogue import (
    CLASSES,
    PROBES,
    SOURCES,
    TASKS,
    VERSIONS,
    Catalogue,
    CropRule,
    MaskPlan,
    UnknownVideoError,
    load_catalogue,
    load_errata,
    release_view,
    spelling_map,
)
from processing.windows import Window

ROOT = Path(__file__).resolve().parents[1]
STALE_TYPES = ("wmv", "mov", "avi")


def raw_rows(root: Path, rel: str) -> list[dict[str, str]]:
    with open(root / rel, encoding="latin-1", newline="") as handle:
        return [row for row in csv.DictReader(handle) if any(row.values())]


@pytest.fixture(scope="session")
def catalogue(reference_release: Path) -> Catalogue:
    """The official v1.5 catalogue (all 242 videos), parsed once."""
    return load_catalogue("1.5", reference_release)


@pytest.fixture(scope="session")
def errata():
    return load_errata()


def view(catalogue: Catalogue, version: str) -> tuple:
    return release_view(catalogue.videos, version)


# ------------------------------------------------------------------------------------------- views and tasks


def test_v12_view_has_the_papers_150_videos_by_class_and_probe(catalogue):
    videos = view(catalogue, "1.2")
    assert len(videos) == 150
    assert Counter(v.label for v in videos) == {"covid": 59, "pneumonia": 37, "normal": 13, "other": 41}
    assert Counter(v.probe for v in videos) == {"convex": 112, "linear": 38}
    by_class_probe = Counter((v.label, v.probe) for v in videos)
    assert by_class_probe == {("covid", "convex"): 52, ("covid", "linear"): 7, ("pneumonia", "convex"): 29,
                              ("pneumonia", "linear"): 8, ("normal", "convex"): 7, ("normal", "linear"): 6,
                              ("other", "convex"): 24, ("other", "linear"): 17}


def test_each_version_adds_the_sources_the_release_notes_list(catalogue):
    added = {
        "1.0": {"butterfly": 35, "grepmed": 20, "litfl": 6, "pocusatlas": 32},
        "1.1": {"litfl": 16},
        "1.2": {"litfl": 41},
        "1.3": {"radio": 5, "core": 18},
        "1.4": {"uf": 24, "paper": 22, "clarius": 23},
        "1.5": {},
    }
    totals = {"1.0": 93, "1.1": 109, "1.2": 150, "1.3": 173, "1.4": 242, "1.5": 242}
    previous: set[str] = set()
    for version in VERSIONS:
        ids = {v.id for v in view(catalogue, version)}
        assert len(ids) == totals[version]
        assert previous <= ids
        new = Counter(catalogue[i].source for i in ids - previous)
        assert new == added[version], version
        previous = ids


def test_default_version_is_the_latest_and_catalogue_is_sorted_by_number(catalogue):
    assert catalogue.version == VERSIONS[-1] == "1.5"
    numbers = [v.number for v in catalogue]
    assert numbers == sorted(numbers) and len(set(catalogue.ids)) == len(catalogue)


def test_withdrawn_22_is_absent_from_every_view(reference_release, catalogue, errata):
    assert any(e.kind == "withdrawn" and e.video_id == "22_butterfly_covid" for e in errata)
    assert "22_butterfly_covid" in {r["id"] for r in raw_rows(reference_release, "utils/video_metadata.csv")}
    for version in VERSIONS:
        assert "22_butterfly_covid" not in {v.id for v in view(catalogue, version)}
    with pytest.raises(UnknownVideoError, match="22_butterfly_covid"):
        catalogue["22_butterfly_covid"]


def test_tasks_label_binary_3class_and_4class(catalogue):
    v12 = Catalogue(view(catalogue, "1.2"), "1.2", catalogue.commit, True, catalogue.release_dir)
    assert Counter(v.task_label("binary") for v in v12) == {"covid": 59, "non-covid": 91}
    assert len(v12.filter(task="3class")) == 109
    assert {v.task_label("3class") for v in v12.filter(task="3class")} == set(TASKS["3class"])
    assert all(v.task_label("3class") is None for v in v12 if v.label == "other")
    assert all(v.task_label("4class") == v.label for v in v12)
    # upstream's v1.4 3-class file has 149 rows, one of them the withdrawn 22
    assert len(catalogue.filter(task="3class")) == 148


def test_filter_by_source_probe_and_class(catalogue):
    subset = catalogue.filter(sources=["litfl"], probes="linear", classes=("other",))
    assert len(subset) > 0 and all((v.source, v.probe, v.label) == ("litfl", "linear", "other") for v in subset)
    assert subset.version == catalogue.version and subset[subset.ids[0]] is subset.videos[0]


def test_invalid_version_task_and_filters_list_the_valid_values(reference_release, catalogue):
    with pytest.raises(InvalidChoiceError, match="1.0, 1.1, 1.2, 1.3, 1.4, 1.5"):
        load_catalogue("2.0", reference_release)
    with pytest.raises(InvalidChoiceError, match="binary, 3class, 4class"):
        catalogue.videos[0].task_label("5class")
    with pytest.raises(InvalidChoiceError, match="binary, 3class, 4class"):
        catalogue.filter(task="multi")
    with pytest.raises(InvalidChoiceError, match=", ".join(SOURCES)):
        catalogue.filter(sources=["youtube"])
    with pytest.raises(InvalidChoiceError, match="convex, linear"):
        catalogue.filter(probes=["phased"])
    with pytest.raises(InvalidChoiceError, match=", ".join(CLASSES)):
        catalogue.filter(classes=["COVID"])


def test_records_are_immutable(catalogue):
    video = catalogue.videos[0]
    with pytest.raises(AttributeError):
        video.label = "normal"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------- per-video fields


def test_every_record_field_is_typed_and_in_range(catalogue):
    for v in catalogue:
        assert v.id == f"{v.number}_{v.source}_{v.label}"
        assert v.source in SOURCES and v.label in CLASSES and v.probe in PROBES
        assert v.filetype in ("mp4", "gif", "wmv", "mov", "avi") and v.url.startswith("http") and v.filename
        assert v.version_added in VERSIONS
        assert v.luss is None or 0 <= v.luss <= 3
        assert v.crop_window.fits(v.expected.width, v.expected.height)
        assert v.crop_window.size == v.crop_size
        assert all(flag in {"green_dot", "top_left_symbol", "red_symbol", "white_arrow", "text", "meter", "sound",
                            "extra_end_part", "multiple_videos"} for flag in v.artifacts)


def test_fields_match_the_raw_csv_row(reference_release, catalogue):
    meta = {r["id"]: r for r in raw_rows(reference_release, "utils/video_metadata.csv")}
    labels = {r["id"]: r for r in raw_rows(reference_release, "labels/COVIDx-US1.4_4class.csv")}
    luss = {r["id"]: r["LUSS"] for r in raw_rows(reference_release, "utils/LUSS_metadata.csv")}
    for v in catalogue:
        assert v.url == meta[v.id]["url"] and v.filename == meta[v.id]["filename"]
        assert v.filetype == meta[v.id]["filetype"] and v.version_added == meta[v.id]["version"]
        assert v.patient_id == labels[v.id]["patient"] and v.case_no == int(labels[v.id]["case_no"])
        assert v.luss == (None if luss[v.id] in ("NA", "") else int(luss[v.id]))
    assert sum(v.luss is not None for v in catalogue) == 173
    two = catalogue["2_butterfly_covid"]
    assert (two.patient_id, two.case_no, two.luss, two.body_region) == ("p2", 1, 2, "lung")
    assert two.artifacts == {"green_dot", "top_left_symbol", "text", "meter", "sound"}


def test_body_region_comes_from_the_label_file(catalogue):
    regions = Counter(v.body_region for v in catalogue)
    assert regions == {"lung": 227, "cardiac": 11, "neck": 2, "abdomen": 1, "unknown": 1}
    assert catalogue["44_litfl_pneumonia"].body_region == "cardiac"  # blank in video_metadata.csv


def test_clinical_flags_come_from_the_v15_workbook(reference_release, catalogue):
    import pandas as pd

    sheet = pd.read_excel(reference_release / "labels/CovidxUS1.5_metadata.xlsx", dtype=str).fillna("")
    row = sheet[sheet["b_line"].str.lower() == "yes"].iloc[0]
    video = catalogue[row["id"]]
    assert ("b_line", "yes") in video.clinical
    assert list(video.clinical) == sorted(video.clinical)
    assert sum(bool(v.clinical) for v in catalogue) == sum(
        any(r[c] for c in sheet.columns[12:29]) for _, r in sheet.iterrows())


def test_licence_is_the_csv_value_or_the_source_licence_upstream_states(catalogue):
    assert catalogue["100_litfl_other"].licence == "CC BY-NC-SA 4.0"
    assert catalogue["53_pocusatlas_covid"].licence == "CC BY-NC 4.0"
    assert catalogue["1_butterfly_covid"].licence == "not stated"
    assert Counter(v.licence for v in catalogue)["http://creativecommons.org/licenses/by/4.0/"] == 5


def test_link_prefers_the_case_page_then_the_paper_page_over_the_doi(catalogue):
    assert catalogue["212_paper_other"].link.endswith("#appsec4")  # its DOI is a spreadsheet fill artifact
    assert catalogue["222_clarius_other"].link.startswith("https://cloud.clarius.com/cases/")


# ------------------------------------------------------------------------------------------- crop rule


@pytest.mark.parametrize(
    ("rule", "size", "window"),
    [
        (CropRule("square", del_upper=15, width_rate=0.035), (880, 1080), Window(30, 15, 820, 820)),
        # box 1928 + 25 > 1080: box = 1055, b = int(964 - 527.5) = 436
        (CropRule("square", del_upper=25, width_rate=0.0), (1928, 1080), Window(436, 25, 1055, 1055)),
        (CropRule("rect", rect=(5, 420, 5, 355)), (480, 360), Window(5, 5, 420, 355)),
        (CropRule("rect", rect=(10, 500, 0, 400)), (480, 360), Window(10, 0, 470, 360)),  # clipped at the edge
    ],
)
def test_crop_rule_follows_upstream(rule, size, window):
    assert rule.window(*size) == window


@pytest.mark.parametrize(
    "rule",
    [CropRule("rect", rect=(480, 10, 0, 10)), CropRule("rect", rect=(0, 10, 360, 10)),
     CropRule("square", del_upper=360, width_rate=0.1)],
)
def test_crop_window_outside_the_frame_is_an_error(rule):
    with pytest.raises(ReleaseError, match="outside a 480x360 frame"):
        rule.window(480, 360)


def test_crop_rule_rejects_impossible_parameters():
    with pytest.raises(ReleaseError):
        CropRule("square", del_upper=0, width_rate=0.5)
    with pytest.raises(InvalidChoiceError, match="square, rect"):
        CropRule("circle")  # type: ignore[arg-type]


def test_rule_reproduces_the_stored_crop_size_of_every_row(reference_release):
    """All 243 rows (withdrawn 22 included, sized from the cropping CSV), with crp_width/crp_height swapped."""
    rows = raw_rows(reference_release, "utils/video_cropping_metadata.csv")
    assert len(rows) == 243
    kinds = Counter()
    for row in rows:
        if row["x1_w_y1_h"]:
            x1, w, y1, h = (int(t) for t in row["x1_w_y1_h"].strip("()").split(","))
            rule = CropRule("rect", rect=(x1, w, y1, h))
        else:
            rule = CropRule("square", del_upper=int(float(row["del_upper"])), width_rate=float(row["width_rate"]))
        kinds[rule.kind] += 1
        window = rule.window(int(row["org_width"]), int(row["org_height"]))
        assert window.size == (int(float(row["crp_height"])), int(float(row["crp_width"]))), row["filename"]
    assert kinds == {"square": 184, "rect": 59}


def test_catalogue_crop_size_unswaps_the_stored_columns(catalogue):
    assert catalogue["124_litfl_pneumonia"].crop_size == (420, 355)
    assert catalogue["124_litfl_pneumonia"].crop_window == Window(5, 5, 420, 355)
    assert catalogue["178_uf_other"].crop_size == (1276, 645)


# ------------------------------------------------------------------------------------------- expected, masks


def test_expected_comes_from_file_properties_and_stale_rows_are_untrusted(reference_release, catalogue, errata):
    stale_ids = {r["id"] for r in raw_rows(reference_release, "utils/video_metadata.csv") if r["filetype"] in STALE_TYPES}
    assert len(stale_ids) == 26
    assert {e.video_id for e in errata if e.kind == "stale_count"} == stale_ids
    assert {v.id for v in catalogue if not v.expected.trusted} == stale_ids
    assert all(v.expected.frame_count is None for v in catalogue if not v.expected.trusted)
    two = catalogue["2_butterfly_covid"].expected
    assert (two.width, two.height, two.fps, two.frame_count, two.trusted) == (720, 1236, 30.0, 818, True)


def test_mask_plans_follow_mask_metadata(catalogue):
    two = catalogue["2_butterfly_covid"].masks
    assert two == MaskPlan(True, "2_butterfly_covid_prc_convex_frame0_mask.jpg", ((118, 130), (134, 139), (147, 150)),
                           ((131, 133), (143, 146), (154, 202), (210, 813)), False)
    assert two.is_deleted(131) and not two.is_deleted(130)
    assert two.frame_mask_names("2_butterfly_covid", "convex")[118] == "2_butterfly_covid_prc_convex_frame118_mask.jpg"
    assert sum(not v.masks.needs_mask for v in catalogue) == 53
    assert all(v.masks.main_mask is None for v in catalogue if not v.masks.needs_mask)
    assert sum(v.masks.tight for v in catalogue) == 13
    assert {v.id for v in catalogue if v.masks.frame_masks} == {
        "2_butterfly_covid", "6_butterfly_covid", "16_butterfly_covid", "20_butterfly_normal"}
    assert catalogue["16_butterfly_covid"].masks.frame_masks[-1] == (226, 233)  # trailing comma in the CSV


def test_every_pinned_mask_is_used_once_except_withdrawn_and_unused_ones(catalogue, errata):
    pins = release.load_pins()
    used = Counter(name for v in catalogue for name in v.masks.mask_names(v.id, v.probe))
    assert max(used.values()) == 1
    unused = {e.found for e in errata if e.kind == "unused_mask"}
    withdrawn = {n for n in pins.masks if n.startswith("22_butterfly_covid_")}
    assert len(pins.masks) == 353
    assert set(used) == set(pins.masks) - unused - withdrawn
    assert len(unused) == 2 and unused <= set(pins.masks)


def test_178_uses_its_frame0_mask_not_the_unused_range_masks(catalogue, errata):
    assert catalogue["178_uf_other"].masks.main_mask == "178_uf_other_prc_convex_frame0_mask.jpg"
    fix = [e for e in errata if e.kind == "value" and e.video_id == "178_uf_other"]
    assert len(fix) == 1 and "frame31_60" in fix[0].found


def test_a_changed_pinned_mask_is_refused_when_the_catalogue_is_read(reference_release, catalogue, tmp_path):
    name = catalogue["1_butterfly_covid"].masks.main_mask
    assert catalogue.mask_path(name) == reference_release / "data/mask" / name
    copy = tmp_path / "release"
    shutil.copytree(reference_release, copy)
    (copy / "data/mask" / name).chmod(0o644)
    (copy / "data/mask" / name).write_bytes(b"not a mask")
    with pytest.raises(ReleaseError, match=f"{name}: sha256 mismatch: expected {release.load_pins().masks[name]}"):
        load_catalogue("1.0", copy)  # not only when a build first uses the mask
    (copy / "data/mask" / name).unlink()
    with pytest.raises(ReleaseError, match=f"{name}: missing release file"):
        load_catalogue("1.5", copy)


# ------------------------------------------------------------------------------------------- groups, errata


def test_group_is_the_patient_and_errata_merge_same_clips(catalogue):
    assert catalogue["178_uf_other"].group == catalogue["184_uf_pneumonia"].group
    assert catalogue["29_grepmed_covid"].group == catalogue["55_pocusatlas_covid"].group
    merged = {catalogue[i].group for i in ("178_uf_other", "29_grepmed_covid")}
    for v in catalogue:
        if v.group not in merged:
            assert v.group == v.patient_id
    by_patient: dict[str, set[str]] = {}
    for v in catalogue:
        by_patient.setdefault(v.patient_id, set()).add(v.group)
    assert all(len(groups) == 1 for groups in by_patient.values())  # a patient never spans two groups


def test_errata_file_is_well_formed_and_names_real_videos(reference_release, errata):
    ids = {r["id"] for r in raw_rows(reference_release, "utils/video_metadata.csv")}
    assert errata and all(e.reason for e in errata)
    for e in errata:
        if e.video_id:
            assert e.video_id in ids, e
        if e.kind == "same_clip":
            assert e.corrected in ids
    same = {frozenset((e.video_id, e.corrected)) for e in errata if e.kind == "same_clip"}
    assert same == {frozenset(("178_uf_other", "184_uf_pneumonia")), frozenset(("29_grepmed_covid", "55_pocusatlas_covid"))}


def test_every_spelling_found_in_the_csvs_is_an_erratum(reference_release, errata):
    files = ["utils/video_metadata.csv", "utils/video_cropping_metadata.csv", "utils/mask_metadata.csv",
             "utils/LUSS_metadata.csv", "labels/COVIDx-US1.4_4class.csv"]
    for column, valid in (("source", SOURCES), ("class", CLASSES), ("probe", PROBES)):
        mapping = spelling_map(errata, column)
        found = {r[column] for f in files for r in raw_rows(reference_release, f)}
        assert {mapping[value.lower()] for value in found} == set(valid)
        assert all(value not in valid for value in found)  # each is a display spelling, so each needs a row
    versions = {r["version"] for r in raw_rows(reference_release, "utils/mask_metadata.csv")}
    assert {spelling_map(errata, "version")[v] for v in versions} <= set(VERSIONS)


def test_swapped_crop_columns_are_an_erratum_the_loader_applies(errata, catalogue):
    swap = [e for e in errata if e.kind == "swapped_columns"]
    assert len(swap) == 1 and swap[0].file == "utils/video_cropping_metadata.csv"
    assert catalogue["95_litfl_other"].crop_size[0] != catalogue["95_litfl_other"].crop_size[1]


# ------------------------------------------------------------------------------------------- the paper's Table 2


def test_v12_view_agrees_with_the_papers_table2_row_by_row(catalogue, errata):
    rows = list(csv.DictReader(open(ROOT / "metadata/table2.csv", encoding="utf-8")))
    videos = {v.id: v for v in view(catalogue, "1.2")}
    assert [r["id"] for r in rows] == list(videos)
    spell = {f: spelling_map(errata, f) for f in ("source", "probe", "class")}
    paper_errata = {(e.video_id, e.field): e for e in errata if e.kind == "paper"}
    frame_diffs = set()
    for row in rows:
        v = videos[row["id"]]
        assert row["filetype"].lower() == v.filetype
        assert spell["source"][row["source"].lower()] == v.source
        assert spell["probe"][row["probe"].lower()] == v.probe
        assert spell["class"][row["class"].lower()] == v.label
        assert row["original_size"] == f"{v.expected.width}x{v.expected.height}"
        w, h = v.crop_size
        if (v.id, "final_size") in paper_errata:  # printed as height x width, or a typo
            assert paper_errata[(v.id, "final_size")].found == row["final_size"] != f"{w}x{h}"
            assert paper_errata[(v.id, "final_size")].corrected == f"{w}x{h}"
        else:
            assert row["final_size"] == f"{w}x{h}", v.id
        # the paper counts frames after deletion; comparable through the trusted count minus deleted frames
        kept = v.expected.frame_count - sum(b - a + 1 for a, b in v.masks.deleted)
        if int(row["frame_count"]) != kept:
            frame_diffs.add(v.id)
            assert paper_errata[(v.id, "frame_count")].found == row["frame_count"]
            assert paper_errata[(v.id, "frame_count")].corrected == str(kept)
    assert frame_diffs == {k for k, f in paper_errata if f == "frame_count" and k}
    assert sum(int(r["frame_count"]) for r in rows) == int(paper_errata[("", "frame_count")].corrected)
    assert int(paper_errata[("", "frame_count")].found) == 12943


# ------------------------------------------------------------------------------------------- verification


def copy_release(reference_release: Path, dest: Path) -> Path:
    shutil.copytree(reference_release, dest)
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def edit_csv(path: Path, video_id: str, column: str, value: str) -> int:
    """Set one cell of a latin-1 release CSV; returns the file line of the row."""
    with open(path, encoding="latin-1", newline="") as handle:
        rows = list(csv.reader(handle))
    key = 0
    col = rows[0].index(column)
    for line, row in enumerate(rows[1:], start=2):
        if row and row[key].rsplit(".", 1)[0] == video_id:
            row[col] = value
            with open(path, "w", encoding="latin-1", newline="") as handle:
                csv.writer(handle).writerows(rows)
            return line
    raise AssertionError(video_id)


def test_modified_official_file_is_a_digest_error_naming_file_and_digests(reference_release, tmp_path):
    root = copy_release(reference_release, tmp_path / "r")
    edit_csv(root / "utils/video_files_properties.csv", "1_butterfly_covid", "framerate", "20.0")
    expected = release.load_pins().files["utils/video_files_properties.csv"]
    found = release.sha256_file(root / "utils/video_files_properties.csv")
    with pytest.raises(ReleaseError) as err:
        load_catalogue("1.5", root)
    assert "video_files_properties.csv" in str(err.value)
    assert f"expected {expected}, found {found}" in str(err.value) and "--custom-release" in str(err.value)


def test_missing_official_file_is_an_error_naming_it(reference_release, tmp_path):
    root = copy_release(reference_release, tmp_path / "r")
    (root / "labels/CovidxUS1.5_metadata.xlsx").unlink()
    with pytest.raises(ReleaseError, match="CovidxUS1.5_metadata.xlsx: missing release file .*found no file"):
        load_catalogue("1.5", root)


def test_window_outside_its_frame_names_file_line_and_id(reference_release, tmp_path):
    root = copy_release(reference_release, tmp_path / "r")
    line = edit_csv(root / "utils/video_cropping_metadata.csv", "95_litfl_other", "x1_w_y1_h", "(900, 10, 0, 10)")
    with pytest.raises(ReleaseError, match=rf"video_cropping_metadata.csv, line {line}, video 95_litfl_other: .*outside"):
        parse_official_copy(root)


def parse_official_copy(root: Path):
    from processing.release.catalogue import parse_release

    return parse_release(root, official=True)  # the pinned-release rules, on a modified copy


def test_custom_release_is_unofficial_and_skips_release_errata(reference_release, tmp_path):
    root = copy_release(reference_release, tmp_path / "r")
    edit_csv(root / "utils/video_files_properties.csv", "1_butterfly_covid", "framerate", "20.0")
    # release-scope errata (withdrawn 22, 178's main mask) do not apply to a custom release: fix them as a user would
    meta = root / "utils/video_metadata.csv"
    lines = meta.read_bytes().split(b"\n")
    meta.write_bytes(b"\n".join(line for line in lines if not line.startswith(b"22_butterfly_covid,")))
    edit_csv(root / "utils/mask_metadata.csv", "178_uf_other", "mask_main_filename",
             "178_uf_other_prc_convex_frame0_mask.jpg")
    custom = load_catalogue("1.5", root, custom=True)
    assert (custom.official, custom.commit) == (False, None)
    assert len(custom) == 242
    assert custom["1_butterfly_covid"].expected.fps == 20.0
    assert custom["124_litfl_pneumonia"].crop_size == (420, 355)  # format errata still apply
    assert custom["200_paper_covid"].expected.trusted


def test_custom_copy_of_upstream_that_keeps_the_withdrawn_video_says_how_to_fix_it(reference_release, tmp_path):
    root = copy_release(reference_release, tmp_path / "r")
    with pytest.raises(ReleaseError, match=r"no row for video 22_butterfly_covid \(22_butterfly_covid was withdrawn"):
        load_catalogue("1.5", root, custom=True)


def test_minimal_custom_release_needs_only_the_required_columns(tmp_path):
    custom = load_catalogue("1.5", write_minimal(tmp_path), custom=True)
    assert custom.ids == ("1_grepmed_covid", "2_litfl_other") and not custom.official
    one, two = custom
    # b = int(64*0.1) = 6, box = 52; 52 + 4 > 48 so box = 44, b = int(32 - 22) = 10
    assert one.crop_window == Window(10, 4, 44, 44) and one.crop_size == (44, 44)
    assert two.crop_window == Window(2, 0, 20, 40)
    assert (one.patient_id, one.group, one.luss, one.clinical, one.body_region) == (None, "1_grepmed_covid", None, (), "unknown")
    assert two.masks == MaskPlan(False, None, (), (), False)
    assert one.expected.frame_count == 10 and one.expected.trusted
    assert load_catalogue("1.0", tmp_path, custom=True).ids == ("1_grepmed_covid",)
    assert custom.mask_path(one.masks.main_mask) == tmp_path / "data/mask" / one.masks.main_mask


@pytest.mark.parametrize(
    ("rel", "old", "new", "message"),
    [
        ("utils/video_metadata.csv", "1_grepmed_covid,a.mp4,mp4", "1_grepmed_covid,a.mp4,mkv",
         r"video_metadata.csv, line 2, video 1_grepmed_covid: column filetype is 'mkv'; valid values: mp4"),
        ("utils/video_metadata.csv", "GrepMed,", "YouTube,", r"line 2, video 1_grepmed_covid: column source is 'YouTube'"),
        ("utils/video_metadata.csv", ",1.2\n", ",2.0\n", r"line 3, video 2_litfl_other: column version is '2.0'"),
        ("utils/video_metadata.csv", "2_litfl_other,", "2_litfl_normal,", r"line 3, video 2_litfl_normal: id says"),
        ("utils/video_metadata.csv", "2_litfl_other,", "1_grepmed_covid,", r"line 3, video 1_grepmed_covid: duplicate row \(first at line 2\)"),
        ("utils/video_cropping_metadata.csv", "4,0.1,", "4,zero,", r"line 2, video 1_grepmed_covid: column width_rate"),
        ("utils/video_cropping_metadata.csv", "(2, 20, 0, 40)", "(2, 20, 0)", r"line 3, video 2_litfl_other: column x1_w_y1_h"),
        ("utils/video_cropping_metadata.csv", "(2, 20, 0, 40)", "(40, 20, 0, 40)", r"line 3, video 2_litfl_other: .*outside a 32x40"),
        ("utils/mask_metadata.csv", "2_litfl_other.mp4,no,", "2_litfl_other.mp4,maybe,", r"line 3, video 2_litfl_other: column need_mask_after_crop"),
        ("utils/mask_metadata.csv", "covid.mp4,yes,1_grepmed_covid_prc_convex_frame0_mask.jpg", "covid.mp4,yes,gone.jpg",
         r"line 2, video 1_grepmed_covid: mask .*gone.jpg does not exist"),
        ("utils/video_files_properties.csv", "25.0,64.0", "25.0,-64", r"line 2, video 1_grepmed_covid: column width"),
        ("utils/video_files_properties.csv", "2_litfl_other.mp4,10,32,40,5\n", "", r"video_files_properties.csv: no row for video 2_litfl_other"),
    ],
)
def test_malformed_custom_rows_are_errors_naming_file_line_and_id(tmp_path, rel, old, new, message):
    assert old in MINIMAL[rel]
    write_minimal(tmp_path, **{rel: MINIMAL[rel].replace(old, new, 1)})
    with pytest.raises(ReleaseError, match=message):
        load_catalogue("1.5", tmp_path, custom=True)


def test_optional_files_fill_patient_luss_and_bad_scores_are_errors(tmp_path):
    luss = "id,LUSS\n1_grepmed_covid,2\n2_litfl_other,NA\n"
    labels = "id,patient,case_no\n1_grepmed_covid,p7,1\n2_litfl_other,p7,2\n"
    custom = load_catalogue("1.5", write_minimal(tmp_path, **{"utils/LUSS_metadata.csv": luss,
                                                               "labels/COVIDx-US1.4_4class.csv": labels}), custom=True)
    assert [(v.luss, v.patient_id, v.case_no, v.group) for v in custom] == [(2, "p7", 1, "p7"), (None, "p7", 2, "p7")]
    write_minimal(tmp_path, **{"utils/LUSS_metadata.csv": luss.replace(",2\n", ",4\n")})
    with pytest.raises(ReleaseError, match=r"LUSS_metadata.csv, line 2, video 1_grepmed_covid: column LUSS is 4"):
        load_catalogue("1.5", tmp_path, custom=True)


def test_missing_required_column_or_file_is_an_error(tmp_path):
    write_minimal(tmp_path, **{"utils/video_files_properties.csv": "filename,framerate,width,height\n"})
    with pytest.raises(ReleaseError, match="video_files_properties.csv: missing column.* frame_count"):
        load_catalogue("1.5", tmp_path, custom=True)
    (tmp_path / "utils/mask_metadata.csv").unlink()
    with pytest.raises(ReleaseError, match="mask_metadata.csv: missing release file"):
        load_catalogue("1.5", tmp_path, custom=True)
    with pytest.raises(ReleaseError, match="does not exist"):
        load_catalogue("1.5", tmp_path / "nowhere", custom=True)
    with pytest.raises(ReleaseError, match="custom release needs a release directory"):
        load_catalogue("1.5", custom=True)


# ------------------------------------------------------------------------------------------- fetching by URL


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream_server(reference_release, tmp_path):
    """A loopback HTTP server laid out like raw.githubusercontent.com/<repo>: /<commit>/<path>."""
    served = tmp_path / "served"
    commit_dir = served / release.PINNED_COMMIT
    pins = release.load_pins()
    for rel in [*pins.files, *(f"data/mask/{n}" for n in list(pins.masks)[:3])]:
        (commit_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(reference_release / rel, commit_dir / rel)
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", commit_dir
    server.shutdown()
    server.server_close()


def test_release_is_fetched_from_the_url_verified_and_cached(upstream_server, tmp_path, monkeypatch):
    url, _ = upstream_server
    monkeypatch.setenv(release.BASE_URL_ENV, url)
    cache = tmp_path / "cache"
    fetched = load_catalogue("1.2", cache_dir=cache)
    assert fetched.official and fetched.commit == release.PINNED_COMMIT and len(fetched) == 150
    assert fetched.release_dir == cache / "release" / release.PINNED_COMMIT
    name = sorted(release.load_pins().masks)[0]
    assert fetched.mask_path(name).read_bytes()  # masks come on demand
    monkeypatch.setenv(release.BASE_URL_ENV, "http://127.0.0.1:9")  # nothing listens: the cache must suffice
    assert load_catalogue("1.2", cache_dir=cache).ids == fetched.ids


def test_file_url_is_base_commit_path():
    assert release.file_url("utils/Data Dictionary.xlsx", base="http://h/x/") == (
        f"http://h/x/{release.PINNED_COMMIT}/utils/Data%20Dictionary.xlsx")
    assert release.file_url("a.csv").startswith("https://raw.githubusercontent.com/nrc-cnrc/COVID-US/")


def test_a_served_file_with_the_wrong_digest_is_rejected_and_not_kept(upstream_server, tmp_path):
    url, commit_dir = upstream_server
    (commit_dir / "utils/LUSS_metadata.csv").write_text("id,LUSS\n", encoding="latin-1")
    cache = tmp_path / "cache"
    with pytest.raises(ReleaseError, match=r"LUSS_metadata.csv: sha256 mismatch: expected [0-9a-f]{64}, found"):
        release.fetch_release(cache, base=url)
    target = release.release_cache(cache) / "utils/LUSS_metadata.csv"
    assert not target.exists() and not list(target.parent.glob(".*tmp*"))


def test_a_missing_upstream_file_is_an_error_naming_the_url(upstream_server, tmp_path):
    url, commit_dir = upstream_server
    (commit_dir / "utils/mask_metadata.csv").unlink()
    with pytest.raises(ReleaseError, match=rf"{url}/{release.PINNED_COMMIT}/utils/mask_metadata.csv: HTTP 404"):
        release.fetch_release(tmp_path / "cache", base=url)


def test_unreachable_host_is_a_release_error(tmp_path):
    with pytest.raises(ReleaseError, match="cannot fetch release file"):
        release.fetch_file("utils/LUSS_metadata.csv", tmp_path, base="http://127.0.0.1:9", timeout=2)


def test_errors_are_covidx_errors():
    assert issubclass(UnknownVideoError, CovidxError) and issubclass(UnknownVideoError, KeyError)


def test_error_lines_count_physical_lines_of_multiline_fields(tmp_path):
    meta = MINIMAL["utils/video_metadata.csv"].replace(
        "id,filename,filetype,source,url,probe,class,version\n",
        "id,filename,filetype,source,url,probe,class,version,comment\n").replace(",1.0\n", ',1.0,"two\nlines"\n')
    write_minimal(tmp_path, **{"utils/video_metadata.csv": meta.replace(",linear,", ",sector,")})
    with pytest.raises(ReleaseError, match=r"video_metadata.csv, line 4, video 2_litfl_other: column probe is 'sector'"):
        load_catalogue("1.5", tmp_path, custom=True)
