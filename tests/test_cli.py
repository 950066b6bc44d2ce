"""The covidx-us command line as a whole: every sub-command is wired, and shared options read alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from processing import cli


def test_every_command_is_registered():
    parser = cli.build_parser()
    for name, _module in cli.COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


@pytest.mark.parametrize("command", ["download", "build"])
def test_source_subsets_read_the_same_in_download_and_build(command):
    parser = cli.build_parser()
    assert parser.parse_args([command, "--sources", "grepmed", "litfl"]).sources == ["grepmed", "litfl"]
    assert parser.parse_args([command, "--source", "grepmed", "--source", "uf"]).sources == ["grepmed", "uf"]


def test_an_unknown_source_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["download", "--source", "youtube"])
    assert "butterfly" in capsys.readouterr().err


def test_clean_runs_without_importing_datasets_requests_or_tqdm(tmp_path: Path) -> None:
    # covidx-us imports only the named command's module: what clean needs is pixels, not the Hub or HTTP
    import subprocess
    import sys

    from tests.clipfactory import textured_frames, write_clip

    clip = write_clip(tmp_path / "c.mp4", textured_frames(3))
    code = ("import sys\nfrom processing.cli import main\n"
            f"assert main(['clean', {str(clip)!r}, '--out', {str(tmp_path / 'out')!r}]) == 0\n"
            "print(sorted(m for m in ('datasets', 'requests', 'pandas', 'pyarrow', 'tqdm') if m in sys.modules))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root), "COVIDX_US_PROGRESS": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "data" / "video" / "clean" / "c_prc_unknown_clean.mov").is_file()
