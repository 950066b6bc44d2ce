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

import ipaddress
import json
import logging
import math
import os
import shutil
import tempfile
import urllib.parse
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
from processing.hub.croissant import CROISSANT_FILE, croissant_json
from processing.vocabulary import CITATION, SOURCE_INFO

log = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_BYTES = 500 * 1024**2



class ExportError(CovidxError):
    """The export cannot be written (empty build, bad output folder...)."""


@dataclass(frozen=True)
class Provenance:
    """Where a build came from; written into the dataset card.

    ``tool`` is :func:`processing.project.version_info` of the covidx-us that built it. ``simulated``: the release
    is the simulated one of ``covidx-us demo`` (its clips are not COVIDx-US data); it implies ``official`` False.
    """

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
    simulated: bool = False
    tool: Mapping[str, object] = field(default_factory=dict)  # {"version", "git_commit", "git_modified"}

    @property
    def kind(self) -> str:
        """"official", "custom" or "simulated" (what the card's title, pretty_name and YAML say)."""
        return "simulated" if self.simulated else "official" if self.official else "custom"

    def release_text(self) -> str:
        if self.simulated:
            return (f"SIMULATED release {self.release_version} (covidx-us demo): simulated clips, not COVIDx-US "
                    "data; a custom release, not the official COVIDx-US")
        if not self.official:
            return f"custom release {self.release_version}: not the official COVIDx-US"
        commit = self.release_commit or "unknown commit"
        return f"official COVIDx-US v{self.release_version} (nrc-cnrc/COVID-US commit {commit})"

    def tool_text(self) -> str:
        version = str(self.tool.get("version") or "unknown version")
        commit = self.tool.get("git_commit")
        if not commit:
            return f"covidx-us {version}"
        return f"covidx-us {version} (git commit {commit}{', with uncommitted changes' if self.tool.get('git_modified') else ''})"


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


# ------------------------------------------------------------------------------------------ counts per class

@dataclass(frozen=True)
class ClassCount:
    """One class in one split: videos, examples (frames, or clips for videos configs) and patients."""

    videos: int
    examples: int
    patients: int  # distinct patient ids; a clip without one counts as its own patient


@dataclass(frozen=True)
class ConfigCounts:
    """What a config holds, per split and class, and its videos per class and source."""

    classes: tuple[str, ...]
    splits: Mapping[str, Mapping[str, ClassCount]]  # split -> class -> counts
    sources: Mapping[str, Mapping[str, int]]  # class -> source -> videos
    source_totals: Mapping[str, int]  # source -> videos (each video once)

    def videos_per_split(self) -> dict[str, dict[str, int]]:
        return {split: {c: n.videos for c, n in by_class.items()} for split, by_class in self.splits.items()}


def _column(ds: datasets.Dataset, name: str) -> list:
    return ds.data.column(name).to_pylist() if name in ds.column_names else [None] * len(ds)


def config_counts(ds_dict: datasets.DatasetDict) -> ConfigCounts:
    """Count ``ds_dict`` (one config) by split and class, and by class and source (each video once)."""
    first = next(iter(ds_dict.values()))
    label = first.features.get("label")
    classes = tuple(label.names) if isinstance(label, datasets.ClassLabel) else ()
    splits: dict[str, dict[str, ClassCount]] = {}
    sources: dict[str, Counter[str]] = {}
    all_sources: dict[str, str] = {}  # video -> source
    for split, ds in ds_dict.items():
        rows = zip(_column(ds, "label"), _column(ds, "video_id"), _column(ds, "patient_id"), _column(ds, "source"),
                   strict=True)
        examples: Counter[str] = Counter()
        videos: dict[str, dict[str, str]] = {}  # class -> video -> patient key
        video_source: dict[str, str | None] = {}
        for lab, video, patient, source in rows:
            name = classes[lab] if isinstance(lab, int) and lab < len(classes) else str(lab)
            examples[name] += 1
            videos.setdefault(name, {})[str(video)] = str(patient) if patient else f"video:{video}"
            video_source[str(video)] = source
            if source:
                all_sources[str(video)] = str(source)
        for name, by_video in videos.items():
            for video in by_video:
                if video_source[video]:
                    sources.setdefault(name, Counter())[str(video_source[video])] += 1
        names = classes or tuple(sorted(examples))
        splits[split] = {c: ClassCount(len(videos.get(c, {})), examples[c], len(set(videos.get(c, {}).values())))
                         for c in names}
    return ConfigCounts(classes or tuple(sorted({c for by in splits.values() for c in by})), splits,
                        {c: dict(n) for c, n in sources.items()}, dict(Counter(all_sources.values())))


