"""Specification of processing.hub.push against a loopback fake Hub: the real huggingface_hub client code runs.

conftest.py sets HF_HUB_OFFLINE=1 for every test; the ``online`` fixture lifts it for these tests only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
from fakehub import FakeHub

from processing import cli
from processing.hub.export import Provenance, export_hub_folder
from processing.hub.push import HubError, push_folder

TOKEN = "hf_RecognisableSecretToken0123456789"


def _export(folder, provenance):
    ds = datasets.Dataset.from_dict(
        {"video_id": ["1_litfl_covid", "2_litfl_normal"], "source": ["litfl", "litfl"], "label": [0, 2]},
        features=datasets.Features(
            {"video_id": datasets.Value("string"), "source": datasets.Value("string"),
             "label": datasets.ClassLabel(names=["covid", "pneumonia", "normal", "other"])}
        ),
    )
    return export_hub_folder({"frames-4class": datasets.DatasetDict(train=ds)}, folder, provenance)


@pytest.fixture
def export_dir(tmp_path):
    return _export(tmp_path / "covidx_us", Provenance("1.5", "c0ffee", True))


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no saved login of the machine leaks in
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # hf_xet would take the Parquet files through the Xet protocol, which the fake Hub does not speak: use LFS
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    with FakeHub(token=TOKEN) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def _uploaded(hub, repo_id="tester/covidx-us"):
    return sorted(hub.repo(repo_id).files)


def test_push_creates_a_private_repo_and_uploads_the_folder(hub, export_dir):
    result = push_folder("tester/covidx-us", export_dir)
    repo = hub.repo("tester/covidx-us")
    assert repo.private and result.private
    assert _uploaded(hub) == ["README.md", "croissant.json", "frames-4class/train-00000-of-00001.parquet"]
    assert repo.files["README.md"] == (export_dir / "README.md").read_bytes()
    assert b"config_name: frames-4class" in repo.files["README.md"]
    assert repo.files["frames-4class/train-00000-of-00001.parquet"] == (
        export_dir / "frames-4class" / "train-00000-of-00001.parquet"
    ).read_bytes()
    assert result.files == tuple(_uploaded(hub))
    create = next(r for r in hub.requests if r.path == "/api/repos/create")
    assert b'"visibility":"private"' in create.body.replace(b" ", b"")
    # the Parquet shard went the LFS way, as on the real Hub: batch, PUT of the object, verify, lfsFile in the commit
    shard = (export_dir / "frames-4class" / "train-00000-of-00001.parquet").read_bytes()
    oid = hashlib.sha256(shard).hexdigest()
    assert ("PUT", f"/lfs-objects/{oid}") in [(r.method, r.path) for r in hub.requests]
    assert ("POST", "/lfs-verify") in [(r.method, r.path) for r in hub.requests]
    commit = next(r for r in hub.requests if "/commit/" in r.path)
    lines = [json.loads(line) for line in commit.body.decode().splitlines() if line.strip()]
    assert {(item["key"], item["value"].get("path")) for item in lines if item["key"] != "header"} == {
        ("file", "README.md"), ("file", "croissant.json"), ("lfsFile", "frames-4class/train-00000-of-00001.parquet")}


def test_an_existing_public_repo_is_made_private_before_any_upload(hub, export_dir):
    hub.add_repo("tester/covidx-us", private=False)
    push_folder("tester/covidx-us", export_dir)
    assert hub.repo("tester/covidx-us").private
    paths = [(r.method, r.path) for r in hub.requests]
    settings = paths.index(("PUT", "/api/datasets/tester/covidx-us/settings"))
    commit = paths.index(("POST", "/api/datasets/tester/covidx-us/commit/main"))
    assert settings < commit


def test_public_is_honoured_when_asked(hub, export_dir):
    hub.add_repo("tester/covidx-us", private=True)
    assert push_folder("tester/covidx-us", export_dir, private=False).private is False
    assert hub.repo("tester/covidx-us").private is False


def test_a_repo_that_stays_public_gets_nothing_uploaded(hub, export_dir):
    hub.add_repo("tester/covidx-us", private=False)
    hub.fail_settings = True
    with pytest.raises(HubError, match="could not be made private; nothing was uploaded"):
        push_folder("tester/covidx-us", export_dir)
    assert _uploaded(hub) == []
    assert not any("/commit/" in r.path for r in hub.requests)


def test_a_repo_turned_public_during_the_upload_is_reported(hub, export_dir):
    hub.public_on_commit = True
    with pytest.raises(HubError, match=r"^tester/covidx-us is public after the upload; wanted private$"):
        push_folder("tester/covidx-us", export_dir)
    assert hub.repo("tester/covidx-us").files  # the upload happened; the check after it caught the change


def test_cli_push_to_a_repo_turned_public_fails_in_one_line(hub, export_dir, capsys):
    hub.public_on_commit = True
    assert cli.main(["push", "tester/covidx-us", "--output", str(export_dir)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == ("covidx-us push: error: tester/covidx-us is public after the upload; "
                                            "wanted private")
    assert "Traceback" not in err


def test_a_bare_name_goes_to_the_users_namespace(hub, export_dir):
    result = push_folder("covidx-us", export_dir)
    assert result.repo_id == "tester/covidx-us" and hub.repo("tester/covidx-us").private


def test_no_token_is_a_clear_error(hub, export_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="hf auth login.*HF_TOKEN"):
        push_folder("tester/covidx-us", export_dir)
    assert hub.requests == []


def test_a_wrong_token_error_does_not_show_the_token(hub, export_dir):
    with pytest.raises(HubError) as err:
        push_folder("tester/covidx-us", export_dir, token="hf_WrongTokenAlsoSecret999")
    assert "hf_WrongTokenAlsoSecret999" not in str(err.value) and "401" in str(err.value)
    assert "'Bearer ***'" in str(err.value)  # the fake Hub did echo it: the scrubbing removed it


@pytest.mark.parametrize("route,status", [("create", 403), ("settings", 403), ("lfs-batch", 403), ("commit", 500)])
def test_hub_errors_echoing_the_token_do_not_show_it(hub, export_dir, caplog, route, status):
    if route == "settings":  # asked only for an existing repo of the other visibility
        hub.add_repo("tester/covidx-us", private=False)
    hub.faults[route] = status
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubError) as err:
        push_folder("tester/covidx-us", export_dir)
    text = str(err.value)
    assert str(status) in text and "'Bearer ***'" in text and TOKEN not in text
    assert TOKEN not in repr(err.value.args)
    messages = [record.getMessage() for record in caplog.records]
    assert any("came with 'Bearer ***'" in m for m in messages)  # the echoed header reached the logs, redacted
    assert not any(TOKEN in m for m in messages)


def test_a_folder_that_is_not_an_export_is_refused(hub, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubError, match="no README.md"):
        push_folder("tester/covidx-us", tmp_path / "empty")
    (tmp_path / "empty" / "README.md").write_text("# x\n")
    with pytest.raises(HubError, match="no Parquet shard"):
        push_folder("tester/covidx-us", tmp_path / "empty")


def test_cli_push_never_shows_or_writes_the_token(hub, export_dir, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    assert cli.main(["-v", "push", "tester/covidx-us", str(export_dir)]) == 0
    # a failing push too: the repo cannot be made public
    hub.fail_settings = True
    assert cli.main(["-v", "push", "tester/covidx-us", "--output", str(export_dir), "--public"]) == 2  # old spelling
    out, err = capsys.readouterr()
    assert "private" in out and "could not be made public" in err
    assert any(r.method == "POST" and "/commit/" in r.path for r in hub.requests)
    assert all(r.headers.get("authorization", r.headers.get("Authorization")) == f"Bearer {TOKEN}"
               for r in hub.requests if r.path.startswith("/api/datasets"))
    assert TOKEN not in out + err + caplog.text
    for root, _dirs, files in os.walk(tmp_path):
        for name in files:
            assert TOKEN.encode() not in open(os.path.join(root, name), "rb").read(), name
    for data in hub.repo("tester/covidx-us").files.values():
        assert TOKEN.encode() not in data


def test_cli_push_in_its_own_process_never_prints_or_writes_the_token(hub, export_dir, tmp_path):
    """huggingface_hub has its own stderr handler: only a real process shows what reaches the terminal."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COVIDX_US_PROGRESS": "0"}
    work = tmp_path / "cwd"
    work.mkdir()

    def push(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "processing.cli", "-v", "push", "tester/covidx-us", "--output",
                               str(export_dir), *extra], cwd=work, env=env, capture_output=True, text=True,
                              timeout=120)

    ok = push()
    hub.faults["commit"] = 500
    failed = push()
    for run, code in ((ok, 0), (failed, 2)):
        assert run.returncode == code, run.stderr[-2000:]
        assert TOKEN not in run.stdout + run.stderr
        assert "came with 'Bearer ***'" in run.stderr  # the echo was logged, redacted
    assert "500" in failed.stderr.strip().splitlines()[-1] or "500" in failed.stderr
    assert "Traceback" not in failed.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("HF_TOKEN") or not os.environ.get("COVIDX_US_LIVE_REPO"),
                    reason="set HF_TOKEN and COVIDX_US_LIVE_REPO (a scratch dataset repo) to push to the real Hub")
