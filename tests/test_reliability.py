"""Hostile input, full disks and dead networks: every failure is one clear line, nothing escapes its folder, the rest
goes on. Each test here is one row of RELIABILITY.md (keep the two in step).

Full and read-only disks are real: a tmpfs of a few MB mounted for the test (needs root; skipped otherwise). The
network faults are real too: a loopback port nobody listens on, a loopback server that accepts and never answers.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from clipfactory import noise_frames, textured_frames, write_clip
from releasefactory import MINIMAL, make_video, write_minimal

from processing.cli import main
from processing.errors import ReleaseError
from processing.fileutil import sweep_leftovers, temp_prefix
from processing.release.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parents[1]


def _run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """``covidx-us ARGS`` in a subprocess running this tree's code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COVIDX_US_PROGRESS": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "processing.cli", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _one_error_line(stderr: str) -> str:
    """The error lines of ``stderr`` (no traceback, no INFO logging); asserts there is exactly one."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line or "FAILED" in line]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(name, size)`` mounts a tmpfs of ``size`` (e.g. "3m") at ``tmp_path/name``; ``readonly=True``
    remounts it read-only after ``prepare(folder)`` ran. Skips where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(name: str, size: str, *, readonly: bool = False, prepare=None) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip("cannot mount a small tmpfs here (needs root)")
        mounted.append(folder)
        if prepare is not None:
            prepare(folder)
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _snapshot(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp-" in p.name]


# ------------------------------------------------------------------------------------------- release files


def test_a_mask_name_leaving_the_mask_folder_is_refused_when_the_catalogue_is_read(tmp_path, capsys):
    root = write_minimal(tmp_path / "release")
    (root / "utils" / "outside.png").write_bytes(b"\x89PNG")  # the file exists: only its name is wrong
    for name in ("../../utils/outside.png", "/etc/passwd", "..", "sub\\mask.png"):
        masks = MINIMAL["utils/mask_metadata.csv"].replace("1_grepmed_covid_prc_convex_frame0_mask.jpg", name)
        (root / "utils" / "mask_metadata.csv").write_text(masks, encoding="latin-1")
        with pytest.raises(ReleaseError, match=r"mask_metadata.csv, line 2, video 1_grepmed_covid: column "
                                               r"mask_main_filename is .*inside the release's data/mask/ folder"):
            load_catalogue("1.5", root, custom=True)
        assert main(["catalogue", "--release-dir", str(root), "--custom-release"]) == 2
        assert _one_error_line(capsys.readouterr().err).startswith("covidx-us catalogue: error: ")


def test_a_csv_with_a_utf8_byte_order_mark_is_read(tmp_path):
    root = write_minimal(tmp_path / "release")
    for rel, text in MINIMAL.items():
        (root / rel).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    catalogue = load_catalogue("1.5", root, custom=True)
    assert catalogue.ids == ("1_grepmed_covid", "2_litfl_other")
    assert catalogue["1_grepmed_covid"].masks.main_mask == "1_grepmed_covid_prc_convex_frame0_mask.jpg"


def test_a_file_with_a_byte_order_mark_that_is_not_utf8_is_named(tmp_path):
    root = write_minimal(tmp_path / "release")
    (root / "utils" / "video_metadata.csv").write_bytes(
        b"\xef\xbb\xbf" + MINIMAL["utils/video_metadata.csv"].encode() + b"3_litfl_covid,\xe9.mp4\n")
    with pytest.raises(ReleaseError, match=r"video_metadata.csv: starts with a UTF-8 byte-order mark but is not UTF-8"):
        load_catalogue("1.5", root, custom=True)


# ------------------------------------------------------------------------------------------- clean


def _clips(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "a" / "x.mp4"
    b = tmp_path / "b" / "x.avi"
    a.parent.mkdir()
    b.parent.mkdir()
    return write_clip(a, textured_frames(4)), write_clip(b, textured_frames(4, seed=1))


def test_clean_refuses_two_clips_that_would_write_the_same_outputs_naming_both(tmp_path, capsys):
    a, b = _clips(tmp_path)
    out = tmp_path / "out"
    assert main(["clean", str(a), str(b), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(a) in line and str(b) in line and "same outputs" in line
    assert not out.exists()  # refused before anything was written


def test_clean_given_one_file_twice_cleans_it_once(tmp_path, capsys):
    a, _ = _clips(tmp_path)
    out = tmp_path / "out"
    assert main(["clean", str(a), str(tmp_path / "a" / ".." / "a" / "x.mp4"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("frames written") == 1


def test_clean_on_a_full_disk_says_so_in_one_line_per_clip_and_goes_on(tmp_path, small_disk):
    big = write_clip(tmp_path / "big.mp4", textured_frames(60, 320, 240))
    small = write_clip(tmp_path / "small.mp4", textured_frames(3, 64, 48, seed=2))
    disk = small_disk("disk", "3m")
    done = _run_cli("clean", str(big), str(small), str(big.with_name("gone.mp4")), "--out", str(disk / "S"))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    failed = [line for line in done.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 2
    assert failed[0].startswith(f"{big}: FAILED: {disk}/S/data/") and "No space left on device" in failed[0]
    assert ".tmp-" not in failed[0]  # the file it was writing, not its temporary name
    assert "gone.mp4 does not exist" in failed[1]
    assert done.stderr.rstrip().splitlines()[-1] == "2 of 3 clips failed; the others were written"
    assert "small.mp4: 3 frames written" in done.stdout  # the clip after the full disk was still tried, and fit
    assert sorted(p.name for p in (disk / "S/data/image/clean").iterdir()) == [
        f"small_prc_unknown_clean_frame{i}.png" for i in range(3)]
    assert not _leftovers(disk)  # nothing half-written


def test_clean_into_a_read_only_folder_is_one_line(tmp_path, small_disk):
    clip = write_clip(tmp_path / "c.mp4", textured_frames(3))
    disk = small_disk("ro", "1m", readonly=True, prepare=lambda f: (f / "S").mkdir())
    for out in (disk / "S", disk / "new"):
        done = _run_cli("clean", str(clip), "--out", str(out))
        assert done.returncode == 2
        assert _one_error_line(done.stderr) == (f"covidx-us clean: error: --out {out}: Read-only file system "
                                                "(choose a folder on a writable file system)")


def test_clean_with_out_naming_a_file_or_mask_naming_a_folder_is_one_line(tmp_path, capsys):
    clip = write_clip(tmp_path / "c.mp4", textured_frames(3))
    (tmp_path / "file").write_text("x")
    assert main(["clean", str(clip), "--out", str(tmp_path / "file")]) == 2
    assert _one_error_line(capsys.readouterr().err).endswith(f"--out {tmp_path / 'file'} is a file, not a folder")
    assert main(["clean", str(clip), "--out", str(tmp_path / "o"), "--mask", str(tmp_path)]) == 1
    assert f"mask {tmp_path} is a folder, not a file" in _one_error_line(capsys.readouterr().err)
    assert main(["clean", str(clip), "--out", str(tmp_path / "o"), "--mask-dir", str(tmp_path / "file")]) == 2
    assert "--mask-dir" in _one_error_line(capsys.readouterr().err)
    assert main(["clean", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert f"{tmp_path} is a folder, not a file" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", ["clean", "build", "download", "demo"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400"])
def test_non_finite_numbers_are_refused_when_the_arguments_are_parsed(tmp_path, capsys, command, value):
    option = {"clean": "--fps", "build": "--fps", "download": "--timeout", "demo": "--scale"}[command]
    args = {"clean": [str(tmp_path / "c.mp4"), "--out", str(tmp_path / "o")]}.get(command, [])
    with pytest.raises(SystemExit) as exit_:
        main([command, *args, f"{option}={value}"])
    assert exit_.value.code == 2
    assert f"argument {option}: '{value}' is not a finite number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_clean_writes_videos_and_frames_with_the_same_umask_following_mode(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", textured_frames(3))
    previous = os.umask(0o027)
    try:
        assert main(["clean", str(clip), "--out", str(tmp_path / "out")]) == 0
    finally:
        os.umask(previous)
    modes = {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777)
             for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert len(modes) == 6 and set(modes.values()) == {oct(0o640)}, modes  # 3 frames, 3 videos


def test_clean_killed_leaves_temporary_files_that_the_next_run_sweeps(tmp_path):
    clip = write_clip(tmp_path / "long.mp4", textured_frames(150, 256, 192))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COVIDX_US_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "processing.cli", "clean", str(clip), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staged = out / "data" / "image" / "clean"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if staged.is_dir() and any(p.is_dir() and any(p.iterdir()) for p in staged.glob(".long.tmp-*")):
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.skip("the clip was cleaned before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _leftovers(out)  # the kill did leave a staging folder and temporary videos
    assert main(["clean", str(clip.with_name("missing.mp4")), "--out", str(out)]) == 1  # any next run sweeps
    assert not _leftovers(out)


def test_sweep_keeps_the_temporary_files_of_a_run_still_going(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / f".x.part.tmp-{pid}-abcd1234.json").write_text("{}")  # a build killed earlier
    (tmp_path / f".x_prc.tmp-{pid}-abcd1234").mkdir()
    (tmp_path / ".old.tmp-zz_9abcd").write_text("")  # an older version's name (no pid)
    live = tmp_path / f"{temp_prefix('y')}abcd1234.mp4"  # this process's: still being written
    live.write_text("")
    (tmp_path / "x.part").write_text("resumable download")  # not a temporary name: never touched
    (tmp_path / ".hidden.tmp-notours.txt").write_text("")
    removed = sweep_leftovers([tmp_path])
    assert sorted(p.name for p in removed) == sorted([f".x.part.tmp-{pid}-abcd1234.json", f".x_prc.tmp-{pid}-abcd1234",
                                                      ".old.tmp-zz_9abcd"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "x.part", ".hidden.tmp-notours.txt"])


def test_the_downloader_sweeps_what_killed_builds_left_in_its_cache(tmp_path):
    from processing.sources.download import Downloader, DownloadOptions

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    partial = tmp_path / "downloads" / "partial"
    partial.mkdir(parents=True)
    orphan = partial / f".abc.part.tmp-{dead}-q1w2e3r4.json"
    orphan.write_text("{}")
    kept = partial / "abc.part"
    kept.write_bytes(b"resume me")
    Downloader(DownloadOptions(cache_dir=tmp_path)).close()
    assert not orphan.exists() and kept.read_bytes() == b"resume me"


# ------------------------------------------------------------------------------------------- network


def test_a_host_that_does_not_resolve_is_asked_once_not_retried(monkeypatch, tmp_path):
    import requests

    from processing.sources.download import Downloader, DownloadOptions

    asked = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "nowhere.invalid":
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    downloader = Downloader(DownloadOptions(cache_dir=tmp_path, retries=4, backoff=30))
    try:
        clock = time.monotonic()
        with pytest.raises(requests.ConnectionError, match="Failed to resolve 'nowhere.invalid'"):
            downloader.session.get("http://nowhere.invalid/clip.mp4", timeout=5)
        assert asked == ["nowhere.invalid"]  # with retries=4, urllib3 alone asks five times
        assert time.monotonic() - clock < 30  # and never sleeps its 30 s back-off
    finally:
        downloader.close()


def test_a_build_looks_for_a_missing_video_once_across_its_configs(tmp_path, simulated_site):
    from processing.cli.build import build

    served = simulated_site(0.5, 0.25, missing=("7_litfl_pneumonia",))
    sim, site, gone = served.sim, served.site, served.catalogue["7_litfl_pneumonia"]
    params = {"release_dir": str(sim.release_dir), "custom_release": True, "mirrors": (site.prefix,),
              "use_original": False, "download_delay": 0, "sources": ["litfl"], "max_frames": 1,
              "num_proc": 1, "allow_missing": True}
    before = len(site.hits(gone.url))  # the site is shared: count this test's requests only
    build(("frames-4class",), {**params, "work_dir": str(tmp_path / "one")}, tmp_path / "out-one")
    once = len(site.hits(gone.url)) - before
    assert once >= 1
    build(("frames-binary", "frames-4class", "videos-4class"), {**params, "work_dir": str(tmp_path / "three")},
          tmp_path / "out-three")
    assert len(site.hits(gone.url)) - before == 2 * once  # one look for three configs, as for one
    card = (tmp_path / "out-three" / "README.md").read_text()
    assert "7_litfl_pneumonia" in card


def test_a_full_disk_while_downloading_stops_the_run_instead_of_calling_the_video_missing(tmp_path, small_disk):
    from processing.demo.testsite import LoopbackSite
    from processing.sources.download import DownloadOptions, download_videos

    url = "https://img.grepmed.com/uploads/7579/blines-lung-pulmonary-viral-pocus-original.mp4"
    clip = write_clip(tmp_path / "clip.mp4", noise_frames(40, 320, 240))
    assert clip.stat().st_size > 80_000  # twice the disk
    disk = small_disk("cache", "40k")
    with LoopbackSite() as site:
        site.add_file(url, clip)
        options = DownloadOptions(cache_dir=disk, mirrors=(site.prefix,), timeout=5, retries=1, backoff=0, delay=0,
                                  use_original=False)
        with pytest.raises(OSError) as failure:
            download_videos([make_video("23_grepmed_pneumonia", url, width=320, height=240, frames=40)], options)
    assert failure.value.errno == errno.ENOSPC  # the disk's error, not "missing" with a network-looking reason
    assert len(site.hits(url)) == 1  # and no retry of the download for a local failure


@pytest.fixture
def export(tmp_path):
    import datasets

    from processing.hub.export import Provenance, export_hub_folder

    ds = datasets.Dataset.from_dict({"video_id": ["1_litfl_covid"], "label": [0]})
    return export_hub_folder({"frames-4class": datasets.DatasetDict(train=ds)}, tmp_path / "covidx_us",
                             Provenance("1.5", "c0ffee", True))


TOKEN = "hf_ReliabilitySecretToken0123456789"


@pytest.fixture
def online(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)


def test_push_to_an_endpoint_that_refuses_is_one_line_naming_it(online, export, monkeypatch, capsys):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    assert main(["push", "me/covidx-us", "--output", str(export)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"covidx-us push: error: push to me/covidx-us failed: {endpoint}: cannot connect (")
    assert "Connection refused" in line and "HF_ENDPOINT" in line and TOKEN not in line


def test_push_to_an_endpoint_that_never_answers_gives_up_after_the_timeout(online, export, monkeypatch, capsys):
    from processing.hub import push

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does) and never answers
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(push, "READ_TIMEOUT", 1.0)
    result: dict[str, int] = {}
    worker = threading.Thread(target=lambda: result.setdefault("code", main(["push", "me/x", "--output",
                                                                             str(export)])))
    worker.start()
    worker.join(timeout=60)
    silent.close()
    assert not worker.is_alive(), "push still waiting on a silent endpoint"
    assert result["code"] == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{endpoint}: no answer within 1 s" in line and TOKEN not in line


# ------------------------------------------------------------------------------------------- build


@pytest.mark.slow
def test_a_build_on_a_full_disk_is_one_line_and_a_rerun_with_space_resumes(tmp_path, small_disk, simulated_site):
    served = simulated_site(0.5, 0.25)
    sim, site = served.sim, served.site
    disk = small_disk("disk", "600k")  # room for the downloads (~200 kB), not for the processed clips
    out = tmp_path / "covidx_us"
    out.mkdir()
    (out / "README.md").write_text("previous export\n")
    args = ("build", "--config", "frames-4class", "--release-dir", str(sim.release_dir), "--custom-release",
            "--mirror", site.prefix, "--no-original", "--delay", "0", "--num-proc", "1",
            "--cache-dir", "cache", "--output", str(out))  # a relative cache folder works as well
    full = _run_cli(*args, cwd=disk)
    assert full.returncode == 2, full.stderr[-2000:]
    line = _one_error_line(full.stderr)
    assert "No space left on device (free some space and run again)" in line
    assert "a rerun resumes" in line and "kept in cache" in line
    assert (out / "README.md").read_text() == "previous export\n"  # the earlier export is untouched
    kept = list((disk / "cache" / "downloads").glob("*_*_*.*"))
    assert kept  # what was downloaded before the disk filled up stays
    subprocess.run(["mount", "-o", "remount,size=400m", str(disk)], check=True)
    again = _run_cli(*args, cwd=disk)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "frames-4class").is_dir() and not _leftovers(disk)


@pytest.mark.slow
def test_a_full_disk_under_the_export_keeps_the_previous_export(tmp_path, small_disk, simulated_site):
    served = simulated_site(0.5, 0.25)
    sim, site = served.sim, served.site

    def previous(folder: Path) -> None:
        (folder / "covidx_us").mkdir()
        (folder / "covidx_us" / "README.md").write_text("previous export\n")
        (folder / "filler").write_bytes(os.urandom(850_000))  # leaves too little for the new export (~400 kB)

    disk = small_disk("disk", "1m", prepare=previous)
    done = _run_cli("build", "--config", "frames-4class", "--release-dir", str(sim.release_dir),
                    "--custom-release", "--mirror", site.prefix, "--no-original", "--delay", "0",
                    "--num-proc", "1", "--cache-dir", str(tmp_path / "cache"), "--output",
                    str(disk / "covidx_us"))
    assert done.returncode == 2, done.stderr[-2000:]
    line = _one_error_line(done.stderr)
    assert "No space left on device" in line and "a rerun resumes" in line
    assert sorted(p.name for p in disk.iterdir()) == ["covidx_us", "filler"]  # no half-written export beside it
    assert (disk / "covidx_us" / "README.md").read_text() == "previous export\n"


def test_build_with_output_naming_a_file_stops_before_any_work(tmp_path, capsys):
    target = tmp_path / "export"
    target.write_text("not a folder")
    assert main(["build", "--output", str(target), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert _one_error_line(capsys.readouterr().err).endswith(f"--output {target} is a file, not a folder")
    assert not (tmp_path / "cache").exists()
    assert main(["build", "--release-dir", str(target), "--custom-release", "--cache-dir",
                 str(tmp_path / "cache")]) == 2
    assert f"--release-dir {target} is a file, not a folder" in _one_error_line(capsys.readouterr().err)


def test_a_release_dir_naming_a_file_and_os_errors_are_one_line_naming_the_path(tmp_path, capsys):
    from processing.errors import os_error_message

    (tmp_path / "file").write_text("x")
    assert main(["catalogue", "--release-dir", str(tmp_path / "file"), "--custom-release"]) == 2
    assert _one_error_line(capsys.readouterr().err).endswith(f"{tmp_path / 'file'} is a file, not a folder")
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device"), tmp_path) == (
        f"{tmp_path}: No space left on device (free some space and run again)")
    assert os_error_message(PermissionError(errno.EACCES, "Permission denied", "/x/y")) == (
        "/x/y: Permission denied (choose a folder you may write to)")
