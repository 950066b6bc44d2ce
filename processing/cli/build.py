"""``covidx-us build``: run the CovidxUS builder for one or every config and export the Hub-layout folder.

Every config is built first (downloads and processed clips are cached and shared between configs); only when all
succeeded is DIR written, in a temporary folder beside it that is then swapped in (processing.hub.export). A build with
missing videos stops before the export unless --allow-missing. This module only parses arguments and calls down.

Beside the export, in the same atomic swap, ``DIR/build_record.json`` (ARCHITECTURE.md, "The build record") says per
video where it came from, the plan it was processed with and what processing measured; ``covidx-us report`` reads
it. It holds local paths and the build time, so it is neither uploaded (``covidx-us push`` skips it) nor part of
the claim that a build is reproducible byte for byte: that claim covers the README.md and the Parquet shards.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
from pathlib import Path
from typing import Any

from processing.build.splits import SCHEMES
from processing.errors import CovidxError, find_os_error, finite_float, os_error_message
from processing.fileutil import path_problem, untemp
from processing.vocabulary import (
    CLASSES,
    CONFIG_NAMES,
    CROP_MODES,
    DEFAULT_OUTPUT,
    IMAGE_FORMATS,
    INPAINT_METHODS,
    MASK_MODES,
    POINTER_POLICIES,
    PROBES,
    SOURCES,
    VERSIONS,
)

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "build",
        help="build the dataset and export it in the Hub layout (load_dataset-ready)",
        description="Run catalogue -> download -> processing -> datasets for the chosen configs and write DIR "
        "as <config>/<split>-NNNNN-of-NNNNN.parquet plus a README.md dataset card. "
        "From DIR's parent, load_dataset('<DIR name>', '<config>') then works offline.",
    )
    p.add_argument("--config", default="all", metavar="NAME|all",
                   help=f"config to build: {', '.join(CONFIG_NAMES)} or all (default: all)")
    p.add_argument("--release", default="1.5", choices=VERSIONS, help="release version (default: 1.5)")
    p.add_argument("--release-dir", type=Path, metavar="DIR",
                   help="release files folder (default: the pinned upstream files, fetched and verified)")
    p.add_argument("--custom-release", action="store_true",
                   help="--release-dir holds your own release (not the official COVIDx-US; the card says so)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                   help=f"export folder (default: ./{DEFAULT_OUTPUT})")
    p.add_argument("--mirror", action="append", default=[], metavar="PREFIX",
                   help="URL prefix tried after the original hosts (repeatable)")
    p.add_argument("--no-original", action="store_true",
                   help="do not try the original hosts: mirrors and --data-dir only")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="folder of manually downloaded clips")
    p.add_argument("--copies", action="store_true",
                   help="last, recover videos from their registered public copies (metadata/copies.csv, "
                   "sha256-verified); the card and every example say which clips are copies")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="downloads, processed clips and datasets' cache (default: $COVIDX_US_CACHE or "
                   "~/.cache/covidx-us)")
    p.add_argument("--allow-missing", action="store_true",
                   help="build without the videos that cannot be had (named in the log and the card)")
    p.add_argument("--max-frames", type=int, metavar="N", help="at most N evenly spaced frames per clip")
    p.add_argument("--fps", type=finite_float, dest="sample_hz", metavar="HZ", help="sample frames at HZ (e.g. 3)")
    p.add_argument("--inpaint", choices=INPAINT_METHODS, help="inpainting method (default: ns, the paper's)")
    p.add_argument("--image-format", choices=IMAGE_FORMATS, help="frame image format (default: png)")
    p.add_argument("--split", choices=SCHEMES, help="split scheme (default: default = train/validation/test)")
    p.add_argument("--num-folds", type=int, metavar="K", help="folds for --split kfold (default: 5)")
    p.add_argument("--fold", type=int, metavar="I",
                   help="with --split kfold: train/test for fold I (default: one split per fold)")
    p.add_argument("--seed", type=int, help="split seed (default: 0)")
    p.add_argument("--source", "--sources", nargs="+", action="extend", choices=SOURCES, dest="sources",
                   metavar="SOURCE", help="keep only these sources (repeatable, as in download)")
    p.add_argument("--probe", action="append", choices=PROBES, dest="probes", help="keep only this probe")
    p.add_argument("--class", action="append", choices=CLASSES, dest="classes",
                   help="keep only videos of this 4-class label (repeatable)")
    p.add_argument("--delay", type=finite_float, dest="download_delay", metavar="S",
                   help="seconds between two requests to one host (default: 1)")
    p.add_argument("--crop", choices=CROP_MODES, help="crop windows: release (the release's crop rules, default) "
                   "or auto (detected field of view)")
    p.add_argument("--masks", choices=MASK_MODES, help="overlay masks: release (default), auto (detected) or both "
                   "(their union)")
    p.add_argument("--mask-dir", action="append", default=[], type=Path, dest="mask_dirs", metavar="DIR",
                   help="folder of user masks overriding release masks of the same name (repeatable; searched "
                   "in order, before the project's masks/ folder)")
    p.add_argument("--pointer-policy", choices=POINTER_POLICIES,
                   help="with --masks auto|both, a frame whose detected pointer touches the lung: drop "
                   "(default, as the release did) or mask (inpaint the pointer)")
    p.add_argument("--num-proc", type=int, dest="num_proc", metavar="N",
                   help="worker processes for clip processing (default: every core); results do not depend on it")
    p.add_argument("--prune-cache", action="store_true",
                   help="after the build, delete the processed clips that older covidx-us versions left in the "
                   "cache (this version never reads them; other parameters' clips are kept)")
    p.set_defaults(func=run)
    return p


def config_names(choice: str) -> tuple[str, ...]:
    if choice == "all":
        return CONFIG_NAMES
    names = tuple(dict.fromkeys(part.strip() for part in choice.split(",") if part.strip()))
    for name in names:
        if name not in CONFIG_NAMES:
            raise CovidxError(f"invalid config {name!r}; valid values: {', '.join(CONFIG_NAMES)}, all")
    return names


def parameters_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The builder keyword arguments the command line sets (unset options keep the config defaults)."""
    from processing.release.files import default_cache_dir

    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    params: dict[str, Any] = {
        "release": args.release,
        "release_dir": str(args.release_dir) if args.release_dir else None,
        "custom_release": args.custom_release or None,
        "mirrors": tuple(args.mirror) or None,
        "data_dir": str(args.data_dir) if args.data_dir else None,
        "work_dir": str(cache),
        "allow_missing": args.allow_missing or None,
        "use_original": False if args.no_original else None,
        "copies": args.copies or None,
        "mask_dirs": tuple(str(d) for d in args.mask_dirs) or None,
    }
    for name in ("max_frames", "sample_hz", "inpaint", "image_format", "split", "num_folds", "fold", "seed",
                 "sources", "probes", "classes", "download_delay", "crop", "masks", "pointer_policy", "num_proc"):
        params[name] = getattr(args, name)
    return {k: v for k, v in params.items() if v is not None}


