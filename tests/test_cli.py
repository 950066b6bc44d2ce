"""The covidx-us command line as a whole: every sub-command is wired, and shared options read alike."""

from __future__ import annotations

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
