"""``covidx-us demo``: the whole pipeline offline, on a simulated release served by a loopback site.

Stages (each announced on stderr with its duration):

1. write the simulated release (processing.demo.simrelease: ~16 clips across every class, both probes, seven sources, with
   masks and ground truth) under the work folder;
2. serve every clip on ``http://127.0.0.1:PORT/`` in its source's URL layout (processing.demo.testsite.LoopbackSite);
3. run the real ``covidx-us build`` of all six configs with ``--custom-release --release-dir ... --mirror PREFIX
   --no-original`` (the original hosts are not contacted: they hold other bytes or are gone), which exports the
   Hub-layout folder to the output;
4. count videos and frames per config and split from the exported Parquet files, print them and the exact
   ``load_dataset`` lines, and shut the server down (also on an error or Ctrl-C; ``--keep-server`` keeps it up until
   Ctrl-C).

Everything is written under the output folder and the work folder (default: ``<output>.work`` beside it): the
simulated release, the clips, the download/processing cache and datasets' cache. The work folder is keyed by the
simulation parameters, so a rerun reuses its downloads and processed clips.

This module only wires existing layers together: it must not process pixels, download, or build anything itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from processing.errors import CovidxError, finite_float
from processing.vocabulary import DEFAULT_DEMO_OUTPUT

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "frames-4class"


@dataclass(frozen=True)
class DemoOptions:
    """What ``covidx-us demo`` runs. ``work_dir`` None: ``<output>.work`` beside the output.

    ``scale`` and ``frames`` multiply the simulated clips' frame sizes and lengths (processing.demo.simrelease)."""

    output: Path = DEFAULT_DEMO_OUTPUT
    work_dir: Path | None = None
    seed: int = 0
    scale: float = 1.0
    frames: float = 1.0
    keep_server: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output).absolute())
        work = Path(self.work_dir).absolute() if self.work_dir else self.output.with_name(self.output.name + ".work")
        object.__setattr__(self, "work_dir", work)
        if self.seed < 0:
            raise CovidxError(f"invalid seed {self.seed}; valid values: integers >= 0")
        if not 0.25 <= self.scale <= 8:
            raise CovidxError(f"invalid scale {self.scale}; valid values: 0.25 to 8")
        if not 0.1 <= self.frames <= 10:
            raise CovidxError(f"invalid frames {self.frames}; valid values: 0.1 to 10")
        # The export replaces the output folder whole: the work folder must not lie inside it, nor the reverse.
        if work == self.output or work.is_relative_to(self.output) or self.output.is_relative_to(work):
            raise CovidxError(f"invalid work dir {work}: it must lie outside the output {self.output} and not "
                              "contain it")

    @property
    def run_dir(self) -> Path:
        """Work subfolder of these simulation parameters (a different seed never reuses another's downloads)."""
        assert self.work_dir is not None
        return self.work_dir / f"seed{self.seed}-scale{self.scale:g}-frames{self.frames:g}"


@dataclass(frozen=True)
class SplitCount:
    videos: int
    examples: int  # frames for frames-* configs, clips for videos-* configs


