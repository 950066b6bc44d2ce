"""Write built configs as a folder in the Hugging Face Hub's own layout, with its dataset card.

Layout (what ``push_to_hub`` writes, so stock ``load_dataset(folder, config)`` and ``streaming=True`` read it and
``upload_folder`` uploads it as is)::

    DIR/README.md                                   YAML: configs (data_files per split), dataset_info; then the card
    DIR/<config>/<split>-00000-of-00001.parquet     Parquet shards with the media bytes embedded

The folder is written in a temporary folder beside DIR and swapped in at the end: a failed export never leaves a
half-written DIR, and an earlier export stays in place until the new one is complete. An export holds exactly the
configs it was given (an older DIR is replaced whole). ``extra_files`` (e.g. the builder's ``build_record.json``)
are written into the same temporary folder, so they appear together with the export they describe.

Deterministic: the same builds and provenance give byte-identical files (no time, host or path is written into the
Parquet shards or the card), which is what lets a resumed build be checked against an uninterrupted one.
Leftovers of an export killed mid-way (``.DIR.tmp-*`` / ``.DIR.old-*`` beside DIR) are removed by the next export
(so two exports must not write the same DIR at the same time).

This module must not run the pipeline, download anything or talk to the Hub; it only writes what it is given.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCardData

from processing.errors import CovidxError
from processing.fileutil import current_umask, folder_bytes

log = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_BYTES = 500 * 1024**2

# Per source: (display name, licence of its clips as the upstream README states it; ../shared ORIGIN.md).
SOURCE_LICENCES: dict[str, tuple[str, str]] = {
    "butterfly": ("Butterfly Network", "none stated"),
    "grepmed": ("GrepMed", "none stated"),
    "litfl": ("Life in the Fast Lane (LITFL)", "CC BY-NC-SA 4.0"),
    "pocusatlas": ("The POCUS Atlas", "CC BY-NC 4.0"),
    "radio": ("Radiopaedia", "CC BY-NC-SA 3.0"),
    "core": ("CoreUltrasound", "none stated"),
    "uf": ("University of Florida", "none stated"),
    "paper": ("Publications' supplementary material", "none stated"),
    "clarius": ("Clarius", "none stated"),
}

CITATION = """@article{ebadi2021covidxus,
  title   = {{COVIDx-US} -- An Open-Access Benchmark Dataset of Ultrasound Imaging Data for {AI}-Driven {COVID-19} Analytics},
  author  = {Ebadi, Ashkan and Xi, Pengcheng and MacLean, Alexander and Tremblay, St{\\'e}phane and Kohli, Sonny and Wong, Alexander},
  journal = {arXiv preprint arXiv:2103.10003},
  year    = {2021},
  note    = {Published in Frontiers in Bioscience-Landmark (2022); data and scripts: https://github.com/nrc-cnrc/COVID-US}
}"""


class ExportError(CovidxError):
    """The export cannot be written (empty build, bad output folder...)."""


@dataclass(frozen=True)
class Provenance:
    """Where a build came from; written into the dataset card."""

    release_version: str
    release_commit: str | None  # the pinned upstream commit; None for a custom release
    official: bool  # False for --custom-release builds: not the official COVIDx-US
    parameters: Mapping[str, object] = field(default_factory=dict)  # per config name: its parameters
    manifest_sha256: str | None = None  # digest of the download manifest
    missing_videos: tuple[str, ...] = ()  # clips left out because they could not be had (--allow-missing)
    # Videos built from a public copy, not the original file: per video its id, repository, commit, path, changes
    # and how it was processed (see copies_section); and the missing videos a rerun with --copies would recover.
    copies: tuple[Mapping[str, object], ...] = ()
    recoverable: tuple[str, ...] = ()

    def release_text(self) -> str:
        if not self.official:
            return f"custom release {self.release_version}: not the official COVIDx-US"
        commit = self.release_commit or "unknown commit"
        return f"official COVIDx-US v{self.release_version} (nrc-cnrc/COVID-US commit {commit})"


def shard_paths(split: str, num_shards: int) -> list[str]:
    """File names of a split's shards, as ``push_to_hub`` names them."""
    return [f"{split}-{i:05d}-of-{num_shards:05d}.parquet" for i in range(num_shards)]


def _write_config(ds_dict: datasets.DatasetDict, config_dir: Path, max_shard_bytes: int) -> dict[str, SplitInfo]:
    config_dir.mkdir(parents=True)
    splits: dict[str, SplitInfo] = {}
    for split, ds in ds_dict.items():
        nbytes = int(ds.data.nbytes)
        num_shards = max(1, math.ceil(nbytes / max_shard_bytes)) if len(ds) else 1
        num_shards = min(num_shards, max(1, len(ds)))
        for index, name in enumerate(shard_paths(split, num_shards)):
            ds.shard(num_shards=num_shards, index=index, contiguous=True).to_parquet(str(config_dir / name))
        splits[split] = SplitInfo(name=split, num_bytes=nbytes, num_examples=len(ds))
    return splits


def _source_counts(ds_dict: datasets.DatasetDict) -> Counter[str]:
    """Clips per source (each video counted once, whatever its number of frames)."""
    pairs: set[tuple[str, str]] = set()
    for ds in ds_dict.values():
        if "source" in ds.column_names and "video_id" in ds.column_names:
            pairs.update(zip(ds["video_id"], ds["source"], strict=True))
    return Counter(source for _video, source in pairs)


def _size_category(n: int) -> str:
    """The Hub's size_categories bucket for n examples."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def card_text(
    infos: Mapping[str, DatasetInfo],
    sources: Mapping[str, int],
    provenance: Provenance,
    default_config: str | None = None,
) -> str:
    """The README.md (YAML header + prose) for the given per-config infos."""
    card_data = DatasetCardData(
        pretty_name="COVIDx-US (rebuilt)",
        license="other",
        license_name="per-source",
        license_details="Clips keep their source's licence; see 'Licences' below.",
        task_categories=["image-classification", "video-classification"],
        tags=["medical", "ultrasound", "lung-ultrasound", "covid-19"],
        size_categories=[_size_category(sum(s.num_examples for i in infos.values() for s in i.splits.values()))],
    )
    DatasetInfosDict({name: info for name, info in infos.items()}).to_dataset_card_data(card_data)
    configs = {
        name: {"data_files": [{"split": s, "path": f"{name}/{s}-*"} for s in info.splits]}
        for name, info in infos.items()
    }
    if default_config in configs:
        configs[default_config]["default"] = True
    MetadataConfigs(configs).to_dataset_card_data(card_data)

    lines = [
        "# COVIDx-US, rebuilt",
        "",
        "Lung-ultrasound (LUS) clips of the COVIDx-US benchmark (COVID-19, pneumonia, normal, other), downloaded from",
        "their public sources and cleaned (crop to the ultrasound sector, inpainting of overlays) by `covidx-us build`.",
        "Splits are grouped by patient (clips the upstream errata say are the same count as one) and stratified by class.",
        "",
        "## Configs",
        "",
        "| config | split | examples |",
        "|---|---|---|",
    ]
    for name, info in infos.items():
        for split, split_info in info.splits.items():
            lines.append(f"| {name} | {split} | {split_info.num_examples} |")
    lines += ["", "```python", "from datasets import load_dataset", ""]
    first = next(iter(infos), "frames-4class")
    lines += [f'ds = load_dataset("path/to/this/folder", "{first}")', "```", ""]
    lines += [
        "## Licences",
        "",
        "The clips are not covered by this project's licence: each keeps its source's terms, as stated by the",
        "upstream COVIDx-US README. Where none is stated, ask the source before any use beyond research.",
        "",
        "| source | clips in this build | licence |",
        "|---|---|---|",
    ]
    for source, (display, licence) in SOURCE_LICENCES.items():
        if sources.get(source):
            lines.append(f"| {display} (`{source}`) | {sources[source]} | {licence} |")
    lines += [
        "",
        "The release files (labels, crop and mask metadata) come from nrc-cnrc/COVID-US under GNU AGPL-3.0.",
        "",
        "## Provenance",
        "",
        f"- Release: {provenance.release_text()}",
        f"- Download manifest sha256: {provenance.manifest_sha256 or 'not recorded'}",
    ]
    if provenance.missing_videos:
        lines.append(
            f"- Missing videos left out ({len(provenance.missing_videos)}): " + ", ".join(provenance.missing_videos)
        )
    lines += copies_section(provenance)
    lines += ["- Parameters:", "", "```json", json.dumps(provenance.parameters, indent=2, sort_keys=True, default=str)]
    lines += ["```", "", "## Citation", "", "```bibtex", CITATION, "```", ""]
    return f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)


def copies_section(provenance: Provenance) -> list[str]:
    """Card lines on the clips that are not the original files: per video recovered from a public copy, the
    repository, commit, path and what the copy changed; and what ``--copies`` would recover when it was off."""
    lines: list[str] = []
    if provenance.recoverable:
        lines.append(f"- Missing videos with a registered public copy ({len(provenance.recoverable)}; a rebuild "
                     "with `--copies` would recover them): " + ", ".join(provenance.recoverable))
    if not provenance.copies:
        return lines
    lines += [
        f"- Clips from public copies ({len(provenance.copies)}): these are not the original files but copies",
        "  found in public Git repositories at pinned commits (sha256-verified). The catalogue is still the",
        "  release's; the crop and masks were moved into the copy where its place in the original is known",
        "  (`mapped`), else detected automatically (`auto`).",
        "",
        "| video | repository | commit | path | changes | processing |",
        "|---|---|---|---|---|---|",
    ]
    for copy in provenance.copies:
        changes = ", ".join(map(str, copy.get("changes") or ())) or "identical"
        lines.append(f"| {copy['video_id']} | {copy['repository']} | `{copy['commit']}` | `{copy['path']}` | "
                     f"{changes} | {copy.get('plan') or 'auto'} |")
    lines.append("")
    return lines


def export_hub_folder(
    builds: Mapping[str, datasets.DatasetDict],
    output_dir: Path | str,
    provenance: Provenance,
    *,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    default_config: str | None = None,
    extra_files: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Write ``builds`` (config name -> DatasetDict) as a Hub-layout folder at ``output_dir``, atomically.

    ``extra_files``: relative file name -> content, written into the folder with the export (not part of the card).
    Returns ``output_dir``. Raises :class:`ExportError` when there is nothing to export.
    """
    output_dir = Path(output_dir).absolute()
    _remove_leftovers(output_dir)  # first: even a refused export puts a half-swapped earlier one back
    if not builds or not any(len(ds) for dd in builds.values() for ds in dd.values()):
        raise ExportError(f"nothing to export to {output_dir}: the build holds no examples")
    for name in extra_files or {}:
        if Path(name).is_absolute() or ".." in Path(name).parts or name in ("README.md", *builds):
            raise ExportError(f"invalid extra file name {name!r}: must be a new relative path inside {output_dir}")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        infos: dict[str, DatasetInfo] = {}
        sources: Counter[str] = Counter()
        for name, ds_dict in builds.items():
            splits = _write_config(ds_dict, tmp / name, max_shard_bytes)
            features = next(iter(ds_dict.values())).features
            info = DatasetInfo(
                features=features,
                splits=SplitDict({k: v for k, v in splits.items()}),
                download_size=folder_bytes(tmp / name),
                dataset_size=sum(s.num_bytes for s in splits.values()),
                config_name=name,
            )
            infos[name] = info
            for source, n in _source_counts(ds_dict).items():
                sources[source] = max(sources[source], n)
        (tmp / "README.md").write_text(card_text(infos, sources, provenance, default_config), encoding="utf-8")
        for name, content in (extra_files or {}).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        # mkdtemp makes the folder 0700; the export is an ordinary folder, readable as the user's umask allows.
        os.chmod(tmp, 0o777 & ~current_umask())
        _swap_in(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s to %s", ", ".join(builds), output_dir)
    return output_dir


def _remove_leftovers(target: Path) -> None:
    """Remove the temporary folders an export of ``target`` killed mid-way left beside it.

    A kill between the two renames of :func:`_swap_in` leaves no ``target`` but a complete ``.old-`` folder: it is
    put back first, so an earlier export is never lost.
    """
    olds = sorted(target.parent.glob(f".{target.name}.old-*"))
    if olds and not target.exists() and (olds[-1] / "README.md").is_file():
        os.replace(olds.pop(), target)
    for leftover in [*olds, *target.parent.glob(f".{target.name}.tmp-*")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def _swap_in(new: Path, target: Path) -> None:
    """Replace ``target`` by the folder ``new``; the old one is kept until the new one is in place."""
    if not target.exists():
        os.replace(new, target)
        return
    if not target.is_dir():
        raise ExportError(f"output {target} exists and is not a folder")
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
