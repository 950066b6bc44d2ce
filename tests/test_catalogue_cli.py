"""Specification of ``covidx-us catalogue``: the table summary, JSON and CSV listings, and its errors."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess

import pytest
from releasefactory import write_minimal

from processing.cli import main
from processing.cli.catalogue import render
from processing.errors import InvalidChoiceError
from processing.release.catalogue import load_catalogue


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["catalogue", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(text: str, title: str) -> dict[str, dict[str, int]]:
    """Parse one cross-table of the summary into {row: {column: count}}."""
    block = text.split(title, 1)[1].split("\n\n", 1)[0]
    lines = [title + block.splitlines()[0], *block.splitlines()[1:]]
    header = lines[0][len(title):].split()
    out = {}
    for line in lines[1:]:
        name, *values = line.split()
        out[name] = dict(zip(header, map(int, values), strict=True))
    return out


def test_table_for_v12_prints_the_papers_counts(reference_release, capsys):
    code, out, _ = run_cli(capsys, "--release", "1.2", "--release-dir", str(reference_release), "--format", "table")
    assert code == 0
    by_probe = table_rows(out, "class x probe")
    assert by_probe["covid"] == {"convex": 52, "linear": 7, "total": 59}
    assert by_probe["pneumonia"] == {"convex": 29, "linear": 8, "total": 37}
    assert by_probe["normal"] == {"convex": 7, "linear": 6, "total": 13}
    assert by_probe["other"] == {"convex": 24, "linear": 17, "total": 41}
    assert by_probe["total"] == {"convex": 112, "linear": 38, "total": 150}
    by_source = table_rows(out, "class x source")
    assert by_source["total"] == {"butterfly": 35, "grepmed": 20, "litfl": 63, "pocusatlas": 32, "total": 150}
    assert "official" in out and "caf3aca8dcc1" in out


def test_console_script_runs_the_done_when_command(reference_release):
    exe = shutil.which("covidx-us")
    if exe is None:
        pytest.skip("covidx-us is not installed on PATH (pip install -e .)")
    result = subprocess.run([exe, "catalogue", "--release", "1.2", "--release-dir", str(reference_release),
                             "--format", "table"], capture_output=True, text=True, timeout=120, check=True)
    assert re.search(r"^total\s+112\s+38\s+150$", result.stdout, re.M)


def test_json_lists_one_object_per_video_with_the_task_label(reference_release, capsys):
    code, out, _ = run_cli(capsys, "--release", "1.2", "--release-dir", str(reference_release), "--task", "3class",
                           "--format", "json")
    records = json.loads(out)
    assert code == 0 and len(records) == 109  # 3class drops the 41 Other videos
    required = {"id", "source", "class", "probe", "label", "patient_id", "luss", "url"}
    assert all(required <= set(r) for r in records)
    one = next(r for r in records if r["id"] == "2_butterfly_covid")
    assert (one["class"], one["label"], one["patient_id"], one["luss"], one["probe"]) == ("covid", "covid", "p2", 2,
                                                                                            "convex")
    assert one["url"].startswith("https://butterflynetwork.getbynder.com/")


def test_binary_json_labels_non_covid(reference_release, capsys):
    _, out, _ = run_cli(capsys, "--release", "1.2", "--release-dir", str(reference_release), "--task", "binary",
                        "--format", "json")
    labels = [r["label"] for r in json.loads(out)]
    assert labels.count("covid") == 59 and labels.count("non-covid") == 91


def test_csv_has_a_header_and_one_row_per_video(reference_release, capsys):
    code, out, _ = run_cli(capsys, "--release", "1.4", "--release-dir", str(reference_release), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 242
    by_id = {r["id"]: r for r in rows}
    assert by_id["124_litfl_pneumonia"]["crop_size"] == "420x355"
    assert by_id["178_uf_other"]["group"] == by_id["184_uf_pneumonia"]["group"]
    assert by_id["200_paper_covid"]["expected_trusted"] == "False"


@pytest.mark.parametrize(("flag", "value", "valid"), [
    ("--release", "2.0", "'1.0', '1.1', '1.2', '1.3', '1.4', '1.5'"),
    ("--task", "5class", "'binary', '3class', '4class'"),
    ("--format", "xml", "'table', 'csv', 'json'"),
])
def test_unknown_choices_are_errors_listing_the_valid_values(capsys, flag, value, valid):
    with pytest.raises(SystemExit) as exit_info:
        main(["catalogue", flag, value])
    assert exit_info.value.code == 2
    assert valid in capsys.readouterr().err


def test_render_checks_its_choices(reference_release):
    catalogue = load_catalogue("1.0", reference_release)
    with pytest.raises(InvalidChoiceError, match="table, csv, json"):
        render(catalogue, "4class", "yaml")
    with pytest.raises(InvalidChoiceError, match="binary, 3class, 4class"):
        render(catalogue, "two", "table")


def test_release_error_exits_2_without_traceback(tmp_path, capsys):
    code, out, err = run_cli(capsys, "--release-dir", str(tmp_path))
    assert code == 2 and out == ""
    assert "video_metadata.csv: missing release file" in err and "Traceback" not in err


def test_custom_release_is_marked_not_official(tmp_path, capsys):

    write_minimal(tmp_path)
    code, out, _ = run_cli(capsys, "--release-dir", str(tmp_path))
    assert code == 2  # without --custom-release the pinned digests are required
    code, out, _ = run_cli(capsys, "--release-dir", str(tmp_path), "--custom-release", "--format", "table")
    assert code == 0 and "custom (not official)" in out
    assert table_rows(out, "class x probe")["total"] == {"convex": 1, "linear": 1, "total": 2}
