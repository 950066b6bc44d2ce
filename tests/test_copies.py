"""Public copies: the registry, the copy route of the downloader (loopback raw-file host), --no-original through
redirects, the release plan mapped into a trimmed and resampled copy, provenance in the export, and
``covidx-us sources --offline`` making no request."""

from __future__ import annotations

import csv
import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from clipfactory import noise_frames, write_clip
from releasefactory import make_video

from processing.demo.testsite import LoopbackSite
from processing.errors import CovidxError
from processing.pixels.copymap import CopyMap
from processing.release.catalogue import MaskPlan
from processing.release.copies import COLUMNS, load_copies, raw_url
from processing.sources.download import DownloadOptions, copies_would_recover, download_videos
from processing.windows import Window

ROOT = Path(__file__).resolve().parents[1]

DEAD = "http://covidx-dead-host.invalid/"  # a mirror whose host does not resolve
REPO, COMMIT = "someone/pocus-copies", "0123456789abcdef0123456789abcdef01234567"


# ---------------------------------------------------------------------------------------------- the registry

def test_registry_holds_at_least_60_catalogue_videos_18_of_them_butterfly():
    copies = load_copies()
    butterfly = [vid for vid in copies if "_butterfly_" in vid]
    assert len(copies) >= 60 and len(butterfly) >= 18, (len(copies), len(butterfly))
    rows = [c for rows in copies.values() for c in rows]
    assert all(c.confidence in ("high", "medium") for c in rows)
    assert all(c.url == raw_url(c.repository, c.commit, c.path) for c in rows)
    assert "22_butterfly_covid" not in copies  # withdrawn: not a catalogue video


def test_registry_ids_are_catalogue_videos_and_shared_files_share_a_split_group(reference_release):
    from processing.release.catalogue import load_catalogue

    catalogue = load_catalogue("1.5", reference_release)
    groups = {v.id: v.group for v in catalogue.videos}
    by_file: dict[str, set[str]] = {}
    for vid, rows in load_copies().items():
        assert vid in groups
        for c in rows:
            by_file.setdefault(c.sha256, set()).add(vid)
    assert all(len({groups[v] for v in vids}) == 1 for vids in by_file.values())


@pytest.mark.slow
def test_registry_script_regenerates_the_same_csv_and_its_checks_hold(reference_release, realdata):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "copies_registry.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert "copies of 61 catalogue videos (19 Butterfly)" in done.stdout


def test_registry_check_names_a_copy_whose_file_differs_from_its_row(reference_release, realdata):
    import copies_registry

    text = (ROOT / "metadata" / "copies.csv").read_text()
    header, *rows = text.splitlines()
    row = next(r for r in rows if r.startswith("31_grepmed_covid,"))  # present in realdata
    fields = next(csv.reader([row]))
    fields[COLUMNS.index("width")] = str(int(fields[COLUMNS.index("width")]) + 2)
    bad = header + "\n" + ",".join(f'"{f}"' if "," in f else f for f in fields) + "\n"
    problems = copies_registry.check(bad, reference_release, realdata)
    assert len(problems) == 1 and problems[0].startswith("31_grepmed_covid:") and "1082x1080" in problems[0]
    fields[COLUMNS.index("sha256")] = "xyz"
    problems = copies_registry.check(header + "\n" + ",".join(fields) + "\n", reference_release, None)
    assert problems and "sha256 'xyz' is not 64 hex digits" in problems[0]


# ---------------------------------------------------------------------------------------------- the mapping

def test_copy_map_moves_windows_masks_and_frames_into_a_trimmed_resampled_copy():
    copy = CopyMap(crop=Window(12, 0, 72, 72), first=6, timing="time", original_fps=10.0, copy_fps=5.0,
                   width=36, height=36, frames=17)
    assert [copy.original_frame(k) for k in range(4)] == [6, 8, 10, 12]
    assert copy.window(Window(12, 0, 72, 72)) == Window(0, 0, 36, 36)
    assert copy.window(Window(20, 10, 40, 20)) == Window(4, 5, 20, 10)
    mask = np.zeros((72, 72), bool)
    mask[20:30, 30:40] = True
    moved = copy.mask(mask, Window(12, 0, 72, 72))
    rows, cols = np.nonzero(moved)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 14, 15, 19)
    assert copy.deleted(((20, 22),)) == ((7, 8),)
    frames = CopyMap(crop=Window(0, 0, 10, 10), first=3, timing="frames", original_fps=20.0, copy_fps=25.0,
                     width=10, height=10, frames=5)
    assert [frames.original_frame(k) for k in range(5)] == [3, 4, 5, 6, 7]
    with pytest.raises(CovidxError, match="lies outside"):
        copy.window(Window(0, 0, 5, 5))


