"""Targeted mutation check: remove, one at a time, the code that keeps a promise, and see the tests fail.

    python scripts/mutation_check.py [--only NAME ...] [--list] [--slow]

Each mutant is a literal text replacement in one module (it must match exactly once, so a mutant that no longer
applies is reported, not skipped). It is applied to a copy of the working tree in a temporary folder (the tree
itself is never touched; ``../shared`` is linked beside the copy, read in place), and the tests named for it run
there with ``-x``: the mutant is *killed* when they fail, *survived* when they pass. The same tests run once on the
unmutated copy first (once per set of tests); if they fail there, nothing is concluded. ``--slow`` adds the mutants whose tests are the slow
end-to-end ones (kill -9 of a build). Results go in RELIABILITY.md ("Mutation check").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    promise: str
    path: str
    edits: tuple[tuple[str, str], ...]  # (old, new): old must occur exactly once
    tests: tuple[str, ...]
    slow: bool = False


PUSH, DOWNLOAD = "processing/hub/push.py", "processing/sources/download.py"
AUTODETECT, EVALUATE = "processing/pixels/autodetect.py", "processing/pixels/evaluate.py"
HUB_TESTS = ("tests/test_hub.py",)
DL_TESTS = ("tests/test_download.py",)
SCORER_TESTS = ("tests/test_scorers.py",)
REAL_CLEAN = ("tests/test_clean_cli.py::test_clean_auto_removes_real_burned_in_marks_and_leaves_every_other_pixel_as_"
              "decoded",)

MUTANTS = (
    Mutant("hub-no-scrub", "the token is not in error messages", PUSH,
           (('return text.replace(token, "***") if token else text', "return text"),), HUB_TESTS),
    Mutant("hub-no-log-filter", "the token is not in log output", PUSH,
           (("if self.secret in message:", "if False:"),), HUB_TESTS),
    Mutant("hub-no-scrub-no-filter", "the token never shows (both defences gone: the audit's case)", PUSH,
           (('return text.replace(token, "***") if token else text', "return text"),
            ("if self.secret in message:", "if False:")), HUB_TESTS),
    Mutant("hub-root-handlers-only", "the token is not printed by a library's own log handler", PUSH,
           (("handlers = _all_handlers()", "handlers = list(logging.getLogger().handlers)"),), HUB_TESTS),
    Mutant("hub-no-check-after-upload", "a repo that turned public during the upload is reported", PUSH,
           (("if actual != private:", "if False:"),), HUB_TESTS),
    Mutant("hub-no-visibility-before-upload", "an existing public repo is made private before any upload", PUSH,
           (("            _ensure_visibility(api, repo_id, private)\n", ""),), HUB_TESTS),
    Mutant("hub-no-local-files-ignored", "the build record and report are never uploaded", PUSH,
           (("ignore_patterns=list(LOCAL_FILES),", "ignore_patterns=[],"),), HUB_TESTS),
    Mutant("dl-no-if-range", "a resumed file that changed on the server is not spliced", DOWNLOAD,
           (('headers["If-Range"] = meta.get("etag") or meta["last_modified"]', "pass"),), DL_TESTS),
    Mutant("dl-no-range", "an interrupted download resumes with Range", DOWNLOAD,
           (('headers["Range"] = f"bytes={offset}-"', "pass"),), DL_TESTS),
    Mutant("dl-no-length-check", "a body shorter than announced is not kept", DOWNLOAD,
           (("if full is not None and written != full:", "if False:"),), DL_TESTS),
    Mutant("dl-no-size-cap", "a file above the size cap is refused", DOWNLOAD,
           (("if full is not None and full > self.options.max_bytes:", "if False:"),), DL_TESTS),
    Mutant("dl-no-kind-check", "an HTML page is never kept as a video", DOWNLOAD,
           (("if kind not in accept:", "if False:"),), DL_TESTS),
    Mutant("dl-no-dotdot-check", "an archive member climbing out (..) is refused", DOWNLOAD,
           (('or ".." in path.parts:', ":"),), DL_TESTS),
    Mutant("dl-no-drive-check", "an archive member with a drive letter is refused", DOWNLOAD,
           (("or (len(normalized) > 1 and normalized[1] == \":\")", ""),), DL_TESTS),
    Mutant("dl-no-backslash-normalising", "an archive member ..\\..\\x is refused", DOWNLOAD,
           (('normalized = name.replace("\\\\", "/")', "normalized = name"),), DL_TESTS),
    Mutant("dl-no-host-delay", "requests to one host are spaced by --delay", DOWNLOAD,
           (("self.options.delay", "0.0 * self.options.delay"),), DL_TESTS),
    Mutant("splits-ignore-groups", "clips of one group share a split", "processing/build/splits.py",
           (("return [assignment[g] for g in groups]\n    fold_names",
             "return [assignment[g] if i % 2 else 'train' for i, g in enumerate(groups)]\n    fold_names"),),
           ("tests/test_splits.py",)),
    Mutant("splits-unseeded", "a split is the same for a seed", "processing/build/splits.py",
           (("random.Random(seed).shuffle(order)", "random.shuffle(order)"),), ("tests/test_splits.py",)),
    Mutant("iou-always-1", "window_iou measures overlap", AUTODETECT,
           (("return inter / float(union) if union else 0.0", "return 1.0"),), SCORER_TESTS),
    Mutant("score-perfect-recall", "score_detection's recall counts missed pixels", AUTODETECT,
           (("recall=hit / total if total else 1.0,", "recall=1.0,"),), SCORER_TESTS),
    Mutant("score-perfect-precision", "score_detection's precision counts stray masked pixels", AUTODETECT,
           (("precision=on_mark / masked if masked else 1.0,", "precision=1.0,"),), SCORER_TESTS),
    Mutant("score-no-tolerance", "precision forgives `tolerance` px around a mark", AUTODETECT,
           (("kernel = _kernel(2 * tolerance + 1) if tolerance > 0 else None", "kernel = None"),), SCORER_TESTS),
    Mutant("score-counts-dropped", "a dropped frame counts as cleaned", AUTODETECT,
           (("        if index in dropped:\n            continue\n", ""),), SCORER_TESTS),
    Mutant("holds-top-always", "holds_top sees a window that cuts the field's top", EVALUATE,
           (("return window.x <= x0 + 2 and window.x + window.w >= x1 - 2", "return True"),), SCORER_TESTS),
    Mutant("marks-no-off-image", "off the image, anything above black is a mark", EVALUATE,
           (("mark |= sub > black + _OFF_IMAGE", "pass"),), SCORER_TESTS),
    Mutant("score-clip-ignores-fov", "pixels blacked outside the field count as removed", EVALUATE,
           (("if field is None else ~field", "if True else ~field"),), SCORER_TESTS),
    Mutant("score-clip-keeps-cuts", "cut frames the detector dropped count as dropped", EVALUATE,
           ((' | set(getattr(detection, "unusable_frames", ()))', ""),), SCORER_TESTS),
    Mutant("clean-no-black-outside", "clean frames are black outside the detected field",
           "processing/pixels/pipeline.py", (("    outside = masks.outside\n", "    outside = None\n"),), REAL_CLEAN),
    Mutant("clean-dilate-7", "only the 5x5-grown mask is inpainted", "processing/pixels/masks.py",
           (("KERNEL_SIZE = 5", "KERNEL_SIZE = 7"),), REAL_CLEAN),
    Mutant("clean-no-inpaint", "masked marks are inpainted", "processing/pixels/masks.py",
           (("        if path is None:\n            return self._main\n", "        if path is None:\n"
             "            return None\n"),), REAL_CLEAN + ("tests/test_simrelease.py",)),
    Mutant("build-no-download-sweep", "a killed build leaves no temporary download file behind", DOWNLOAD,
           (("        sweep_leftovers((self.root, self.partial, self.archives))", "        pass"),),
           ("tests/test_reliability.py::test_the_downloader_sweeps_what_killed_builds_left_in_its_cache",
            "tests/test_builder.py::test_a_build_killed_at_any_point_resumes_to_the_same_export"), slow=True),
)


def _copy_tree(dest: Path) -> Path:
    """The working tree's files (tracked and new, not ignored) copied under ``dest/repo``; ../shared linked."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    repo = dest / "repo"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if (ROOT.parent / "shared").exists():
        (dest / "shared").symlink_to(ROOT.parent / "shared")  # read in place, as the tests do
    return repo