MIN_SPLIT_VIDEOS = 3  # fewer videos in a split make its metrics meaningless


def split_warnings(config: str, videos: Mapping[str, Mapping[str, int]], classes: tuple[str, ...]) -> list[str]:
    """Warnings about a config's splits (``videos``: split -> class -> videos): a class absent, or < 3 videos."""
    out = []
    for split, by_class in videos.items():
        total = sum(by_class.values())
        absent = [c for c in classes if not by_class.get(c)]
        if absent:
            out.append(f"{config} {split}: no video of class {', '.join(absent)}")
        if total < MIN_SPLIT_VIDEOS:
            out.append(f"{config} {split}: only {total} video{'s' if total != 1 else ''} "
                       f"(fewer than {MIN_SPLIT_VIDEOS})")
    return out


def _size_category(n: int) -> str:
    """The Hub's size_categories bucket for n examples."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


# ------------------------------------------------------------------------------------------ the card

ARXIV_URL = "https://arxiv.org/abs/2103.10003"
UPSTREAM_URL = "https://github.com/nrc-cnrc/COVID-US"
# Where the per-source licences are stated (the upstream README at the pinned commit).
LICENSE_LINK = f"{UPSTREAM_URL}/blob/caf3aca8dcc17a43ba7c0088f36aba968c7d741e/README.md"
CARD_KEY = "covidx_us"  # the card's YAML block covidx-us reads back (push: is this build the official release?)

FIELDS: dict[str, str] = {
    "image": "the cleaned frame: cropped to the ultrasound field of view, overlays inpainted (PNG or JPEG bytes)",
    "video": "the cleaned clip: lossless MagicYUV .mov bytes (decode with PyAV, or torchcodec via datasets.Video)",
    "label": "the class for this config's task (ClassLabel; names in dataset_info)",
    "video_id": "the release's id of the clip, <number>_<source>_<class>, e.g. 23_grepmed_pneumonia",
    "frame_index": "the frame's number in the source clip, from 0 in decode order (deleted frames leave gaps)",
    "timestamp": "the frame's time in the source clip, seconds",
    "source": "where the clip was published (see Licences)",
    "probe": "ultrasound probe: convex or linear",
    "width": "width of the cleaned frame or clip, pixels",
    "height": "height of the cleaned frame or clip, pixels",
    "original_width": "width of the source clip before cropping, pixels",
    "original_height": "height of the source clip before cropping, pixels",
    "fps": "frames per second of the clean clip (the source's)",
    "num_frames": "frames in the clean clip",
    "patient_id": "the release's patient id (null where the release gives none); splits never share a patient",
    "luss": "lung ultrasound severity score from the release (0-3; null where not scored)",
    "release": "release version; '+custom' marks a custom or simulated release",
}


def _title(provenance: Provenance) -> tuple[str, str]:
    """(pretty_name, first line of the card): a simulated or custom build says so in both."""
    if provenance.kind == "simulated":
        return ("COVIDx-US pipeline demo (SIMULATED clips, not COVIDx-US data)",
                "# SIMULATED build: not COVIDx-US data (covidx-us demo)")
    if provenance.kind == "custom":
        return (f"COVIDx-US rebuilt from a CUSTOM release {provenance.release_version} (not the official release)",
                f"# CUSTOM release build: not the official COVIDx-US (custom release {provenance.release_version})")
    return f"COVIDx-US v{provenance.release_version} (rebuilt)", f"# COVIDx-US v{provenance.release_version}, rebuilt"


def _card_data(infos: Mapping[str, DatasetInfo], provenance: Provenance,
               default_config: str | None) -> DatasetCardData:
    card_data = DatasetCardData(
        pretty_name=_title(provenance)[0],
        license="other",
        license_name="per-source",
        license_link=LICENSE_LINK,
        license_details="Clips keep their source's licence; see 'Licences' below.",
        task_categories=["image-classification", "video-classification"],
        task_ids=["multi-class-image-classification"],
        tags=["medical", "ultrasound", "lung-ultrasound", "covid-19", *(
            ["simulated"] if provenance.simulated else ["custom-release"] if not provenance.official else [])],
        size_categories=[_size_category(sum(s.num_examples for i in infos.values() for s in i.splits.values()))],
        **{CARD_KEY: {"release": provenance.release_version, "release_kind": provenance.kind,
                      "official": provenance.official and not provenance.simulated,
                      "built_with": dict(provenance.tool)}},
    )
    DatasetInfosDict({name: info for name, info in infos.items()}).to_dataset_card_data(card_data)
    configs = {
        name: {"data_files": [{"split": s, "path": f"{name}/{s}-*"} for s in info.splits]}
        for name, info in infos.items()
    }
    if default_config in configs:
        configs[default_config]["default"] = True
    MetadataConfigs(configs).to_dataset_card_data(card_data)
    return card_data


def _intro_section(provenance: Provenance) -> list[str]:
    lines = [_title(provenance)[1], ""]
    if provenance.kind == "simulated":
        lines += [
            "Every clip here was **simulated** by `covidx-us demo` (synthetic lung-ultrasound clips with synthetic",
            "overlays) and served by a local test site: no patient, no COVIDx-US clip, no clinical label. It shows",
            "that the pipeline (download, crop, inpainting, splits, export) works; do not train or evaluate anything",
            "on it.",
            "",
        ]
    elif provenance.kind == "custom":
        lines += [
            "Built from a **custom release** (a catalogue in the COVIDx-US file format that is not the pinned",
            "upstream release): counts, labels and splits are those of that catalogue, not of the COVIDx-US paper.",
            "",
        ]
    lines += [
        f"Lung-ultrasound (LUS) clips of the COVIDx-US benchmark ([arXiv:2103.10003]({ARXIV_URL}); COVID-19,",
        "pneumonia, normal, other), downloaded from their public sources and cleaned (crop to the ultrasound field of",
        "view, inpainting of overlays) by `covidx-us build`. Splits are grouped by patient (clips the upstream errata",
        "say are the same count as one) and stratified by class.",
        "",
        f"Built by {provenance.tool_text()}; release: {provenance.release_text()}.",
        "",
    ]
    return lines


def _configs_section(infos: Mapping[str, DatasetInfo]) -> list[str]:
    lines = ["## Configs", "", "| config | split | examples |", "|---|---|---|"]
    for name, info in infos.items():
        for split, split_info in info.splits.items():
            lines.append(f"| {name} | {split} | {split_info.num_examples} |")
    first = next(iter(infos), "frames-4class")
    lines += ["", "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("path/to/this/folder", "{first}")', "```", ""]
    return lines


def _fields_section(infos: Mapping[str, DatasetInfo]) -> list[str]:
    lines = ["## Fields", "", "| field | in configs | meaning |", "|---|---|---|"]
    present: dict[str, list[str]] = {}
    for name, info in infos.items():
        for column in info.features or {}:
            present.setdefault(column, []).append(name)
    for column, names in present.items():
        where = "all" if len(names) == len(infos) else ", ".join(names)
        lines.append(f"| `{column}` | {where} | {FIELDS.get(column, '')} |")
    return [*lines, ""]


def _counts_section(counts: Mapping[str, ConfigCounts]) -> list[str]:
    lines = ["## Counts per class and split", "",
             "Videos / frames / patients (videos configs: videos / patients). A patient is a distinct patient id; a "
             "clip without one counts as its own patient.", ""]
    warnings = []
    for name, config in counts.items():
        frames = name.startswith("frames")
        splits = list(config.splits)
        lines += [f"**{name}**", "", "| class | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
        for c in config.classes:
            cells = []
            for split in splits:
                n = config.splits[split].get(c, ClassCount(0, 0, 0))
                cells.append(f"{n.videos} / {n.examples} / {n.patients}" if frames else f"{n.videos} / {n.patients}")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
        warnings += split_warnings(name, config.videos_per_split(), config.classes)
    if warnings:
        lines += ["Warnings: metrics on these splits say little.", ""]
        lines += [f"- {w}" for w in warnings] + [""]
    return lines


def _sources_section(counts: Mapping[str, ConfigCounts]) -> list[str]:
    config = max(counts.values(), key=lambda c: len(c.classes), default=None)  # the widest task (4class if built)
    if config is None or not config.sources:
        return []
    sources = [s for s in SOURCE_INFO if any(s in by for by in config.sources.values())]
    sources += sorted({s for by in config.sources.values() for s in by} - set(sources))
    lines = ["## Classes by source", "",
             "Videos per class and source. **Labels are confounded with sources and devices:** most classes come",
             "mostly from a few sources, each with its own scanners, presets and overlays, so a model can learn the",
             "source instead of the disease. Check any result per source before trusting it.", "",
             "| class | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
    for c in config.classes:
        lines.append(f"| {c} | " + " | ".join(str(config.sources.get(c, {}).get(s, 0)) for s in sources) + " |")
    return [*lines, ""]


def _uses_section() -> list[str]:
    return [
        "## Uses",
        "",
        "Research on lung-ultrasound image and clip classification, on overlay removal and on data pipelines:",
        "benchmarks that cite COVIDx-US, with splits that never share a patient.",
        "",
        "## Out of scope",
        "",
        "**This is not a diagnostic tool**, and nothing trained on it is one. Do not use it, or models trained on",
        "it, to diagnose, triage or treat anyone. Sources without a stated licence allow no use beyond research.",
        "",
        "## Limitations",
        "",
        "- Labels are confounded with sources and devices (see *Classes by source*).",
        "- Frames of one clip are strongly correlated: count clips (and patients), not frames, when judging a",
        "  result; the splits are by patient for that reason.",
        "- Few patients: small splits give noisy metrics; the k-fold split (`--split kfold`) helps.",
        "- Labels are the release's (clip-level, from the publishing site), not a clinical reference standard.",
        "- Inpainting removes overlays but leaves its own traces near where they were.",
        "- Some sources are gone; a build says which clips it could not download (Provenance).",
        "",
    ]


def _licences_section(sources: Mapping[str, int]) -> list[str]:
    lines = [
        "## Licences",
        "",
        "The clips are not covered by this project's licence: each keeps its source's terms, as stated by the",
        f"upstream COVIDx-US README ({LICENSE_LINK}). Where none is stated, ask the source before any use beyond",
        "research.",
        "",
        "| source | clips in this build | licence |",
        "|---|---|---|",
    ]
    for source, (display, licence) in SOURCE_INFO.items():
        if sources.get(source):
            lines.append(f"| {display} (`{source}`) | {sources[source]} | {licence} |")
    lines += ["", "The release files (labels, crop and mask metadata) come from nrc-cnrc/COVID-US under GNU AGPL-3.0.",
              ""]
    return lines


_LOCAL_HOSTS = ("localhost",)


def public_value(value: object) -> object:
    """``value`` with loopback/private URLs and absolute local paths replaced (the card names no local place)."""
    if isinstance(value, Mapping):
        return {k: public_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public_value(v) for v in value]
    if not isinstance(value, str):
        return value
    if "://" in value:
        host = urllib.parse.urlsplit(value).hostname or ""
        try:
            local = ipaddress.ip_address(host).is_private or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host in _LOCAL_HOSTS or host.endswith(".local")
        return "(a local mirror)" if local or value.startswith("file:") else value
    if os.path.isabs(value) or value.startswith("~"):
        return "(a local path)"
    return value


def _parameters_lines(parameters: Mapping[str, Mapping[str, object]]) -> list[str]:
    """The parameters once: those every config shares, then what each config sets differently."""
    params = {name: dict(public_value(dict(p))) for name, p in parameters.items()}  # type: ignore[arg-type]
    if not params:
        return ["- Parameters: not recorded", ""]
    keys = sorted({k for p in params.values() for k in p})
    shared = {k: next(iter(params.values())).get(k) for k in keys
              if len({json.dumps(p.get(k), sort_keys=True, default=str) for p in params.values()}) == 1}
    lines = ["- Parameters (shared by every config):", "", "```json",
             json.dumps(shared, indent=2, sort_keys=True, default=str), "```", ""]
    differing = {name: {k: v for k, v in p.items() if k not in shared} for name, p in params.items()}
    if any(differing.values()):
        lines += ["- Parameters that differ per config:", ""]
        lines += [f"  - {name}: `{json.dumps(d, sort_keys=True, default=str)}`" for name, d in differing.items()]
        lines.append("")
    else:
        lines += ["- Every config was built with these parameters.", ""]
    return lines


def _provenance_section(provenance: Provenance) -> list[str]:
    lines = [
        "## Provenance",
        "",
        f"- Built by: {provenance.tool_text()}",
        f"- Release: {provenance.release_text()}",
        f"- Download manifest sha256: {provenance.manifest_sha256 or 'not recorded'}",
    ]
    if provenance.missing_videos:
        lines.append(
            f"- Missing videos left out ({len(provenance.missing_videos)}): " + ", ".join(provenance.missing_videos)
        )
    lines += ["- Croissant metadata: `croissant.json`", ""]
    return lines + _parameters_lines(provenance.parameters)  # type: ignore[arg-type]


def _citation_section() -> list[str]:
    return ["## Citation", "", f"COVIDx-US: {ARXIV_URL}", "", "```bibtex", CITATION, "```", ""]


def card_text(
    infos: Mapping[str, DatasetInfo],
    sources: Mapping[str, int],
    provenance: Provenance,
    default_config: str | None = None,
    counts: Mapping[str, ConfigCounts] | None = None,
) -> str:
    """The README.md (YAML header + prose) for the given per-config infos (``counts``: :func:`config_counts`)."""
    card_data = _card_data(infos, provenance, default_config)
    counts = counts or {}
    lines = [
        *_intro_section(provenance),
        *_configs_section(infos),
        *_fields_section(infos),
        *(_counts_section(counts) if counts else []),
        *_sources_section(counts),
        *_uses_section(),
        *_licences_section(sources),
        *_provenance_section(provenance),
        *copies_section(provenance),
        *_citation_section(),
    ]
    return f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)


def card_metadata(folder: Path) -> dict[str, object]:
    """The YAML header of ``folder/README.md`` ({} when it has none)."""
    from huggingface_hub import metadata_load

    return metadata_load(Path(folder) / "README.md") or {}


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
        if Path(name).is_absolute() or ".." in Path(name).parts or name in ("README.md", CROISSANT_FILE, *builds):
            raise ExportError(f"invalid extra file name {name!r}: must be a new relative path inside {output_dir}")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        infos: dict[str, DatasetInfo] = {}
        sources: Counter[str] = Counter()
        counts: dict[str, ConfigCounts] = {}
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
            counts[name] = config_counts(ds_dict)
            for source, n in counts[name].source_totals.items():
                sources[source] = max(sources[source], n)
        (tmp / "README.md").write_text(card_text(infos, sources, provenance, default_config, counts),
                                       encoding="utf-8")
        (tmp / CROISSANT_FILE).write_text(croissant_json(infos, provenance, _title(provenance)[0]) + "\n",
                                          encoding="utf-8")
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