BUILD_RECORD = "build_record.json"
BUILD_RECORD_FORMAT = 1


def build(names: tuple[str, ...], params: dict[str, Any], output: Path) -> tuple[Path, dict[str, Any]]:
    """Build ``names`` with ``params`` and export them to ``output``; returns (output, per-config summaries).

    ``output`` also receives ``build_record.json`` (see the module docstring). Each summary holds ``videos`` and
    ``examples`` per split, and ``processed`` / ``reused``: the clips processed now and those taken from the cache.
    ``params["num_proc"]`` > 1 (the default on a multi-core machine) starts worker processes with the ``spawn``
    method: a script calling this needs the usual ``if __name__ == "__main__":`` guard.
    """
    import datasets

    from processing import progress

    quiet = not progress.enabled() and not datasets.utils.are_progress_bars_disabled()
    if quiet:  # datasets' own bars follow ours: none when stderr is not a terminal
        datasets.disable_progress_bars()
    try:
        return _build(names, params, output)
    finally:
        if quiet:
            datasets.enable_progress_bars()


def _build(names: tuple[str, ...], params: dict[str, Any], output: Path) -> tuple[Path, dict[str, Any]]:
    from datasets import DownloadMode

    from covidx_us import CovidxUS, download_digest
    from processing.hub.export import Provenance, config_counts, export_hub_folder, split_warnings
    from processing.project import version_info

    cache = Path(params["work_dir"])
    builds, summaries, parameters, card_parameters, missing, recoverable = {}, {}, {}, {}, set(), set()
    catalogue, downloads = None, set()
    known_missing: dict[str, Any] = {}  # videos found missing by one config are not looked for again by the next
    videos: dict[str, dict[str, Any]] = {}
    split_of: dict[str, dict[str, str]] = {}
    differences: dict[str, tuple[str, ...]] = {}
    # videos-* first: they process clips with the clean video, which frames-* configs then reuse (the other way
    # round every clip would be processed twice). The export keeps the order asked for.
    for name in sorted(names, key=lambda n: not n.startswith("videos-")):
        builder = CovidxUS(config_name=name, cache_dir=str(cache / "datasets"), **params)
        builder.known_missing = known_missing
        # Processed clips are cached by covidx_us itself; datasets' Arrow cache would hide changed downloads.
        builder.download_and_prepare(download_mode=DownloadMode.FORCE_REDOWNLOAD)
        builds[name] = builder.as_dataset()
        result = builder.result
        catalogue = result.catalogue
        missing.update(result.missing)
        recoverable.update(result.recoverable)
        downloads.update(result.download_rows)
        parameters[name] = builder.config.parameters()
        card_parameters[name] = builder.config.card_parameters()
        summaries[name] = {"videos": result.video_counts, "examples": {s: len(d) for s, d in builds[name].items()},
                           "processed": result.processed_now, "reused": result.reused}
        for vid, entry in result.video_entries().items():
            videos.setdefault(vid, entry)
        split_of[name] = dict(result.split_of)
        if result.count_differences:
            differences[name] = result.count_differences
    builds = {name: builds[name] for name in names}
    summaries = {name: summaries[name] for name in names}
    if differences:  # one line per build, not one per config
        log.info("non-default parameters: split sizes differ from dataset_infos.json (%s)",
                 "; ".join(f"{name}: {', '.join(diff)}" for name, diff in differences.items()))
    for name in names:
        counts = config_counts(builds[name])
        summaries[name]["warnings"] = split_warnings(name, counts.videos_per_split(), counts.classes)
    tool = version_info()  # the same in the card and in build_record.json
    digest = download_digest(downloads)
    provenance = Provenance(
        release_version=catalogue.version,
        release_commit=catalogue.commit,
        official=catalogue.official,
        parameters=card_parameters,
        manifest_sha256=digest,
        missing_videos=tuple(sorted(missing)),
        copies=copies_used(catalogue, videos),
        recoverable=tuple(v.id for v in catalogue.videos if v.id in recoverable),
        simulated=catalogue.simulated,
        tool=tool,
    )
    record = build_record(names, params, parameters, catalogue, cache, digest, summaries, videos, split_of,
                          provenance.recoverable)
    export_hub_folder(builds, output, provenance, default_config="frames-4class" if "frames-4class" in builds
                      else None, extra_files={BUILD_RECORD: json.dumps(record, indent=1) + "\n"})
    return output, summaries


