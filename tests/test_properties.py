"""Property-based: generated release rows and command-line arguments end in success or one clear error line, never a
traceback, and nothing is written outside the folders the command was given (RELIABILITY.md)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from clipfactory import textured_frames, write_clip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from releasefactory import MINIMAL, write_minimal

from processing.cli import main

# database=None: no .hypothesis/ folder in the working tree (the examples are drawn afresh each run).
SETTINGS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Cell text a hostile or careless release could hold: paths, dots, separators, numbers of every kind, unicode.
cells = st.one_of(
    st.sampled_from(["", "..", ".", "/etc/passwd", "../../utils/outside.png", "a/b.jpg", "x\\y.png", "yes", "no",
                     "nan", "inf", "-1", "1e400", "0", "3-1", "1-", ",", "\"", "NA", "é.png", ".hidden.png"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=12),
)


def _run(args: list[str]) -> tuple[int, str]:
    """``covidx-us ARGS`` in this process: (exit code, stderr). An exception escaping main is a test failure."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse refusing an argument
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def _files(folder: Path) -> dict[str, float]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


@contextlib.contextmanager
def _sandbox():
    """A fresh folder as the working directory and HOME; yields it."""
    root = Path(tempfile.mkdtemp(prefix="covidx-prop-"))
    cwd, home = os.getcwd(), os.environ.get("HOME")
    os.chdir(root)
    os.environ["HOME"] = str(root / "home")
    try:
        yield root
    finally:
        os.chdir(cwd)
        if home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = home
        shutil.rmtree(root, ignore_errors=True)


def _assert_clear(code: int, stderr: str, codes: tuple[int, ...]) -> None:
    assert code in codes, stderr
    assert "Traceback" not in stderr, stderr
    if code == 2:
        assert stderr.strip(), "an error without a message"
        assert len([line for line in stderr.splitlines() if "error:" in line]) == 1, stderr


@SETTINGS
@given(mask=cells, need=st.sampled_from(["yes", "no", "", "maybe"]), ranges=cells, width=cells, fps=cells,
       probe=st.sampled_from(["Convex", "linear", "phased", ""]), rect=cells)
def test_generated_release_rows_load_or_fail_in_one_line_and_write_nothing(mask, need, ranges, width, fps, probe,
                                                                          rect):
    with _sandbox() as root:
        release = write_minimal(root / "release")
        (release / "utils" / "outside.png").write_bytes(b"\x89PNG")
        rows = {
            "utils/mask_metadata.csv": "filename,need_mask_after_crop,mask_main_filename,need_multiple_masks,"
            "frame_specific_masks,delete_frames_from_to\n"
            f"1_grepmed_covid.mp4,{need},\"{mask.replace(chr(34), '')}\",yes,\"{ranges}\",\"{ranges}\"\n"
            "2_litfl_other.mp4,no,,,,\n",
            "utils/video_files_properties.csv": "filename,framerate,width,height,frame_count\n"
            f"1_grepmed_covid.mp4,\"{fps}\",\"{width}\",48,10\n2_litfl_other.mp4,10,32,40,5\n",
            "utils/video_metadata.csv": MINIMAL["utils/video_metadata.csv"].replace("Convex", probe),
            "utils/video_cropping_metadata.csv": "filename,del_upper,width_rate,x1_w_y1_h\n"
            f"1_grepmed_covid.mp4,4,0.1,\n2_litfl_other.mp4,,,\"{rect.replace(chr(34), '')}\"\n",
        }
        for rel, text in rows.items():
            (release / rel).write_text(text, encoding="utf-8", errors="surrogatepass")
        before = _files(root)
        code, stderr = _run(["catalogue", "--release-dir", str(release), "--custom-release", "--format", "json"])
        _assert_clear(code, stderr, (0, 2))
        assert _files(root) == before  # reading a release writes nothing, anywhere in the sandbox
        if code == 0:  # a mask it accepted lies inside the release's mask folder
            assert "/" not in mask and mask not in ("..", ".")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "c.mp4", textured_frames(4))


@SETTINGS
@given(fps=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), cells),
       max_frames=st.one_of(st.integers(-3, 5).map(str), cells), crop=cells, delete=cells,
       out_kind=st.sampled_from(["new", "file", "nested-in-file", "existing"]),
       fmt=st.sampled_from(["png", "jpeg", "gif"]))
def test_generated_clean_arguments_end_in_success_or_one_line_and_write_only_into_out(clip, fps, max_frames, crop,
                                                                                     delete, out_kind, fmt):
    with _sandbox() as root:
        (root / "file").write_text("x")
        (root / "existing").mkdir()
        out = {"new": root / "out", "file": root / "file", "nested-in-file": root / "file" / "out",
               "existing": root / "existing"}[out_kind]
        before = _files(root)
        args = ["clean", str(clip), "--out", str(out), f"--fps={fps}", f"--max-frames={max_frames}",
                f"--crop={crop}", f"--delete={delete}", "--image-format", fmt, "--no-videos"]
        code, stderr = _run(args)
        _assert_clear(code, stderr, (0, 1, 2))
        after = _files(root)
        changed = {name for name in set(after) | set(before) if after.get(name) != before.get(name)}
        inside = out.relative_to(root).as_posix()
        assert all(name == inside or name.startswith(inside + "/") for name in changed), changed
        if code == 1:
            assert stderr.rstrip().splitlines()[-1] == "1 of 1 clips failed"