def test_a_trimmed_and_resampled_copy_gets_the_release_frame_masks_on_the_right_frames(tmp_path):
    """Original: 96x72, 40 frames at 10 fps, release crop (12, 0, 72, 72), frame-specific masks on original frames
    10-13 (a pointer), deleted frames 20-22. The copy (never the original) is POCOVID-like: crop (12, 0, 72) scaled
    to 36x36, starting at original frame 6, resampled to 5 fps (copy frame k = original frame 6 + 2k)."""
    from processing.build.processed import ClipJob, run_job
    from processing.pixels.pipeline import ProcessingOptions

    rng = np.random.default_rng(0)
    originals = [rng.integers(40, 200, (72, 96, 3), dtype=np.uint8) for _ in range(40)]
    for n in range(10, 14):  # the pointer: a white square at rows 20-29, cols 42-51 of the original frame
        originals[n][20:30, 42:52] = 255
    copy_frames = [cv2.resize(originals[6 + 2 * k][0:72, 12:84], (36, 36), interpolation=cv2.INTER_AREA)
                   for k in range(17)]
    source = write_clip(tmp_path / "copy.mp4", copy_frames, fps=5, kind="lossless.mp4")
    mask_dir = tmp_path / "mask"
    mask_dir.mkdir()
    video = make_video("5_butterfly_covid", "https://butterflynetwork.getbynder.com/transfer/x", width=96, height=72,
                       frames=40)
    from dataclasses import replace

    video = replace(video, masks=MaskPlan(True, None, ((10, 13),), ((20, 22),), False))
    video = replace(video, expected=replace(video.expected, fps=10.0))
    pointer = np.zeros((72, 72), np.uint8)
    pointer[20:30, 30:40] = 255  # in the release crop window's pixels (x - 12)
    for n in range(10, 14):
        cv2.imwrite(str(mask_dir / f"{video.id}_prc_convex_frame{n}_mask.jpg"), pointer)
    mapping = CopyMap(crop=Window(12, 0, 72, 72), first=6, timing="time", original_fps=10.0, copy_fps=5.0,
                      width=36, height=36, frames=17)
    job = ClipJob(video=video, source=source, source_sha256="x", mask_dir=mask_dir, out_root=tmp_path / "out",
                  options=ProcessingOptions(write_videos=False), need_video=False, copy_plan="mapped", copy=mapping)
    data = run_job(job)
    plan, record = data["plan"], data["record"]
    assert plan["copy"] == "mapped" and plan["window"] == [0, 0, 36, 36]
    assert sorted(plan["frame_masks"]) == ["2", "3"]  # original frames 10 and 12
    assert plan["deleted"] == [[7, 8]]  # original frames 20 and 22
    kept = {index: masked for index, _t, _p, masked in record["frames"]}
    assert sorted(kept) == [k for k in range(17) if k not in (7, 8)]
    assert [k for k, masked in kept.items() if masked] == [2, 3]
    mask = cv2.imread(plan["frame_masks"]["2"], cv2.IMREAD_GRAYSCALE) > 0
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 14, 15, 19)
    clean = cv2.cvtColor(cv2.imread(record["frames"][2][2]), cv2.COLOR_BGR2RGB)
    assert clean[10:15, 15:20].mean() < 230  # the white pointer was inpainted away
    assert np.array_equal(clean[25:, :], copy_frames[2][25:, :]) or np.abs(
        clean[25:, :].astype(int) - copy_frames[2][25:, :]).max() <= 2  # far from the mask: the copy's own pixels


# ---------------------------------------------------------------------------------------------- the copy route

