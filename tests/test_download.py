"""The shared downloader against a real loopback server: every fault ends in the right status, nothing partial is
kept except a resumable .part, a rerun resumes with Range, and verified bytes are recorded in the manifest."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from clipfactory import noise_frames, write_clip
from releasefactory import make_video

from processing import sources
from processing.demo.testsite import LoopbackSite, make_zip
from processing.errors import CovidxError, DownloadError, InvalidChoiceError
from processing.sources.download import (
    DownloadOptions,
    DownloadResult,
    check_archive,
    download_videos,
    mirror_url,
    safe_extract,
    sniff,
)
from processing.sources.grepmed import GrepMed

GREPMED = "https://img.grepmed.com/uploads/7579/blines-lung-pulmonary-viral-pocus-original.mp4"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", noise_frames(30))


@pytest.fixture
def video():
    return make_video("23_grepmed_pneumonia", GREPMED, frames=30)


@pytest.fixture
def site(clip):
    with LoopbackSite() as running:
        running.add_file(GREPMED, clip)
        yield running


def options(tmp_path: Path, site: LoopbackSite | None = None, **overrides) -> DownloadOptions:
    settings = dict(cache_dir=tmp_path / "cache", mirrors=(site.prefix,) if site else (), timeout=2, retries=1,
                    backoff=0, delay=0, use_original=False)
    settings.update(overrides)
    return DownloadOptions(**settings)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(tmp_path: Path) -> list[str]:
    """Every file in the download cache except the manifest (the place partial files would hide)."""
    root = tmp_path / "cache" / "downloads"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")


def run_one(video, opts) -> DownloadResult:
    (result,) = download_videos([video], opts)
    return result


# ---- pure helpers

@pytest.mark.parametrize("head, kind", [
    (b"\x00\x00\x00\x20ftypisom\x00\x00", "mp4"), (b"\x00\x00\x00\x14ftypqt  ", "mov"),
    (b"\x00\x00\x00\x08moov", "mov"), (b"GIF89a\x01\x00", "gif"), (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
    (bytes.fromhex("3026B2758E66CF11A6D900AA0062CE6C"), "wmv"), (b"PK\x03\x04rest", "zip"),
    (b"  <!DOCTYPE html><html>", "html"), (b'{"error": "gone"}', "json"), (b"", "empty"), (b"\n\n ", "empty"),
    (b"\x01\x02\x03\x04\x05\x06\x07\x08", "unknown"),
])
def test_sniff_reads_magic_bytes(head, kind):
    assert sniff(head) == kind


def test_mirror_url_appends_host_path_and_query():
    url = "https://obgyn.onlinelibrary.wiley.com/action/downloadSupplement?doi=10.1002%2Fuog.22034&file=a.mp4"
    assert mirror_url("https://web.archive.org/web/2021id_/", url) == (
        "https://web.archive.org/web/2021id_/obgyn.onlinelibrary.wiley.com/action/downloadSupplement"
        "?doi=10.1002%2Fuog.22034&file=a.mp4")


def test_options_are_validated(tmp_path):
    with pytest.raises(CovidxError, match="timeout"):
        DownloadOptions(cache_dir=tmp_path, timeout=0)
    with pytest.raises(CovidxError, match=r"invalid mirror 'ftp://x/'; valid values: http\(s\) URL prefixes"):
        DownloadOptions(cache_dir=tmp_path, mirrors=("ftp://x/",))
    assert DownloadOptions(cache_dir=tmp_path, mirrors=("http://m.example/base",)).mirrors == (
        "http://m.example/base/",)


def test_unknown_source_lists_valid_ones(tmp_path, video):
    bad = make_video("1_nowhere_covid", GREPMED)
    with pytest.raises(InvalidChoiceError, match="grepmed"):
        download_videos([bad], options(tmp_path))


# ---- happy paths and the manifest

def test_mirror_download_is_verified_and_recorded(tmp_path, site, clip, video):
    result = run_one(video, options(tmp_path, site))
    assert result.status == "mirror"
    assert result.path == tmp_path / "cache" / "downloads" / "23_grepmed_pneumonia.mp4"
    assert result.sha256 == sha(clip) == sha(result.path)
    assert result.size == clip.stat().st_size
    assert result.url == site.url(GREPMED)
    manifest = json.loads((tmp_path / "cache" / "downloads" / "manifest.json").read_text())
    assert manifest["files"]["23_grepmed_pneumonia"]["sha256"] == sha(clip)
    assert leftovers(tmp_path) == ["23_grepmed_pneumonia.mp4"]


def test_original_host_success_is_status_ok(tmp_path, site, clip, video, monkeypatch):
    class LoopbackGrepMed(GrepMed):  # GrepMed whose "original" host is the loopback server
        hosts = (*GrepMed.hosts, "127.0.0.1")

    monkeypatch.setitem(sources._REGISTRY, "grepmed", LoopbackGrepMed())
    direct = make_video("23_grepmed_pneumonia", site.url(GREPMED), frames=30)
    result = run_one(direct, options(tmp_path, None, use_original=True))
    assert (result.status, result.sha256) == ("ok", sha(clip))


def test_rerun_reuses_the_manifest_without_requests(tmp_path, site, clip, video):
    first = run_one(video, options(tmp_path, site))
    seen = len(site.hits())
    second = run_one(video, options(tmp_path, site))
    assert (second.status, second.sha256, second.path) == (first.status, first.sha256, first.path)
    assert len(site.hits()) == seen


def test_rerun_refetches_a_file_that_no_longer_matches(tmp_path, site, clip, video):
    first = run_one(video, options(tmp_path, site))
    first.path.write_bytes(b"tampered")
    second = run_one(video, options(tmp_path, site))
    assert second.sha256 == sha(clip) == sha(second.path)
    assert len(site.hits(GREPMED)) == 2


def test_refused_mirror_does_not_block_another_port_of_the_same_host(tmp_path, site, clip):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    videos = [make_video("23_grepmed_pneumonia", GREPMED, frames=30), make_video("24_grepmed_covid", GREPMED, frames=30)]
    results = download_videos(videos, options(tmp_path, None, mirrors=(closed, site.prefix), workers=1))
    assert [r.status for r in results] == ["mirror", "mirror"]
    assert all("Connection refused" in r.reason for r in results)
    assert len(site.hits(GREPMED)) == 2


def test_first_working_mirror_wins(tmp_path, site, clip, video):
    with LoopbackSite() as empty:
        result = run_one(video, options(tmp_path, None, mirrors=(empty.prefix, site.prefix)))
        assert result.status == "mirror" and result.url == site.url(GREPMED)
        assert [hit.status for hit in empty.hits(GREPMED)] == [404]


# ---- faults

def test_500_then_success_is_retried(tmp_path, site, clip, video):
    site.fault(GREPMED, "500-then-ok", times=1)
    result = run_one(video, options(tmp_path, site, retries=2))
    assert (result.status, result.sha256) == ("mirror", sha(clip))
    assert [hit.status for hit in site.hits(GREPMED)] == [500, 200]


def test_429_with_retry_after_is_retried(tmp_path, site, clip, video):
    site.fault(GREPMED, "429-then-ok", times=1)
    result = run_one(video, options(tmp_path, site, retries=2))
    assert result.sha256 == sha(clip)
    assert [hit.status for hit in site.hits(GREPMED)] == [429, 200]


def test_404_is_not_retried_and_ends_missing(tmp_path, site, video):
    site.fault(GREPMED, "404")
    result = run_one(video, options(tmp_path, site, retries=3))
    assert result.status == "missing" and result.path is None
    assert "HTTP 404" in result.reason and "no --data-dir" in result.reason
    assert [hit.status for hit in site.hits(GREPMED)] == [404]
    assert leftovers(tmp_path) == []


def test_persistent_500_ends_missing_after_the_retries(tmp_path, site, video):
    site.fault(GREPMED, "500-then-ok", times=99)
    result = run_one(video, options(tmp_path, site, retries=2))
    assert result.status == "missing" and "500" in result.reason
    assert len(site.hits(GREPMED)) == 3
    assert leftovers(tmp_path) == []


def test_connection_reset_ends_missing(tmp_path, site, video):
    site.fault(GREPMED, "reset")
    result = run_one(video, options(tmp_path, site))
    assert result.status == "missing" and "ConnectionError" in result.reason
    assert len(site.hits(GREPMED)) == 2  # the first try and one retry
    assert leftovers(tmp_path) == []


def test_html_with_status_200_is_never_kept_as_a_video(tmp_path, site, video):
    site.fault(GREPMED, "html")
    result = run_one(video, options(tmp_path, site))
    assert result.status == "missing" and "server sent html" in result.reason
    assert leftovers(tmp_path) == []


def test_slow_body_past_the_timeout_ends_missing(tmp_path, site, video):
    site.fault(GREPMED, "slow", delay=1.5)
    result = run_one(video, options(tmp_path, site, timeout=0.3, retries=0))
    assert result.status == "missing" and "timed out" in result.reason
    assert result.path is None and not (tmp_path / "cache" / "downloads" / "23_grepmed_pneumonia.mp4").exists()


def test_truncated_body_is_not_kept_and_a_rerun_completes_it(tmp_path, site, clip, video):
    site.fault(GREPMED, "truncate")
    first = run_one(video, options(tmp_path, site, retries=0))
    assert first.status == "missing" and "interrupted" in first.reason
    assert [p for p in leftovers(tmp_path) if not p.startswith("partial/")] == []
    site.routes[("img.grepmed.com/uploads/7579/blines-lung-pulmonary-viral-pocus-original.mp4", None)].fault = None
    second = run_one(video, options(tmp_path, site, retries=0))
    assert second.sha256 == sha(clip)
    assert site.hits(GREPMED)[-1].range is not None


def test_interrupted_download_resumes_with_range_on_rerun(tmp_path, site, clip, video):
    size = clip.stat().st_size
    site.fault(GREPMED, "cut-once")
    first = run_one(video, options(tmp_path, site, retries=0))
    assert first.status == "missing" and "a rerun resumes" in first.reason
    parts = [p for p in leftovers(tmp_path) if p.endswith(".part")]
    assert len(parts) == 1
    kept = (tmp_path / "cache" / "downloads" / parts[0]).stat().st_size
    assert 0 < kept < size

    second = run_one(video, options(tmp_path, site, retries=0))
    assert (second.status, second.sha256) == ("mirror", sha(clip))
    resumed = site.hits(GREPMED)[-1]
    assert resumed.range == f"bytes={kept}-" and resumed.status == 206
    assert resumed.sent == size - kept < size
    assert leftovers(tmp_path) == ["23_grepmed_pneumonia.mp4"]


def test_interrupted_body_resumes_within_one_run_when_retries_allow(tmp_path, site, clip, video):
    site.fault(GREPMED, "cut-once")
    result = run_one(video, options(tmp_path, site, retries=1))
    assert result.sha256 == sha(clip)
    assert [hit.status for hit in site.hits(GREPMED)] == [200, 206]


def _padded_mp4s(folder: Path, seeds: tuple[int, int]) -> tuple[bytes, bytes]:
    """Two different real mp4s of exactly the same length (each padded with a trailing ``free`` box), so that a
    resume splicing one onto the other cannot be caught by the length alone."""
    clips = [write_clip(folder / f"seed{seed}.mp4", noise_frames(30, seed=seed)).read_bytes() for seed in seeds]
    size = max(len(c) for c in clips) + 16
    return tuple(c + (size - len(c)).to_bytes(4, "big") + b"free" + bytes(size - len(c) - 8) for c in clips)


def test_a_file_replaced_on_the_server_between_runs_is_fetched_whole_not_spliced(tmp_path, video):
    old, new = _padded_mp4s(tmp_path, (0, 7))
    assert len(old) == len(new) and old != new
    with LoopbackSite() as site:
        route = site.add(GREPMED, old)
        site.fault(GREPMED, "cut-once")
        first = run_one(video, options(tmp_path, site, retries=0))
        assert first.status == "missing" and "a rerun resumes" in first.reason
        cut = site.hits(GREPMED)[0]
        route.body, route.fault = new, None  # the server now holds another file (its ETag changes with it)
        second = run_one(video, options(tmp_path, site, retries=0))
        resumed = site.hits(GREPMED)[-1]
    assert cut.status == 200 and 0 < cut.sent < len(old)
    assert resumed.range is not None and resumed.headers.get("if-range") == '"' + hashlib.sha1(old).hexdigest()[:16] + '"'
    assert (resumed.status, resumed.sent) == (200, len(new))  # the validator failed: the whole new file came
    assert (second.status, second.sha256) == ("mirror", hashlib.sha256(new).hexdigest())
    assert (tmp_path / "cache" / "downloads" / "23_grepmed_pneumonia.mp4").read_bytes() == new


def test_server_ignoring_range_restarts_from_zero(tmp_path, site, clip, video):
    site.fault(GREPMED, "cut-once")
    run_one(video, options(tmp_path, site, retries=0))
    site.fault(GREPMED, "no-range")
    result = run_one(video, options(tmp_path, site, retries=0))
    assert result.sha256 == sha(clip)
    last = site.hits(GREPMED)[-1]
    assert last.range is not None and (last.status, last.sent) == (200, clip.stat().st_size)


def test_redirect_to_a_host_outside_the_source_is_refused(tmp_path, site, video):
    site.fault(GREPMED, "redirect", location="http://files.elsewhere.example/clip.mp4")
    result = run_one(video, options(tmp_path, site))
    assert result.status == "missing" and "refused redirect to files.elsewhere.example" in result.reason
    assert leftovers(tmp_path) == []


def test_redirect_within_the_mirror_is_followed(tmp_path, site, clip, video):
    moved = "https://img.grepmed.com/uploads/7579/moved-original.mp4"
    site.add_file(moved, clip)
    site.fault(GREPMED, "redirect", location=site.url(moved))
    assert run_one(video, options(tmp_path, site)).sha256 == sha(clip)


def test_file_above_the_size_cap_is_refused_by_content_length(tmp_path, site, clip, video):
    result = run_one(video, options(tmp_path, site, max_bytes=clip.stat().st_size - 1))
    assert result.status == "missing" and "size cap" in result.reason
    assert site.hits(GREPMED)[-1].status == 200
    assert leftovers(tmp_path) == []


def test_announced_3gib_file_is_refused_before_its_body_with_the_default_cap(tmp_path, site, video):
    site.fault(GREPMED, "oversized")
    settings = {k: v for k, v in vars(options(tmp_path, site)).items() if k != "max_bytes"}
    result = run_one(video, DownloadOptions(**settings))
    assert result.status == "missing" and f"file of {3 * 1024**3} bytes is above the size cap" in result.reason
    assert leftovers(tmp_path) == []


def test_mirror_prefix_with_a_path_like_the_internet_archive(tmp_path, clip, video):
    with LoopbackSite(path_prefix="web/2021id_/") as archive:
        archive.add_file(GREPMED, clip)
        assert archive.prefix.endswith("/web/2021id_/")
        result = run_one(video, options(tmp_path, archive))
        assert result.url == archive.prefix + GREPMED.removeprefix("https://")
        assert result.sha256 == sha(clip)


def test_file_above_the_size_cap_is_refused_while_streaming(tmp_path, site, clip, video):
    site.fault(GREPMED, "no-length")
    result = run_one(video, options(tmp_path, site, max_bytes=clip.stat().st_size - 1))
    assert result.status == "missing" and "exceeds the size cap" in result.reason
    assert leftovers(tmp_path) == []


def test_decode_check_refuses_a_clip_of_another_size(tmp_path, site, video):
    wrong = make_video("23_grepmed_pneumonia", GREPMED, width=640, height=480, frames=30)
    result = run_one(wrong, options(tmp_path, site))
    assert result.status == "missing" and "decoded 64x48 but the catalogue expects 640x480" in result.reason
    assert leftovers(tmp_path) == []


def test_decode_check_refuses_a_wrong_frame_count_only_when_trusted(tmp_path, site, clip):
    trusted = make_video("23_grepmed_pneumonia", GREPMED, frames=90)
    assert "decoded 30 frames but the catalogue expects 90" in run_one(trusted, options(tmp_path, site)).reason
    stale = make_video("23_grepmed_pneumonia", GREPMED, width=320, height=240, frames=None, trusted=False)
    assert run_one(stale, options(tmp_path, site)).sha256 == sha(clip)


def test_undecodable_bytes_with_a_video_signature_are_refused(tmp_path, site, video):
    site.add(GREPMED, b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200, "video/mp4")
    result = run_one(video, options(tmp_path, site))
    assert result.status == "missing" and "does not decode" in result.reason
    assert leftovers(tmp_path) == []


def test_two_videos_of_one_url_each_get_the_whole_file(tmp_path, site, clip):
    videos = [make_video(f"{n}_grepmed_covid", GREPMED, frames=30) for n in (1, 2)]
    results = download_videos(videos, options(tmp_path, site, workers=2, per_host=2))
    assert [(r.status, r.sha256) for r in results] == [("mirror", sha(clip))] * 2
    assert results[0].path != results[1].path


def test_per_host_delay_spaces_requests(tmp_path, site, clip):
    videos = []
    for n in range(3):
        url = f"https://img.grepmed.com/uploads/{n}/clip{n}-original.mp4"
        site.add_file(url, clip)
        videos.append(make_video(f"{n + 1}_grepmed_covid", url, frames=30))
    results = download_videos(videos, options(tmp_path, site, delay=0.5, workers=3, per_host=3))
    assert [r.status for r in results] == ["mirror"] * 3
    starts = sorted(hit.time for hit in site.hits())
    # 0.1 s of slack for a loaded machine (arrival stamps, not send times); without the delay the gaps are ~0
    assert all(b - a >= 0.4 for a, b in zip(starts, starts[1:], strict=False))


def test_per_host_limit_holds_for_the_whole_transfer(tmp_path, site, clip):
    videos = []
    for n in range(3):
        url = f"https://img.grepmed.com/uploads/{n}/clip{n}-original.mp4"
        site.add_file(url, clip)
        site.fault(url, "slow", delay=0.3)  # 16 bytes, a pause, then the rest
        videos.append(make_video(f"{n + 1}_grepmed_covid", url, frames=30))
    results = download_videos(videos, options(tmp_path, site, workers=3, per_host=1))
    assert [r.status for r in results] == ["mirror"] * 3
    starts = sorted(hit.time for hit in site.hits())
    assert all(b - a >= 0.28 for a, b in zip(starts, starts[1:], strict=False))


def test_shared_transfer_page_and_failed_archive_are_fetched_once(tmp_path, clip):
    transfer = "https://butterflynetwork.getbynder.com/transfer/" + "2" * 64
    videos = [make_video(f"{n}_butterfly_covid", transfer, filename=f"clip {n}.mp4") for n in (1, 2, 3)]
    with LoopbackSite() as site:
        site.add_page(transfer, '<a class="btn btn-primary" href="/transfer/' + "2" * 64 + '/download">Get</a>')
        results = download_videos(videos, options(tmp_path, site))
        assert [r.status for r in results] == ["missing"] * 3 and all("HTTP 404" in r.reason for r in results)
        assert len(site.hits(transfer)) == 1 and len(site.hits(transfer + "/download")) == 1


# ---- the manual folder

def test_manual_folder_by_video_id(tmp_path, clip, video):
    data = tmp_path / "manual"
    data.mkdir()
    (data / "23_grepmed_pneumonia.mp4").write_bytes(clip.read_bytes())
    result = run_one(video, options(tmp_path, None, data_dir=data))
    assert (result.status, result.sha256) == ("manual", sha(clip))
    assert result.path.parent == tmp_path / "cache" / "downloads"


def test_manual_folder_by_original_filename_and_bad_file_skipped(tmp_path, clip, video):
    data = tmp_path / "manual"
    (data / "sub").mkdir(parents=True)
    (data / "23_grepmed_pneumonia.mp4").write_text("<html>saved error page</html>")
    (data / "sub" / video.filename).write_bytes(clip.read_bytes())
    result = run_one(video, options(tmp_path, None, data_dir=data))
    assert (result.status, result.sha256) == ("manual", sha(clip))
    assert "is html, not a video" in result.reason


def test_manual_zip_is_searched_by_original_filename(tmp_path, clip):
    data = tmp_path / "manual"
    data.mkdir()
    (data / "Published -20210112T164653Z-001.zip").write_bytes(
        make_zip({"Published/B lines/Coalescing B lines.mp4": clip.read_bytes(), "Published/B lines/x.png": b"png"}))
    video = make_video("1_butterfly_covid", "https://butterflynetwork.getbynder.com/transfer/" + "0" * 64,
                       filename="Coalescing B lines.mp4", frames=30)
    result = run_one(video, options(tmp_path, None, data_dir=data))
    assert (result.status, result.sha256) == ("manual", sha(clip))


def test_missing_everywhere_names_each_step(tmp_path, site, video):
    site.fault(GREPMED, "404")
    result = run_one(video, options(tmp_path, site, data_dir=tmp_path))
    assert result.status == "missing"
    assert result.reason.count("mirror http://127.0.0.1") == 1 and f"not in {tmp_path}" in result.reason


# ---- archives

@pytest.mark.parametrize("name", ["../../x", "..\\..\\x", "a/../../../x", "C:/x", "C:\\x", "c:x", "ABSOLUTE"])
def test_archive_member_escaping_the_target_is_refused(tmp_path, name):
    name = name.replace("ABSOLUTE", f"{tmp_path}/abs/x")  # absolute, yet inside tmp_path: a write would show
    bad = tmp_path / "bad.zip"
    bad.write_bytes(make_zip({"fine.txt": b"ok", name: b"boom"}))
    target = tmp_path / "a" / "b" / "out"  # ../../x resolves to tmp_path/a/x: inside tmp_path, where we look
    with pytest.raises(DownloadError, match="unsafe archive member name"):
        check_archive(bad, max_total=10**6, max_ratio=100)
    with pytest.raises(DownloadError, match="unsafe archive member name"):
        safe_extract(bad, target)
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")] == ["bad.zip"]  # nothing escaped


def test_archive_expansion_is_bounded(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * (8 * 1024 * 1024))
    with pytest.raises(DownloadError, match="ratio"):
        check_archive(bomb, max_total=10**9, max_ratio=100)
    with pytest.raises(DownloadError, match="expands to"):
        check_archive(bomb, max_total=1024, max_ratio=10**6)
    assert [p.name for p in safe_extract(bomb, tmp_path / "ok", max_ratio=10**6)] == ["zeros.bin"]


def test_butterfly_archive_with_an_unsafe_member_ends_missing(tmp_path, clip):
    transfer = "https://butterflynetwork.getbynder.com/transfer/" + "1" * 64
    video = make_video("1_butterfly_covid", transfer, filename="Coalescing B lines.mp4", frames=30)
    with LoopbackSite() as site:
        site.add_page(transfer, '<a class="btn btn-primary" href="/transfer/' + "1" * 64 + '/download">Get</a>')
        site.add(transfer + "/download", make_zip({"Published/B lines/Coalescing B lines.mp4": clip.read_bytes(),
                                                   "../../x": b"boom"}), "application/zip")
        result = run_one(video, options(tmp_path, site))
    assert result.status == "missing" and "unsafe archive member name '../../x'" in result.reason
    assert leftovers(tmp_path) == []


def test_gif_keeps_its_extension(tmp_path):
    gif = write_clip(tmp_path / "a.gif", noise_frames(10, seed=1))
    url = "https://clarius.com/wp-content/uploads/2020/03/1-blines.gif"
    video = make_video("218_clarius_covid", url, filetype="gif")
    with LoopbackSite.from_videos([video], {video.id: gif}) as site:
        result = run_one(video, options(tmp_path, site))
    assert result.path.name == "218_clarius_covid.gif" and result.sha256 == sha(gif)


# ---- the command line, on the simulated release served by the loopback site

@pytest.fixture(scope="module")
def simulated(simulated_site):
    """The simulated release on a loopback mirror where 4_grepmed_covid answers 404 (tests/site_fixtures.py)."""
    return simulated_site(0.5, 0.25, missing=("4_grepmed_covid",))


def test_download_command_fetches_the_simulated_release_from_the_loopback_mirror(tmp_path, simulated, capsys):
    from processing.cli import main

    sim, catalogue, site = simulated.sim, simulated.catalogue, simulated.site
    served = {vid: path for vid, path in sim.clips.items() if vid != "4_grepmed_covid"}
    args = ["download", "--release-dir", str(sim.release_dir), "--custom-release", "--no-original",
            "--cache-dir", str(tmp_path / "cache"), "--delay", "0", "--retries", "0", "--timeout", "5"]
    assert main([*args, "--mirror", site.prefix]) == 1
    out = capsys.readouterr()
    lines = {line.split()[0]: line for line in out.out.splitlines()[1:-1]}
    assert set(lines) == {v.id for v in catalogue.videos}
    assert lines["4_grepmed_covid"].split()[1] == "missing" and "HTTP 404" in lines["4_grepmed_covid"]
    assert all(lines[vid].split()[1] == "mirror" for vid in served), out.out
    assert out.out.splitlines()[-1] == f"0 ok, {len(served)} mirror, 0 manual, 0 copy, 1 missing of 16 videos"
    assert "1 video(s) missing" in out.err

    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "4_grepmed_covid.mp4").write_bytes(sim.clips["4_grepmed_covid"].read_bytes())
    assert main([*args, "--mirror", site.prefix, "--data-dir", str(manual)]) == 0
    rerun = capsys.readouterr().out
    assert rerun.splitlines()[-1] == f"0 ok, {len(served)} mirror, 1 manual, 0 copy, 0 missing of 16 videos"
    manifest = json.loads((tmp_path / "cache" / "downloads" / "manifest.json").read_text())
    assert {vid: entry["sha256"] for vid, entry in manifest["files"].items()} == {
        vid: sha(path) for vid, path in sim.clips.items()}


def test_download_command_allow_missing_and_sources_filter(tmp_path, simulated, capsys):
    from processing.cli import main

    code = main(["download", "--release-dir", str(simulated.sim.release_dir), "--custom-release", "--no-original",
                 "--sources", "uf", "--cache-dir", str(tmp_path / "cache"), "--allow-missing"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split()[:2] for line in lines[1:-1]] == [["14_uf_other", "missing"], ["15_uf_normal", "missing"]]