@dataclass(frozen=True)
class DemoResult:
    output: Path
    prefix: str  # the loopback site's URL prefix (closed when run_demo returns)
    counts: dict[str, dict[str, SplitCount]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def export_counts(output: Path) -> dict[str, dict[str, SplitCount]]:
    """Videos and examples per config and split of a Hub-layout export, read from its Parquet files."""
    import pyarrow.parquet as pq

    from covidx_us import CONFIG_NAMES

    def order(folder: Path) -> tuple[int, str]:
        return (CONFIG_NAMES.index(folder.name) if folder.name in CONFIG_NAMES else len(CONFIG_NAMES), folder.name)

    counts: dict[str, dict[str, SplitCount]] = {}
    for config_dir in sorted((p for p in Path(output).iterdir() if p.is_dir() and any(p.glob("*.parquet"))), key=order):
        by_split: dict[str, tuple[set[str], int]] = {}
        for shard in sorted(config_dir.glob("*.parquet")):
            split = shard.name.split("-", 1)[0]
            ids = pq.read_table(shard, columns=["video_id"]).column("video_id").to_pylist()
            seen, n = by_split.get(split, (set(), 0))
            by_split[split] = (seen | set(ids), n + len(ids))
        usual = ("train", "validation", "test")
        splits = sorted(by_split, key=lambda s: (usual.index(s) if s in usual else len(usual), s))
        counts[config_dir.name] = {s: SplitCount(len(by_split[s][0]), by_split[s][1]) for s in splits}
    return counts


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_counts(counts: dict[str, dict[str, SplitCount]]) -> list[str]:
    """One line per config: ``frames-4class: train 11 videos 216 frames; validation ...``."""
    lines = []
    for name, splits in counts.items():
        parts = []
        for split, c in splits.items():
            frames = f" {_plural(c.examples, 'frame')}" if name.startswith("frames") else ""
            parts.append(f"{split} {_plural(c.videos, 'video')}{frames}")
        lines.append(f"{name}: {'; '.join(parts)}")
    return lines


class _Stages:
    """Numbered stage messages on stderr, each closed with its duration."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.number = total, stream, 0
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, key: str, text: str) -> Iterator[None]:
        self.number += 1
        print(f"[{self.number}/{self.total}] {text} ...", file=self.stream, flush=True)
        start = time.monotonic()
        yield
        self.timings[key] = time.monotonic() - start
        print(f"[{self.number}/{self.total}] done in {self.timings[key]:.1f} s", file=self.stream, flush=True)


def build_argv(release_dir: Path, prefix: str, cache_dir: Path, output: Path) -> list[str]:
    """The ``covidx-us build`` arguments the demo runs (all six configs, loopback mirror only)."""
    return ["build", "--config", "all", "--release-dir", str(release_dir), "--custom-release",
            "--mirror", prefix, "--no-original", "--delay", "0", "--cache-dir", str(cache_dir),
            "--output", str(output)]


def _run_build(argv: list[str]) -> None:
    """Run ``covidx-us build`` through its own parser and handler (what the console script runs)."""
    from processing.cli import build as build_cli

    parser = argparse.ArgumentParser(prog="covidx-us")
    build_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # the demo's stdout is its own summary
        code = args.func(args)
    if code:
        raise CovidxError(f"covidx-us build exited with {code}")


def run_demo(options: DemoOptions, *, stderr: TextIO | None = None) -> DemoResult:
    """Simulate, serve, build and export (see the module docstring); the server is closed on return or error."""
    from processing.demo.simrelease import write_simulated_release
    from processing.demo.testsite import LoopbackSite
    from processing.release.catalogue import load_catalogue

    stream = stderr or sys.stderr
    stages = _Stages(4, stream)
    run_dir = options.run_dir
    with stages.stage("simulate", f"writing the simulated release and its clips to {run_dir / 'sim'}"):
        sim = write_simulated_release(run_dir / "sim", seed=options.seed, scale=options.scale, frames=options.frames)
        catalogue = load_catalogue("1.5", sim.release_dir, custom=True, cache_dir=run_dir / "cache" / "release")
    with contextlib.ExitStack() as server:  # closes the site however the block ends (error, Ctrl-C)
        with stages.stage("serve", "serving the clips on 127.0.0.1 under each source's URL layout"):
            site = server.enter_context(LoopbackSite.from_videos(catalogue.videos, clips=sim.clips))
            prefix = site.prefix
            hosts = sorted({url.split("/")[2] for url in sim.urls.values()})
            print(f"      {prefix} serves {len(sim.clips)} clips from {len(hosts)} hosts: {', '.join(hosts)}",
                  file=stream)
        argv = build_argv(sim.release_dir, site.prefix, run_dir / "cache", options.output)
        with stages.stage("build", "building all six configs (original hosts not contacted: --no-original; "
                                   f"mirror {site.prefix})"):
            print(f"      covidx-us {' '.join(argv)}", file=stream, flush=True)
            _run_build(argv)
        with stages.stage("count", f"counting the export in {options.output}"):
            counts = export_counts(options.output)
        if options.keep_server:
            with contextlib.suppress(KeyboardInterrupt):  # entered before saying so: a Ctrl-C right after is a stop
                print(f"serving {prefix} until Ctrl-C", file=stream, flush=True)
                threading.Event().wait()
    return DemoResult(output=options.output, prefix=prefix, counts=counts, timings=stages.timings)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="run the whole pipeline offline on a simulated release served on 127.0.0.1",
        description="Simulate a small COVIDx-US release (lung-ultrasound clips with overlays, masks, crop windows), "
        "serve it on 127.0.0.1 in each source's URL layout, run the real `covidx-us build` of all six configs "
        "through --mirror (original hosts off), export DIR and print how to load it. Needs no network.",
    )
    p.add_argument("--output", type=Path, default=DEFAULT_DEMO_OUTPUT, metavar="DIR",
                   help=f"export folder (default: ./{DEFAULT_DEMO_OUTPUT})")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="simulated release, clips and caches (default: DIR.work beside the export)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default: 0)")
    p.add_argument("--scale", type=finite_float, default=1.0, help="frame size factor of the simulated clips (default: 1)")
    p.add_argument("--frames", type=finite_float, default=1.0, help="length factor of the simulated clips (default: 1)")
    p.add_argument("--keep-server", action="store_true",
                   help="keep serving the simulated sources after the build until Ctrl-C")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    options = DemoOptions(output=args.output, work_dir=args.workdir, seed=args.seed, scale=args.scale,
                          frames=args.frames, keep_server=args.keep_server)
    start = time.monotonic()
    result = run_demo(options)
    total = time.monotonic() - start
    out = str(result.output)
    print(f"covidx-us demo: built from a SIMULATED release (not COVIDx-US data), served on {result.prefix} "
          f"(now closed); original hosts not contacted (--no-original); {total:.0f} s")
    for line in format_counts(result.counts):
        print(line)
    print(f"exported to {out}; load it (offline) with:")
    print("    from datasets import load_dataset")
    target, config = json.dumps(out), json.dumps(DEFAULT_CONFIG)  # double-quoted, escaped Python literals
    print(f"    ds = load_dataset({target}, {config})")
    print(f"    stream = load_dataset({target}, {config}, streaming=True)")
    for line in next_commands(result.output):
        print(line)
    return 0


def next_commands(output: Path) -> list[str]:
    """What to run next on the demo's export: report, train, push (refused: the release is simulated)."""
    folder = shlex.quote(str(output))
    return [
        "next:",
        f"    covidx-us report {folder} --open          # the HTML build report",
        f"    python examples/train.py --data {folder} --max-steps 20   # from a checkout, with the train extra",
        f"    covidx-us push NAMESPACE/NAME {folder} --allow-custom   # simulated data: refused without it",
    ]