def test_live_push_is_private(export_dir, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    result = push_folder(os.environ["COVIDX_US_LIVE_REPO"], export_dir, endpoint="https://huggingface.co")
    assert result.private


def test_offline_mode_is_named_instead_of_a_network_error(hub, export_dir, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="offline mode is on"):
        push_folder("tester/covidx-us", export_dir)
    assert hub.requests == []


def test_push_leaves_the_build_record_and_the_report_on_this_machine(hub, export_dir):
    (export_dir / "build_record.json").write_text('{"work_dir": "/home/me/private/path"}\n')
    (export_dir / "report" / "img").mkdir(parents=True)
    (export_dir / "report" / "index.html").write_text("<p>/home/me</p>\n")
    (export_dir / "report" / "img" / "1.png").write_bytes(b"\x89PNG")
    result = push_folder("tester/covidx-us", export_dir)
    assert _uploaded(hub) == ["README.md", "croissant.json", "frames-4class/train-00000-of-00001.parquet"]
    assert result.files == tuple(_uploaded(hub))


@pytest.mark.parametrize("provenance, what", [
    (Provenance("1.5", None, False), "a custom release, not the official COVIDx-US"),
    (Provenance("1.5", None, False, simulated=True), "a SIMULATED release"),
])
def test_a_custom_or_simulated_build_is_refused_in_one_line_before_any_request(hub, tmp_path, capsys, provenance,
                                                                                what):
    folder = _export(tmp_path / "custom", provenance)
    capsys.readouterr()
    assert cli.main(["push", "someone/x", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and what in err and "--allow-custom" in err
    assert hub.requests == []
    assert cli.main(["push", "tester/covidx-us", str(folder), "--allow-custom"]) == 0
    assert "croissant.json" in _uploaded(hub)


def test_a_card_without_a_build_record_is_refused(hub, tmp_path):
    folder = _export(tmp_path / "old", Provenance("1.5", "c0ffee", True))
    card = (folder / "README.md").read_text()
    (folder / "README.md").write_text(card.replace("covidx_us:", "someone_else:"))
    with pytest.raises(HubError, match="unknown release"):
        push_folder("tester/covidx-us", folder)
    assert hub.requests == []


def test_push_logs_no_http_request_without_verbose(hub, export_dir, capsys):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-m", "processing.cli", "push", "tester/covidx-us", str(export_dir)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HTTP Request" not in result.stderr and "private" in result.stdout
    verbose = subprocess.run([sys.executable, "-m", "processing.cli", "-v", "push", "tester/covidx-us",
                              str(export_dir)], capture_output=True, text=True, env=env, timeout=120)
    assert verbose.returncode == 0 and "HTTP Request" in verbose.stderr