def _run_tests(repo: Path, tests: tuple[str, ...], basetemp: Path) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": str(repo), "COVIDX_US_PROGRESS": "0"}
    env.pop("CI", None)
    start = time.monotonic()
    code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           f"--basetemp={basetemp}", *tests], cwd=repo, env=env, capture_output=True).returncode
    return code, time.monotonic() - start


def check(mutant: Mutant, work: Path, baselines: dict[tuple[str, ...], int]) -> tuple[str, float]:
    """``killed``, ``survived``, ``baseline failed`` or ``does not apply`` for ``mutant``."""
    if mutant.tests not in baselines:  # the same tests on the unmutated tree, once per set of tests
        base = work / "baseline"
        repo = base / "repo" if base.exists() else _copy_tree(base)
        baselines[mutant.tests] = _run_tests(repo, mutant.tests, work / f"pt-base-{len(baselines)}")[0]
    if baselines[mutant.tests] != 0:
        return "baseline failed", 0.0
    folder = Path(tempfile.mkdtemp(prefix=f"{mutant.name}-", dir=work))
    try:
        repo = _copy_tree(folder)
        module = repo / mutant.path
        text = module.read_text(encoding="utf-8")
        for old, new in mutant.edits:
            if text.count(old) != 1:
                return "does not apply", 0.0
            text = text.replace(old, new)
        module.write_text(text, encoding="utf-8")
        code, seconds = _run_tests(repo, mutant.tests, folder / "pt-mutant")
        return ("killed" if code == 1 else "survived" if code == 0 else f"error (pytest exit {code})"), seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--slow", action="store_true", help="also the mutants checked by slow tests")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if (args.only and m.name in args.only) or (not args.only and (args.slow or not m.slow))]
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:34} {m.path:34} {m.promise}{' (slow)' if m.slow else ''}")
        return 0
    results = []
    baselines: dict[tuple[str, ...], int] = {}
    with tempfile.TemporaryDirectory(prefix="covidx-mutation-") as work:
        for m in chosen:
            outcome, seconds = check(m, Path(work), baselines)
            results.append((m, outcome))
            print(f"{outcome:16} {seconds:6.1f} s  {m.name}: {m.promise}", flush=True)
    killed = sum(outcome == "killed" for _m, outcome in results)
    print(f"{killed} of {len(results)} mutants killed")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
