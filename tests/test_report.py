"""Specification of ``covidx-us report``: a self-contained HTML report of a processed build.

The build is real: the simulated release's clips are processed by the real pipeline (plan_for_video + process_clip)
and the build record is assembled here in the format ARCHITECTURE.md specifies, with one video left out as missing.
A browser test opens the page in headless Chromium and checks it renders without fetching anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processing import cli
from processing.build.splits import assign_splits
from processing.errors import CovidxError
from processing.pixels.clips import probe_clip
from processing.pixels.pipeline import ProcessingOptions, plan_for_video, process_clip
from processing.report.page import (
    FORMAT_VERSION,
    ReportError,
    ReportOptions,
    bar_chart_svg,
    chart_rows,
    draw_window,
    load_build_record,
    thumbnail,
    tint_mask,
    write_report,
)

CONFIGS = ("frames-4class", "frames-3class")
TASKS = {"frames-4class": "4class", "frames-3class": "3class"}
GONE = "7_litfl_pneumonia"
GONE_REASON = "HTTP 404 from every candidate URL"
POINTER_VIDEO = "13_core_covid"  # simulated with a pointer over frames 6-13 and frame-specific masks


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_build(root: Path, sim, catalogue) -> tuple[Path, dict]:
    """A processed build of the simulated release and its build record (format 1), as `covidx-us build` writes it."""
    options = ProcessingOptions(max_frames=6, write_videos=False)
    mask_dir = sim.release_dir / "data" / "mask"
    splits = {}
    for config in CONFIGS:
        videos = catalogue.filter(task=TASKS[config]).videos
        names = assign_splits([v.group for v in videos], [v.task_label(TASKS[config]) for v in videos])
        splits[config] = {v.id: s for v, s in zip(videos, names, strict=True)}
    entries = []
    for video in catalogue.videos:
        clip = sim.clips[video.id]
        entry = {"id": video.id, "source": video.source, "label": video.label, "probe": video.probe,
                 "patient_id": video.patient_id, "licence": video.licence,
                 "split": {c: s[video.id] for c, s in splits.items() if video.id in s}}
        if video.id == GONE:
            entry.update(download={"status": "missing", "reason": GONE_REASON, "url": video.url, "path": None,
                                   "sha256": None}, plan=None, record=None)
            entries.append(entry)
            continue
        plan = plan_for_video(video, mask_dir, options, probe_clip(clip))
        rec = process_clip(clip, plan, root / "work" / "processed", options)
        entry["download"] = {"status": "mirror" if video.source == "grepmed" else "ok", "reason": None,
                             "url": video.url, "path": str(clip), "sha256": _sha256(clip)}
        entry["plan"] = {"window": [plan.window.x, plan.window.y, plan.window.w, plan.window.h], "crop": "release",
                         "masks": "release", "main_mask": str(plan.main_mask) if plan.main_mask else None,
                         "frame_masks": {str(k): str(v) for k, v in plan.frame_masks.items()},
                         "deleted": [list(r) for r in plan.deleted], "tight": plan.tight}
        entry["record"] = {"frames_read": rec.frames_read, "frames_kept": rec.frames_kept,
                           "frames_deleted": rec.frames_deleted, "frames_masked": rec.frames_masked,
                           "source_size": list(rec.source_size), "crop_size": list(rec.crop_size), "fps": rec.fps,
                           "clean_video": None,
                           "frames": [[f.index, f.timestamp, str(f.path), f.masked] for f in rec.frames],
                           "timings": dict(rec.timings)}
        entries.append(entry)
    counts = {c: {} for c in CONFIGS}
    for entry in entries:
        if entry["record"] is not None:
            for config, split in entry["split"].items():
                counts[config][split] = counts[config].get(split, 0) + 1
    record = {
        "format": 1, "created": "2026-11-27T12:00:00Z", "configs": list(CONFIGS),
        "parameters": {c: {"release": "1.5", "max_frames": 6, "inpaint": "ns", "split": "default"} for c in CONFIGS},
        "release": {"version": catalogue.version, "commit": catalogue.commit, "official": catalogue.official,
                    "release_dir": str(sim.release_dir)},
        "work_dir": str(root / "work"), "download_manifest_digest": "0" * 64, "splits": counts, "videos": entries,
    }
    output = root / "covidx_us"
    output.mkdir()
    (output / "build_record.json").write_text(json.dumps(record), encoding="utf-8")
    return output, record


@pytest.fixture(scope="module")
def build(tmp_path_factory, simulated_site):
    served = simulated_site(0.5, 0.5)
    return make_build(tmp_path_factory.mktemp("report-build"), served.sim, served.catalogue)


@pytest.fixture(scope="module")
def report(build):
    output, record = build
    path = write_report(output)
    return path, path.read_text(encoding="utf-8"), record


def _images(page: str) -> list[np.ndarray]:
    out = []
    for data in re.findall(r'<img src="data:image/jpeg;base64,([^"]+)"', page):
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            out.append(np.asarray(image.convert("RGB")))
    return out


def _card(page: str, video_id: str) -> str:
    start = page.index(f'<article class="video" id="v-{video_id}">')
    return page[start:page.index("</article>", start)]


# ---- pure pieces


def test_thumbnail_shrinks_the_longer_side_and_never_enlarges():
    assert thumbnail(np.zeros((480, 960, 3), np.uint8), 240).shape == (120, 240, 3)
    assert thumbnail(np.zeros((40, 30, 3), np.uint8), 240).shape == (40, 30, 3)


def test_draw_window_outlines_the_window_and_leaves_the_rest():
    image = np.zeros((20, 30, 3), np.uint8)
    out = draw_window(image, (5, 4, 10, 8), color=(255, 0, 0), thickness=1)
    drawn = out[..., 0] == 255
    expected = np.zeros((20, 30), bool)
    expected[4, 5:15] = expected[11, 5:15] = expected[4:12, 5] = expected[4:12, 14] = True
    assert np.array_equal(drawn, expected)
    assert not image.any()  # the input is not changed


def test_tint_mask_blends_only_masked_pixels():
    image = np.full((4, 4, 3), 100, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    out = tint_mask(image, mask, color=(200, 0, 100), alpha=0.5)
    assert out[1, 2].tolist() == [150, 50, 100]
    assert (out[~mask] == 100).all()


def test_bar_chart_draws_one_segment_per_nonzero_count_with_totals():
    svg = bar_chart_svg("by class", {"covid": {"train": 3, "test": 1}, "normal": {"train": 2}}, ["train", "test"])
    assert svg.startswith('<svg class="chart"') and svg.endswith("</svg>")
    assert len(re.findall(r"<rect [^>]*><title>", svg)) == 3
    assert "covid / train: 3" in svg and "normal / test" not in svg
    assert ">4</text>" in svg and ">2</text>" in svg  # row totals


def test_chart_rows_stack_by_split_missing_and_videos_the_config_drops():
    videos = [
        {"label": "covid", "split": {"c": "train"}, "record": {}, "download": {"status": "ok"}},
        {"label": "covid", "split": {"c": "test"}, "record": None, "download": {"status": "missing"}},
        {"label": "other", "split": {}, "record": {}, "download": {"status": "ok"}},
    ]
    rows, segments = chart_rows(videos, "label", "c", ("covid", "other"))
    assert rows == {"covid": {"train": 1, "missing": 1}, "other": {"not in config": 1}}
    assert segments == ["train", "not in config", "missing"]


def test_options_are_validated():
    with pytest.raises(CovidxError, match="thumb_size"):
        ReportOptions(thumb_size=4)
    with pytest.raises(CovidxError, match="max_videos"):
        ReportOptions(max_videos=-1)


# ---- errors that name the culprit


def test_a_folder_without_a_build_record_says_to_build_first(tmp_path, capsys):
    with pytest.raises(ReportError, match="run `covidx-us build --output"):
        load_build_record(tmp_path)
    assert cli.main(["report", "--output", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere does not exist" in err and "covidx-us build" in err


def test_an_unknown_format_version_is_named(tmp_path):
    (tmp_path / "build_record.json").write_text(json.dumps({"format": 99, "configs": [], "videos": []}))
    with pytest.raises(ReportError, match=rf"unknown build record format 99; this covidx-us reads format {FORMAT_VERSION}"):
        load_build_record(tmp_path)


def test_a_broken_record_names_the_file_and_the_video(tmp_path):
    path = tmp_path / "build_record.json"
    path.write_text("{not json")
    with pytest.raises(ReportError, match="build_record.json cannot be read as JSON"):
        load_build_record(tmp_path)
    path.write_text(json.dumps({"format": 1, "configs": [], "videos": [{"id": "3_grepmed_covid"}]}))
    with pytest.raises(ReportError, match="video 3_grepmed_covid has no download object"):
        load_build_record(tmp_path)


# ---- the report of a real processed build


def test_report_lists_every_video_and_the_missing_one_with_its_reason(report):
    path, page, record = report
    assert path.name == "index.html" and path.parent.name == "report"
    assert path.stat().st_mode & 0o777 == 0o644  # readable by whoever the page is shared with
    for video in record["videos"]:
        assert f'id="v-{video["id"]}"' in page
    missing = page[page.index('<section id="missing">'):page.index("</section>", page.index('<section id="missing">'))]
    assert "Missing videos (1)" in missing and GONE in missing and GONE_REASON in missing


def test_report_embeds_everything_and_references_nothing_outside(report):
    _, page, _ = report
    assert not re.search(r"<script|<link|@import|url\(", page)
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert page.count('<svg class="chart"') == 5  # class, source, probe, status, split


def test_each_processed_video_has_original_mask_and_clean_thumbnails_at_most_240px(report):
    _, page, record = report
    for video in record["videos"]:
        card = _card(page, video["id"])
        if video["record"] is None:
            assert "<img" not in card
            continue
        images = _images(card)
        assert len(images) >= 3, video["id"]
        assert all(max(i.shape[:2]) <= 240 for i in images)
        assert "original frame" in card and "clean frame" in card
        assert video["download"]["sha256"] in card and video["download"]["url"] in card


def test_the_clean_thumbnail_is_the_records_first_frame_image(report):
    _, page, record = report
    video = next(v for v in record["videos"] if v["record"])
    first_index, _, first_path, _ = video["record"]["frames"][0]
    clean = _images(_card(page, video["id"]))[2]
    with Image.open(first_path) as image:
        expected = thumbnail(np.asarray(image.convert("RGB")), 240)
    assert clean.shape == expected.shape
    assert np.abs(clean.astype(int) - expected.astype(int)).mean() < 4  # JPEG at quality 80


def test_the_original_thumbnail_has_the_crop_window_drawn_and_the_mask_is_tinted(report):
    _, page, record = report
    video = next(v for v in record["videos"] if v["plan"] and v["plan"]["main_mask"])
    original, masked = _images(_card(page, video["id"]))[:2]
    source_w, _ = video["record"]["source_size"]
    scale = original.shape[1] / source_w
    x, y, w, h = (round(v * scale) for v in video["plan"]["window"])
    top_edge = original[y, x + 2:x + w - 2].astype(int)
    assert (top_edge[:, 0] > 180).mean() > 0.8 and (top_edge[:, 2] < 90).mean() > 0.8  # amber line
    magenta = (masked[..., 0].astype(int) - masked[..., 1] > 60) & (masked[..., 2].astype(int) - masked[..., 1] > 40)
    assert magenta.any()  # the overlay mask is tinted
    assert "mask on cropped frame" in _card(page, video["id"])


def test_a_video_with_frame_specific_masks_shows_its_pointer_frame(report):
    _, page, record = report
    video = next(v for v in record["videos"] if v["id"] == POINTER_VIDEO)
    kept = {f[0] for f in video["record"]["frames"]}
    pointer = min(kept & {int(k) for k in video["plan"]["frame_masks"]})
    first = min(kept - {int(k) for k in video["plan"]["frame_masks"]})
    card = _card(page, POINTER_VIDEO)
    assert f"mask on cropped frame {first}<" in card and f"clean frame {first}<" in card
    assert f"pointer mask on cropped frame {pointer}" in card
    assert f"clean frame {pointer} (pointer removed)" in card
    assert len(_images(card)) == 5


def test_report_states_the_release_provenance_and_parameters(report):
    _, page, record = report
    assert "not the official COVIDx-US release" in page
    assert record["release"]["release_dir"] in page and "max_frames" in page
    entry = next(v for v in record["videos"] if v["id"] == "1_butterfly_covid")
    card = _card(page, "1_butterfly_covid")
    assert entry["split"] and all(f"{config}: {split}" in card for config, split in entry["split"].items())


def test_max_videos_limits_the_thumbnails_not_the_listing(build, tmp_path):
    output, record = build
    copy = tmp_path / "covidx_us"
    copy.mkdir()
    shutil.copy(output / "build_record.json", copy)
    page = write_report(copy, ReportOptions(max_videos=2)).read_text()
    processed = [v["id"] for v in record["videos"] if v["record"]]
    assert all(f'id="v-{v["id"]}"' in page for v in record["videos"])
    assert len(_images(_card(page, processed[1]))) >= 3
    assert not _images(_card(page, processed[2])) and "thumbnails left out" in _card(page, processed[2])


def test_files_gone_from_the_cache_become_captions_not_errors(build, tmp_path):
    output, record = build
    record = json.loads(json.dumps(record))
    video = next(v for v in record["videos"] if v["record"])
    video["download"]["path"] = str(tmp_path / "gone.mp4")
    copy = tmp_path / "covidx_us"
    copy.mkdir()
    (copy / "build_record.json").write_text(json.dumps(record))
    card = _card(write_report(copy).read_text(), video["id"])
    assert "gone.mp4 does not exist" in card
    alts = re.findall(r'<img src="data:[^"]+" alt="([^"]+)"', card)
    assert alts and all(alt.startswith("clean frame") for alt in alts)  # the clean frames still show


def test_cli_writes_the_report_and_says_where(build, tmp_path, capsys):
    output = tmp_path / "covidx_us"
    output.mkdir()
    shutil.copy(build[0] / "build_record.json", output)
    assert cli.main(["report", "--output", str(output), "--max-videos", "1"]) == 0
    assert str(output / "report" / "index.html") in capsys.readouterr().out


def test_open_hands_the_file_url_to_the_web_browser(build, tmp_path, monkeypatch):
    import processing.cli.report as report_module

    output = tmp_path / "covidx_us"
    output.mkdir()
    shutil.copy(build[0] / "build_record.json", output)
    opened = []
    monkeypatch.setattr(report_module.webbrowser, "open", opened.append)
    assert cli.main(["report", "--output", str(output), "--max-videos", "0", "--open"]) == 0
    assert opened == [(output / "report" / "index.html").resolve().as_uri()]


# ---- in a real browser


@pytest.mark.browser
def test_report_renders_in_headless_chromium_without_broken_images_or_requests(report, tmp_path):
    pytest.importorskip("selenium")
    if not (Path("/usr/bin/chromium").is_file() and Path("/usr/bin/chromedriver").is_file()):
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    path, _, record = report
    profile = tempfile.mkdtemp(prefix="covidx-us-report-chromium-", dir=tmp_path)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        driver.get(path.resolve().as_uri())
        driver.execute_script("return document.readyState")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);")
        assert len(images) >= 3 * (len(record["videos"]) - 1)
        broken = [alt for complete, width, alt in images if not complete or width <= 0]
        assert broken == []
        charts = driver.execute_script(
            "return Array.from(document.querySelectorAll('svg.chart')).map(s => s.getBoundingClientRect().width);")
        assert len(charts) == 5 and all(w > 100 for w in charts)
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".concat(performance.getEntriesByType('navigation').map(e => e.name));")
        assert resources and all(name.startswith(("data:", "file:")) for name in resources), resources
        assert GONE in driver.find_element("id", "missing").text
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000  # kept in tmp_path for a human look after the run
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ---- on the record a real `covidx-us build` writes


@pytest.fixture(scope="module")
def real_build(tmp_path_factory, simulated_site):
    """`covidx-us build` of the simulated release from a loopback mirror, one video answering 404."""
    served = simulated_site(0.5, 0.5, missing=(GONE,))
    root = tmp_path_factory.mktemp("report-real-build")
    output = root / "covidx_us"
    args = ["build", "--release-dir", str(served.sim.release_dir), "--custom-release", "--mirror", served.mirror,
            "--no-original", "--delay", "0", "--cache-dir", str(root / "cache"), "--output", str(output),
            "--config", "frames-4class,frames-3class", "--max-frames", "4", "--allow-missing"]
    assert cli.main(args) == 0
    return output, served.catalogue


@pytest.mark.slow
def test_report_of_a_real_build_shows_every_video_its_thumbnails_and_the_missing_one(real_build, capsys):
    output, catalogue = real_build
    assert cli.main(["report", "--output", str(output)]) == 0
    page = (output / "report" / "index.html").read_text(encoding="utf-8")
    record = json.loads((output / "build_record.json").read_text(encoding="utf-8"))
    assert {v["id"] for v in record["videos"]} == {v.id for v in catalogue.videos}
    missing = page[page.index('<section id="missing">'):page.index("</section>", page.index('<section id="missing">'))]
    assert "Missing videos (1)" in missing and GONE in missing and "HTTP 404" in missing
    assert catalogue[GONE].url in missing  # the record has no URL for it; the release has
    for video in catalogue.videos:
        card = _card(page, video.id)
        if video.id == GONE:
            assert "<img" not in card
        else:
            assert len(_images(card)) >= 3 and "original frame" in card and "clean frame" in card, video.id
    assert page.count('<svg class="chart"') == 5
    assert "pointer removed" in _card(page, POINTER_VIDEO)
    card = _card(page, "1_butterfly_covid")
    assert f"<dt>licence</dt><dd>{catalogue['1_butterfly_covid'].licence}</dd>" in card


def test_split_counts_give_videos_frames_and_patients_per_class(build):
    from processing.report.page import split_counts

    _output, record = build
    expected: dict = {}
    for video in record["videos"]:
        if video["record"] is None:
            continue
        for config, split in video["split"].items():
            task = config.split("-", 1)[1]
            name = ("covid" if video["label"] == "covid" else "non-covid") if task == "binary" else video["label"]
            cell = expected.setdefault(config, {}).setdefault(split, {}).setdefault(name, [0, 0, set()])
            cell[0] += 1
            cell[1] += video["record"]["frames_kept"]
            cell[2].add(video["patient_id"] or video["id"])
    got = split_counts(record)
    assert got == {c: {s: {n: (v[0], v[1], len(v[2])) for n, v in by.items()} for s, by in splits.items()}
                   for c, splits in expected.items()}
    assert sum(n[1] for by in got["frames-4class"].values() for n in by.values()) == sum(
        v["record"]["frames_kept"] for v in record["videos"] if v["record"] and "frames-4class" in v["split"])


def test_the_page_and_the_command_warn_about_thin_splits(build, report, tmp_path, capsys):
    from processing.report.page import report_warnings

    _path, page, record = report
    warnings = report_warnings(record)
    assert warnings  # the 16-video simulated release leaves test splits with one class
    assert all(("no video of class" in w) or ("fewer than 3" in w) for w in warnings)
    assert 'id="splits"' in page and all(html.escape(w) in page for w in warnings)
    output = tmp_path / "covidx_us"
    output.mkdir()
    shutil.copy(build[0] / "build_record.json", output)
    assert cli.main(["report", str(output), "--max-videos", "0"]) == 0  # FOLDER as a positional argument
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("warning: ")] == [f"warning: {w}" for w in warnings]