def _registry(path: Path, rows: list[dict[str, object]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
    load_copies.cache_clear()
    return path


def _row(video_id: str, file: Path, name: str, width: int = 64, height: int = 48, frames: int = 10) -> dict:
    data = file.read_bytes()
    path = f"data/pocus videos/{name}"  # a space: the URL is percent-encoded
    return {"video_id": video_id, "url": raw_url(REPO, COMMIT, path), "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "width": width, "height": height, "frames": frames, "fps": 10.0,
            "changes": "cropped;re-encoded", "evidence": "title", "confidence": "high", "licence": "not stated",
            "repository": REPO, "commit": COMMIT, "path": path}


@pytest.fixture
def dead_originals(tmp_path):
    """Three videos whose originals are gone (404 on the mirror, and a mirror host that does not resolve); copies
    of two on a loopback imitation of the raw-file host, the second's first copy with the wrong bytes."""
    videos = [make_video(f"{n}_grepmed_covid", f"https://img.grepmed.com/uploads/{n}/clip-original.mp4")
              for n in (1, 2, 3)]
    good1 = write_clip(tmp_path / "c1.mp4", noise_frames(10, seed=1))
    good2 = write_clip(tmp_path / "c2.mp4", noise_frames(10, seed=2))
    tampered = write_clip(tmp_path / "c2-tampered.mp4", noise_frames(10, seed=3))
    rows = [_row(videos[0].id, good1, "one.mp4"), _row(videos[1].id, good2, "two a.mp4"),
            _row(videos[1].id, good2, "two b.mp4")]
    registry = _registry(tmp_path / "copies.csv", rows)
    site = LoopbackSite()
    for video in videos:
        site.add(video.url, b"", status=404)
    site.add_file(rows[0]["url"], good1)
    site.add_file(rows[1]["url"], tampered)  # its bytes are not the registry's
    site.add_file(rows[2]["url"], good2)
    with site:
        yield videos, rows, registry, site


def _options(tmp_path, site, registry, **extra):
    return DownloadOptions(cache_dir=tmp_path / "cache", mirrors=(site.prefix, DEAD), use_original=False, delay=0,
                           retries=0, timeout=5, copy_registry=registry, **extra)


def test_copies_off_recover_nothing_and_name_what_copies_would_bring(dead_originals, tmp_path):
    videos, rows, registry, site = dead_originals
    results = download_videos(videos, _options(tmp_path, site, registry))
    assert [r.status for r in results] == ["missing"] * 3
    assert "HTTP 404" in results[0].reason and "cannot resolve host covidx-dead-host.invalid" in results[0].reason
    assert copies_would_recover(results, registry) == [videos[0].id, videos[1].id]
    assert not [h for h in site.hits() if h.key.startswith("raw.githubusercontent.com")]


def test_copies_on_recover_every_reachable_copy_and_refuse_wrong_bytes(dead_originals, tmp_path, caplog):
    videos, rows, registry, site = dead_originals
    results = download_videos(videos, _options(tmp_path, site, registry, copies=True))
    first, second, third = results
    assert (first.status, first.origin, first.sha256) == ("copy", "copy", rows[0]["sha256"])
    assert first.url == site.prefix + rows[0]["url"].removeprefix("https://")  # served through the mirror
    assert first.copy["repository"] == REPO and first.copy["commit"] == COMMIT
    assert second.status == "copy" and second.copy["path"] == "data/pocus videos/two b.mp4"
    assert "refused" in second.reason and "two%20a.mp4" in second.reason and rows[1]["sha256"] in second.reason
    assert "refused the copy" in caplog.text and "2_grepmed_covid" in caplog.text
    assert third.status == "missing" and "no registered public copy" in third.reason
    manifest = json.loads((tmp_path / "cache" / "downloads" / "manifest.json").read_text())
    assert manifest["files"][first.video_id]["status"] == "copy"
    assert manifest["files"][first.video_id]["copy"]["path"] == "data/pocus videos/one.mp4"
    # a later run without --copies does not pass a cached copy off as the original
    again = download_videos(videos[:1], _options(tmp_path, site, registry))
    assert again[0].status == "missing"


def test_no_original_refuses_a_mirror_redirect_to_an_original_host(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", noise_frames(10))
    video = make_video("4_grepmed_covid", "https://img.grepmed.com/uploads/4/clip-original.mp4")
    with LoopbackSite() as site:
        site.fault(video.url, "redirect", times=99, location=video.url)
        results = download_videos([video], DownloadOptions(cache_dir=tmp_path / "c", mirrors=(site.prefix,),
                                                           use_original=False, delay=0, retries=0, timeout=5))
    assert results[0].status == "missing"
    assert "refused redirect from the mirror 127.0.0.1 to img.grepmed.com under --no-original" in results[0].reason
    assert clip.is_file()


def test_the_manifest_records_the_url_that_served_the_bytes(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", noise_frames(10))
    video = make_video("4_grepmed_covid", "https://img.grepmed.com/uploads/4/clip-original.mp4")
    moved = "https://img.grepmed.com/uploads/4/moved-original.mp4"
    with LoopbackSite() as site:
        site.add_file(moved, clip)
        site.fault(video.url, "redirect", times=99, location=site.url(moved))
        results = download_videos([video], DownloadOptions(cache_dir=tmp_path / "c", mirrors=(site.prefix,),
                                                           use_original=False, delay=0, retries=0, timeout=5))
        served = site.url(moved)
    assert results[0].status == "mirror" and results[0].url == served
    manifest = json.loads((tmp_path / "c" / "downloads" / "manifest.json").read_text())
    assert manifest["files"][video.id]["url"] == served


# ---------------------------------------------------------------------------------------------- covidx-us sources

def test_sources_offline_makes_no_request(reference_release, tmp_path, monkeypatch, capsys):
    from processing.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError(f"covidx-us sources --offline opened a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert main(["sources", "--offline", "--release-dir", str(reference_release), "--cache-dir",
                 str(tmp_path / "cache"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["video_id"]: r for r in out["videos"]}
    assert len(rows) == 242 and all(r["alive"] is None for r in rows.values())
    assert rows["1_butterfly_covid"]["copy"] == "high" and rows["1_butterfly_covid"]["use_with_copies"] == "copy"
    assert rows["1_butterfly_covid"]["use"] == "unknown"
    butterfly = out["totals"]["source"]["butterfly"]
    assert butterfly == {"videos": 35, "available": 0, "with_copies": 19}


def test_sources_online_asks_one_byte_and_sees_a_mirror(tmp_path, capsys):
    from processing.sources.availability import check_availability

    clip = write_clip(tmp_path / "clip.mp4", noise_frames(10))
    alive = make_video("1_grepmed_covid", "https://img.grepmed.com/uploads/1/a-original.mp4")
    dead = make_video("2_grepmed_covid", "https://img.grepmed.com/uploads/2/b-original.mp4")
    with LoopbackSite() as site:
        site.add_file(alive.url, clip)
        rows = check_availability([alive, dead], DownloadOptions(cache_dir=tmp_path / "c", mirrors=(site.prefix,),
                                                                 use_original=False, delay=0, retries=0, timeout=5),
                                  registry={})
        hits, prefix = site.hits(alive.url), site.prefix
    assert rows[0].mirror == prefix and rows[0].use == "mirror"
    assert rows[1].mirror is None and rows[1].use == "missing"
    assert hits[0].range == "bytes=0-0" and hits[0].sent <= 1


# ---------------------------------------------------------------------------------------------- a build with copies

@pytest.mark.slow
def test_a_build_with_copies_marks_them_in_examples_card_and_record(tmp_path, monkeypatch, simulated_site):
    """Simulated release, every original dead (only copies are served): one copy with a known place in the original
    (cropped square + trimmed: the release plan is mapped) and one without (identical file: automatic crop and
    masks). Without copies the build stops and names what --copies would bring."""
    import datasets

    from processing.cli.build import build
    from processing.errors import DownloadError
    from processing.pixels.clips import iter_frames, probe_clip

    served = simulated_site(0.5, 0.25)  # the release and its clips; this test serves only the copies, on its own site
    sim, catalogue = served.sim, served.catalogue
    by_source = {}
    for video in catalogue.videos:
        if video.filetype == "mp4" and video.masks.frame_masks == () and video.source not in by_source:
            by_source[video.source] = video
    mapped_video, auto_video = list(by_source.values())[:2]
    # the mapped copy: the release's own window as POCOVID's square, frames 2.. kept one for one
    info = probe_clip(sim.clips[mapped_video.id])
    window = mapped_video.crop_rule.window(info.width, info.height)
    side = min(window.w, window.h) // 2 * 2
    frames = [f.image[window.y:window.y + side, window.x:window.x + side] for f in iter_frames(sim.clips[mapped_video.id])]
    copy1 = write_clip(tmp_path / "mapped.mp4", frames[2:], fps=round(info.fps), kind="lossless.mp4")
    copy2 = sim.clips[auto_video.id]
    info2 = probe_clip(copy2)
    row1 = _row(mapped_video.id, copy1, "mapped.mp4", side, side, len(frames) - 2)
    row1.update(crop_top=window.y, crop_left=window.x, crop_size=side, frame_start=2, frame_end=len(frames),
                timing="frames", changes="cropped;trimmed;re-encoded", fps=round(info.fps))
    row2 = _row(auto_video.id, copy2, "auto.mp4", info2.width, info2.height, info2.frame_count)
    row2.update(changes="identical")
    registry = _registry(tmp_path / "copies.csv", [row1, row2])
    with LoopbackSite() as site:
        site.add_file(row1["url"], copy1)
        site.add_file(row2["url"], copy2)
        params = {"release_dir": str(sim.release_dir), "custom_release": True, "mirrors": (site.prefix,),
                  "use_original": False, "download_delay": 0, "work_dir": str(tmp_path / "work"),
                  "copy_registry": str(registry), "sources": tuple(sorted({mapped_video.source, auto_video.source}))}
        with pytest.raises(DownloadError, match="a rerun with --copies would recover them"):
            build(("frames-4class",), params, tmp_path / "nocopies")
        out, _summary = build(("frames-4class",), {**params, "copies": True, "allow_missing": True},
                              tmp_path / "export")
    monkeypatch.chdir(out.parent)
    ds = datasets.load_dataset(out.name, "frames-4class", cache_dir=str(tmp_path / "hf"))
    seen = {}
    for split in ds.values():
        for vid, origin, repo, commit in zip(split["video_id"], split["origin"], split["copy_repository"],
                                             split["copy_commit"], strict=True):
            seen[vid] = (origin, repo, commit)
    assert seen[mapped_video.id] == ("copy", REPO, COMMIT) and seen[auto_video.id] == ("copy", REPO, COMMIT)
    assert {o for o, _r, _c in seen.values()} == {"copy"}
    card = (out / "README.md").read_text()
    assert "Clips from public copies (2)" in card
    assert f"| {mapped_video.id} | {REPO} | `{COMMIT}` | `data/pocus videos/mapped.mp4` | cropped, trimmed, " \
           "re-encoded | mapped |" in card
    assert f"| {auto_video.id} | {REPO} | `{COMMIT}` | `data/pocus videos/auto.mp4` | identical | auto |" in card
    record = json.loads((out / "build_record.json").read_text())
    entries = {v["id"]: v for v in record["videos"]}
    assert entries[mapped_video.id]["plan"]["copy"] == "mapped"
    assert entries[mapped_video.id]["plan"]["window"][2] <= side
    assert entries[auto_video.id]["plan"]["copy"] == "auto" and entries[auto_video.id]["plan"]["crop"] == "auto"
    assert {c["video_id"] for c in record["copies"]} == {mapped_video.id, auto_video.id}


@pytest.mark.slow
def test_every_registered_copy_on_disk_is_recovered_with_every_original_dead(reference_release, realdata,
                                                                           tmp_path):
    """The official catalogue, every original dead, the real copies of ../shared/realdata served by a loopback
    imitation of the raw-file host: --copies recovers each one (sha256-verified); the others stay missing."""
    from processing.release.catalogue import load_catalogue

    catalogue = load_catalogue("1.5", reference_release)
    registry = load_copies()
    with open(realdata / "MANIFEST.csv", newline="") as handle:
        on_disk = {(r["origin_repo"], r["origin_path"]): realdata / r["file"] for r in csv.DictReader(handle)}
    reachable = {}
    with LoopbackSite() as site:
        for rows in registry.values():
            for copy in rows:
                if (copy.repository, copy.path) in on_disk:
                    site.add_file(copy.url, on_disk[(copy.repository, copy.path)])
                    reachable.setdefault(copy.video_id, copy)
        videos = [v for v in catalogue.videos if v.id in registry]
        results = download_videos(videos, DownloadOptions(cache_dir=tmp_path / "cache", mirrors=(site.prefix, DEAD),
                                                          use_original=False, delay=0, retries=0, timeout=10,
                                                          copies=True, browser=False))
    recovered = {r.video_id for r in results if r.status == "copy"}
    assert recovered == set(reachable) and len(recovered) >= 48
    assert all(r.sha256 == reachable[r.video_id].sha256 for r in results if r.status == "copy")