def copies_used(catalogue: Any, videos: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Per video built from a public copy (catalogue order): its id, the copy (repository, commit, path,
    changes...) and how it was processed ("mapped": the release's plan moved into it; "auto")."""
    out = []
    for video in catalogue.videos:
        entry = videos.get(video.id)
        copy = (entry or {}).get("download", {}).get("copy")
        if copy and entry.get("record") is not None:
            out.append({"video_id": video.id, **copy, "plan": (entry.get("plan") or {}).get("copy")})
    return tuple(out)


def build_record(names: tuple[str, ...], params: dict[str, Any], parameters: dict[str, dict[str, Any]],
                 catalogue: Any, work_dir: Path, digest: str, summaries: dict[str, Any],
                 videos: dict[str, dict[str, Any]], split_of: dict[str, dict[str, str]],
                 recoverable: tuple[str, ...] = ()) -> dict[str, Any]:
    """The content of build_record.json (ARCHITECTURE.md, "The build record")."""
    from processing.project import version_info

    first = parameters[names[0]]
    shared = {k: v for k, v in first.items() if all(p.get(k) == v for p in parameters.values())}
    entries = []
    for video in catalogue.videos:
        if video.id not in videos:
            continue
        entry = videos[video.id]
        entries.append({
            "id": video.id, "source": video.source, "label": video.label, "probe": video.probe,
            "patient_id": video.patient_id,
            "split": {name: split_of[name][video.id] for name in names if video.id in split_of[name]},
            "download": entry["download"], "plan": entry["plan"], "record": entry["record"],
            "reason": entry.get("reason"),
        })
    return {
        "format": BUILD_RECORD_FORMAT,
        "tool": version_info(),  # the covidx-us that built it (and its git commit, from a checkout)
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "configs": list(names),
        "parameters": shared,
        "config_parameters": parameters,
        "release": {"version": catalogue.version, "commit": catalogue.commit, "official": catalogue.official,
                    "simulated": bool(getattr(catalogue, "simulated", False)),
                    "release_dir": str(Path(catalogue.release_dir).absolute()) if catalogue.release_dir else None},
        "work_dir": str(work_dir.absolute()),
        "download_manifest_digest": digest,
        "splits": {name: dict(summary["videos"] or {}) for name, summary in summaries.items()},
        "processed_now": sorted({v for s in summaries.values() for v in s["processed"]}),
        "copies": list(copies_used(catalogue, videos)),
        "recoverable": list(recoverable),
        "videos": entries,
    }


def check_paths(args: argparse.Namespace) -> None:
    """Refuse, before any work, a folder option naming a file (or a file where a folder should be)."""
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CovidxError(f"--output {output} is a file, not a folder")
    for option, value in (("--release-dir", args.release_dir), ("--data-dir", args.data_dir),
                          *(("--mask-dir", d) for d in args.mask_dirs)):
        if value is not None and (problem := path_problem(value, "folder")):
            raise CovidxError(f"{option} {problem}")
    if args.cache_dir is not None and Path(args.cache_dir).exists() and not Path(args.cache_dir).is_dir():
        raise CovidxError(f"--cache-dir {args.cache_dir} is a file, not a folder")


def run(args: argparse.Namespace) -> int:
    names = config_names(args.config)
    check_paths(args)
    params = parameters_from_args(args)
    try:
        output, summaries = build(names, params, Path(args.output))
    except CovidxError:
        raise
    except Exception as exc:  # an operating-system error, even wrapped by datasets: one line, and what is kept
        found = find_os_error(exc)
        if found is None:
            raise
        cache = params["work_dir"]
        raise CovidxError(f"{os_error_message(untemp(found), f'{cache} or {args.output}')}; finished downloads and "
                          f"processed clips are kept in {cache} and the export {args.output} is as it was: a rerun "
                          "resumes") from None
    for name, summary in summaries.items():
        videos = ", ".join(f"{s} {n}" for s, n in summary["videos"].items())
        examples = ", ".join(f"{s} {n}" for s, n in summary["examples"].items())
        print(f"{name}: videos {videos}; examples {examples}; clips processed {len(summary['processed'])}, "
              f"reused {len(summary['reused'])}")
    for summary in summaries.values():
        for warning in summary.get("warnings", ()):
            print(f"warning: {warning}")
    print(f"exported to {output} (load_dataset({output.name!r}, name) from {output.absolute().parent})")
    record = json.loads((output / BUILD_RECORD).read_text(encoding="utf-8"))
    if record.get("copies"):
        print(f"{len(record['copies'])} videos come from public copies, not the original files: "
              + ", ".join(c["video_id"] for c in record["copies"]))
    if record.get("recoverable"):
        from processing.sources.download import would_recover_text

        print(would_recover_text(record["recoverable"]))
    report_stale_caches(Path(params["work_dir"]), prune=args.prune_cache)
    return 0


def report_stale_caches(work_dir: Path, prune: bool) -> None:
    """Say how much of ``work_dir/processed`` older covidx-us versions left there; with ``prune``, delete it.
    Runs after the export, so an interrupted build never loses a cache it could still use."""
    import shutil

    from covidx_us import PROCESSING_FORMAT
    from processing.build.processed import stale_caches

    stale = stale_caches(work_dir, PROCESSING_FORMAT)
    if not stale:
        return
    where, size = stale[0][0].parent, sum(n for _p, n in stale) / 1e6
    if not prune:
        print(f"{len(stale)} processed-clip caches in {where} were made by an older covidx-us and "
              f"are never read again ({size:.1f} MB); --prune-cache deletes them")
        return
    for folder, _n in stale:
        shutil.rmtree(folder)
    print(f"deleted {len(stale)} processed-clip caches of older covidx-us versions from {where} ({size:.1f} MB)")
