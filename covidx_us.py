"""COVIDx-US as a Hugging Face ``datasets`` builder: configs, features, leak-free splits.

``datasets`` 5 no longer runs loading scripts, so this class is used directly and its output exported in the Hub's
own layout (``covidx-us build`` / :mod:`processing.hub.export`), which stock ``load_dataset`` reads::

    builder = CovidxUS(config_name="frames-4class", release_dir="path/to/COVID-US", mirrors=("http://.../",))
    builder.download_and_prepare()
    ds = builder.as_dataset()

Configs ``{frames,videos}-{binary,3class,4class}``: frames are the cleaned images (one example per kept frame),
videos the cleaned clips (one example per clip, bytes readable with ``datasets.Video``; decoding needs torchcodec and
stays optional). Every config carries the processing parameters, with the paper's defaults (every frame,
Navier-Stokes inpainting, PNG), and where the data comes from. Parameters are overridden as keyword arguments;
unknown names or values raise an error listing the valid ones.

``_split_generators`` runs catalogue -> download -> processing (results cached on disk, keyed by the parameters that
change them, in ``work_dir`` or else the download manager's cache) and assigns splits per video
(:mod:`processing.build.splits`, over the whole task so a video's split does not depend on which videos could be had).
``_generate_examples`` only reads the processed results.

Speed and crash safety: clips are processed in ``num_proc`` worker processes (default: every core), each clip's
record written last and atomically (:mod:`processing.build.processed`), so a second build with the same parameters
reuses every download and processed clip, a changed parameter redoes only what depends on it (inpaint method:
reprocessing, not downloading; split seed: splitting and export only), and a build killed at any point resumes
where it stopped. Results do not depend on ``num_proc``. Frames configs do not encode the clean video (only videos
configs use it; it is about a quarter of a clip's processing time), so a videos config built after a frames config
processes its clips again, while a frames config reuses a videos config's clips: ``covidx-us build`` builds the
videos configs first.

Crops and masks: ``crop="release"|"auto"`` and ``masks="release"|"auto"|"both"`` (default: the release's hand-made
crop rules and masks; a video without them falls back to automatic detection, :mod:`processing.pixels.autodetect`). User
mask files in ``mask_dirs`` or the project's ``masks/`` folder replace release masks of the same name (a clip is
reprocessed when the override masks it uses change); ``pointer_policy`` ("drop" or "mask") says what detected
pointers over the lung do.

Expected split sizes: ``dataset_infos.json`` holds, per config, the number of videos per split of the official v1.5
release at the default split parameters. A build at those parameters (official 1.5, every source, probe and class,
split "default", seed 0, nothing missing) that produces other numbers fails and says what differs; any other build
only logs the differences (processing parameters such as max_frames do not change the number of videos).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from processing.build.splits import SCHEMES, assign_splits, split_names
from processing.errors import (
    ClipError,
    CovidxError,
    DownloadError,
    InvalidChoiceError,
    check_choice,
    check_int,
    check_mirror,
    check_number,
)
from processing.fileutil import atomic_write, json_digest
from processing.progress import progress
from processing.project import data_path
from processing.vocabulary import (
    CITATION,
    CLASSES,
    CONFIG_NAMES,
    CROP_MODES,
    IMAGE_FORMATS,
    INPAINT_METHODS,
    MASK_MODES,
    POINTER_POLICIES,
    PROBES,
    SOURCES,
    TASKS,
    VERSIONS,
)

if TYPE_CHECKING:
    from processing.build.processed import ClipJob
    from processing.release.catalogue import Catalogue, Video
    from processing.sources.download import DownloadResult

log = logging.getLogger(__name__)

DATASET_INFOS_PATH = data_path("dataset_infos.json")
# User mask overrides in the project's masks/ folder (holds only a README unless the user adds masks); searched after
# the config's mask_dirs and before the release's masks.
PROJECT_MASK_DIR = data_path("masks")
# Bump when the processed outputs change for the same parameters. 3: PNGs by processing.pixels.png, x264 on one
# thread; 4: PNGs by ISA-L, Sub filter; 5: videos MagicYUV in .mov (were lossless H.264 in .mp4), same pixels;
# 6: PNGs by libdeflate level 2 (ISA-L's bytes were not always the same for the same pixels), same pixels.
PROCESSING_FORMAT = 6
# Parameters that change neither the examples nor the card's meaning: how fast, and where on this machine.
LOCAL_PARAMETERS = ("num_proc", "work_dir", "data_dir", "release_dir", "mask_dirs", "copy_registry")
# With num_proc unset, clips are processed in this process below this many source pixels (~5 s of work here):
# starting spawn workers costs ~0.5 s each and the simulated demo release is done serially sooner.
PARALLEL_MIN_PIXELS = 300_000_000

_DESCRIPTION = (
    "COVIDx-US lung-ultrasound clips (COVID-19, pneumonia, normal, other), downloaded from their public sources, "
    "cropped to the ultrasound sector and cleaned of overlays by inpainting."
)
_HOMEPAGE = "https://github.com/nrc-cnrc/COVID-US"


class ExpectedCountsError(CovidxError):
    """A default build produced other split sizes than dataset_infos.json records."""


@dataclasses.dataclass
class CovidxUSConfig(datasets.BuilderConfig):
    """One COVIDx-US config: the name picks frames/videos and the task; the rest are processing parameters.

    Frozen after construction (``datasets.BuilderConfig`` is not a frozen dataclass, so a frozen subclass cannot be
    declared; assignment raises instead). Change a parameter with :func:`dataclasses.replace`, which re-validates.

    Args:
        release: release version, one of ``processing.release.catalogue.VERSIONS`` (default "1.5").
        max_frames: at most this many frames per clip, evenly spaced (None: every frame, the paper's default).
        sample_hz: sample frames at this rate, e.g. 3.0 as POCOVID (None: every frame).
        sources, probes, classes: keep only these sources / probes / 4-class labels (None: all; classes from
            ``processing.release.catalogue.CLASSES``, e.g. ("covid", "normal")).
        inpaint: "ns" (Navier-Stokes, the paper) or "telea" (upstream code).
        image_format: "png" (lossless, default) or "jpeg".
        split: "default" (train/validation/test 70/15/15 by patient), "none" (one train split) or "kfold".
        num_folds, fold: k-fold parameters (fold None: splits fold0..fold{k-1}; fold i: train/test for fold i).
        seed: split seed.
        release_dir: a folder holding the release files (None: the pinned upstream files, fetched and verified).
        custom_release: the release_dir is the user's own release in the upstream format (not the official one).
        mirrors: URL prefixes tried after the original hosts.
        data_dir: a folder of manually downloaded clips (``<video id>.<ext>`` or original file names).
        work_dir: where downloads and processed results are cached (None: under the download manager's cache).
        allow_missing: build without the videos that could not be downloaded (named in the log and the card).
        download_delay, download_timeout, download_retries: politeness and patience per request.
        use_original: try the original hosts first (False: mirrors and data_dir only, e.g. for hermetic tests).
        copies: after the originals, mirrors and data_dir, recover a video from its registered public copy
            (``metadata/copies.csv``, sha256-verified). A copy is not the original file: where its place in the
            original is known the release's crop and masks are moved into it, otherwise the automatic crop and
            masks are used; examples say ``origin="copy"`` and name the copy's repository and commit.
        copy_registry: another registry CSV in the same format (None: the project's ``metadata/copies.csv``).
        crop: "release" (the release's crop rules, default) or "auto" (detected field of view).
        masks: "release" (the release's masks, default), "auto" (detected overlays) or "both" (their union).
            A video without a crop rule or mask plan uses "auto" for that part whatever is asked.
        mask_dirs: folders of user mask files overriding release masks of the same name (``.png`` or ``.jpg``),
            searched in order, then the project's ``masks/`` folder (PROJECT_MASK_DIR), then the release.
        pointer_policy: with masks "auto"/"both", a frame whose detected pointer touches the lung is dropped
            ("drop", default, as the release did) or has its pointer masked and inpainted ("mask").
        num_proc: worker processes for clip processing (None: every core, or this process alone when the clips
            to process hold under PARALLEL_MIN_PIXELS; 1: in this process). Results do not depend on it.
    """

    release: str = "1.5"
    max_frames: int | None = None
    sample_hz: float | None = None
    sources: tuple[str, ...] | None = None
    probes: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    inpaint: str = "ns"
    image_format: str = "png"
    split: str = "default"
    num_folds: int = 5
    fold: int | None = None
    seed: int = 0
    release_dir: str | None = None
    custom_release: bool = False
    mirrors: tuple[str, ...] = ()
    work_dir: str | None = None
    allow_missing: bool = False
    download_delay: float = 1.0
    download_timeout: float = 30.0
    download_retries: int = 4
    use_original: bool = True
    copies: bool = False
    copy_registry: str | None = None
    crop: str = "release"
    masks: str = "release"
    mask_dirs: tuple[str, ...] = ()
    pointer_policy: str = "drop"
    num_proc: int | None = None

    def __post_init__(self) -> None:
        check_choice("config", self.name, CONFIG_NAMES)
        super().__post_init__()
        check_choice("release", self.release, VERSIONS)
        set_ = object.__setattr__  # normalising before the instance freezes
        for field_name, valid in (("sources", SOURCES), ("probes", PROBES), ("classes", CLASSES)):
            values = getattr(self, field_name)
            if values is not None:
                values = (values,) if isinstance(values, str) else tuple(values)
                if not values:
                    raise CovidxError(f"{field_name} is empty; leave it unset (None) for all of {', '.join(valid)}")
                for value in values:
                    check_choice("class" if field_name == "classes" else field_name[:-1], value, valid)
                set_(self, field_name, tuple(sorted(set(values), key=valid.index)))
        check_choice("inpaint", self.inpaint, INPAINT_METHODS)
        check_choice("image_format", self.image_format, IMAGE_FORMATS)
        check_choice("split", self.split, SCHEMES)
        check_choice("crop", self.crop, CROP_MODES)
        check_choice("masks", self.masks, MASK_MODES)
        check_choice("pointer_policy", self.pointer_policy, POINTER_POLICIES)
        if isinstance(self.mask_dirs, str | os.PathLike):
            set_(self, "mask_dirs", (self.mask_dirs,))
        set_(self, "mask_dirs", tuple(str(d) for d in self.mask_dirs))
        check_int("num_proc", self.num_proc, minimum=1, none="every core")
        split_names(self.split, self.num_folds, self.fold)  # validates num_folds and fold
        check_int("max_frames", self.max_frames, minimum=1, none="every frame")
        check_number("sample_hz", self.sample_hz, positive=True, none="every frame")
        check_int("seed", self.seed)
        if self.custom_release and not self.release_dir:
            raise CovidxError("custom_release needs release_dir: the folder holding your release files")
        check_number("download_delay", self.download_delay, minimum=0)
        check_number("download_timeout", self.download_timeout, positive=True)
        check_int("download_retries", self.download_retries, minimum=0)
        set_(self, "mirrors", (self.mirrors,) if isinstance(self.mirrors, str) else tuple(self.mirrors))
        for prefix in self.mirrors:
            check_mirror(prefix)
        for path_field in ("release_dir", "work_dir", "data_dir", "copy_registry"):
            if getattr(self, path_field) is not None:
                set_(self, path_field, str(getattr(self, path_field)))
        set_(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}: CovidxUSConfig is frozen")
        object.__setattr__(self, name, value)

    @property
    def kind(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def task(self) -> str:
        return self.name.split("-", 1)[1]

    def parameters(self) -> dict[str, Any]:
        """The parameters (every field but the name, version, description and data_files), JSON-ready."""
        skip = {"name", "version", "description", "data_files"}
        out = {}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def card_parameters(self) -> dict[str, Any]:
        """:meth:`parameters` without the local ones (LOCAL_PARAMETERS): what the dataset card records."""
        return {k: v for k, v in self.parameters().items() if k not in LOCAL_PARAMETERS}

    def processing_key(self) -> dict[str, Any]:
        """The parameters that change processed frames and clips (not the task, split or data location)."""
        key = {"format": PROCESSING_FORMAT, "max_frames": self.max_frames, "sample_hz": self.sample_hz,
               "inpaint": self.inpaint, "image_format": self.image_format}
        # Only when not the default, so caches made before these parameters existed stay valid.
        key.update({k: getattr(self, k) for k in ("crop", "masks") if getattr(self, k) != "release"})
        if self.masks in ("auto", "both"):  # the policy changes only detected masks
            key["pointer_policy"] = self.pointer_policy
        # User mask overrides (mask_dirs) are not here: each clip's fingerprint holds the digests of those it uses.
        return key

    def all_mask_dirs(self) -> tuple[Path, ...]:
        """Where user mask overrides are looked for, in order: mask_dirs, then the project's masks/ folder."""
        return (*(Path(d) for d in self.mask_dirs), PROJECT_MASK_DIR)

    def workers(self) -> int:
        """The number of worker processes: num_proc, or every core this process may use."""
        if self.num_proc is not None:
            return self.num_proc
        try:
            return len(os.sched_getaffinity(0)) or 1
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1

    def counts_are_checked(self) -> bool:
        """Whether the number of videos per split must equal dataset_infos.json (see the module docstring)."""
        return (self.release == "1.5" and not self.custom_release and self.sources is None and self.probes is None
                and self.classes is None and self.split == "default" and self.seed == 0)


def _default_config(name: str) -> CovidxUSConfig:
    kind, task = name.split("-", 1)
    what = "cleaned frames (one example per frame)" if kind == "frames" else "cleaned clips (one example per clip)"
    return CovidxUSConfig(name=name, version=datasets.Version("1.5.0"),
                          description=f"COVIDx-US {what}, {task} labels {', '.join(TASKS[task])}.")


def features_for(name: str) -> datasets.Features:
    """The features of config ``name``."""
    check_choice("config", name, CONFIG_NAMES)
    kind, task = name.split("-", 1)
    label = datasets.ClassLabel(names=list(TASKS[task]))
    common = {
        "video_id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "probe": datasets.Value("string"),
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
    }
    tail = {"patient_id": datasets.Value("string"), "luss": datasets.Value("int8"), "release": datasets.Value("string"),
            # where the clip came from: original / mirror / manual / copy; for a copy, its repository and commit
            "origin": datasets.Value("string"), "copy_repository": datasets.Value("string"),
            "copy_commit": datasets.Value("string")}
    if kind == "frames":
        return datasets.Features({
            "image": datasets.Image(), "label": label, "video_id": common["video_id"],
            "frame_index": datasets.Value("int32"), "timestamp": datasets.Value("float32"),
            "source": common["source"], "probe": common["probe"], "width": common["width"],
            "height": common["height"], "original_width": datasets.Value("int32"),
            "original_height": datasets.Value("int32"), **tail,
        })
    return datasets.Features({
        "video": datasets.Video(), "label": label, **common, "fps": datasets.Value("float32"),
        "num_frames": datasets.Value("int32"), **tail,
    })


def load_expected(path: Path = DATASET_INFOS_PATH) -> dict[str, dict[str, int]]:
    """Per config, the expected number of videos per split at default parameters (from dataset_infos.json)."""
    infos = json.loads(Path(path).read_text(encoding="utf-8"))
    return {name: dict(info["expected_videos"]["splits"]) for name, info in infos.items()}


def compare_counts(expected: Mapping[str, int], actual: Mapping[str, int]) -> list[str]:
    """Human-readable differences between expected and actual videos per split ([] when equal)."""
    return [f"{split}: expected {expected.get(split, 0)} videos, built {actual.get(split, 0)}"
            for split in sorted(set(expected) | set(actual)) if expected.get(split, 0) != actual.get(split, 0)]


def download_digest(downloads: Any) -> str:
    """sha256 of the download manifest of a build: sorted (video id, status, sha256, size) rows."""
    return json_digest(sorted(set(map(tuple, downloads))))


def _media(name: str, data: bytes) -> dict[str, Any]:
    # datasets keeps only the path when it names an existing file: never let a stray file in cwd drop the bytes.
    return {"bytes": data, "path": None if os.path.exists(name) else name}


def check_counts(config: CovidxUSConfig, video_counts: Mapping[str, int],
                 missing: Mapping[str, str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """How the videos per split differ from dataset_infos.json (() when equal, or when it is absent).

    Raises :class:`ExpectedCountsError` when they differ in a default build with nothing missing
    (:meth:`CovidxUSConfig.counts_are_checked`); other builds only return the differences (covidx-us build says
    them once for every config it built).
    """
    expected = load_expected().get(config.name, {}) if DATASET_INFOS_PATH.is_file() else {}
    diff = compare_counts(expected, video_counts)
    if diff and config.counts_are_checked() and not missing:
        raise ExpectedCountsError(f"{config.name}: the build differs from dataset_infos.json: {'; '.join(diff)}")
    if diff:
        log.debug("%s: non-default parameters, split sizes differ from dataset_infos.json: %s", config.name,
                  "; ".join(diff))
    return tuple(diff)


def _stop_or_warn(config: CovidxUSConfig, missing: Mapping[str, str], total: int, hint: str) -> None:
    """Videos could not be had: stop before anything is exported, or (allow_missing) say which are left out."""
    listing = "; ".join(f"{vid} ({reason})" for vid, reason in missing.items())
    if not config.allow_missing:
        raise DownloadError(f"{len(missing)} of {total} videos could not be had: {listing}. "
                            + (f"{hint}. " if hint else "")
                            + "Nothing was exported; fix the sources, give --mirror/--data-dir, or pass "
                            "--allow-missing to build without them")
    log.warning("building without %d missing videos: %s", len(missing), listing)
    if hint:
        log.warning("%s", hint)


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What a build of one config made (:meth:`CovidxUS.build`); ``covidx-us build`` reads it for the card and
    build_record.json, and :meth:`split_generators` hands its processed clips to ``_generate_examples``."""

    config: CovidxUSConfig
    catalogue: Catalogue
    videos: tuple[Video, ...]  # the config's videos, those missing included
    split_of: Mapping[str, str]  # video id -> split, for ``videos``
    downloads: Mapping[str, DownloadResult]  # video id -> its download (where the clip came from)
    records: Mapping[str, Mapping[str, Any]]  # video id -> {"plan", "record"} of each processed clip
    missing: Mapping[str, str]  # video id -> why it is left out (not downloaded, or its processing failed)
    processed_now: tuple[str, ...]  # clips processed by this build
    reused: tuple[str, ...]  # clips whose processed record came from the cache
    recoverable: tuple[str, ...]  # missing videos a rerun with copies=True would try to recover
    count_differences: tuple[str, ...] = ()  # how the split sizes differ from dataset_infos.json

    @property
    def video_counts(self) -> dict[str, int]:
        """Built videos per split, every split of the config's scheme included."""
        config = self.config
        counts = Counter(self.split_of[vid] for vid in self.records)
        return {s: counts.get(s, 0) for s in split_names(config.split, config.num_folds, config.fold)}

    @property
    def download_rows(self) -> tuple[tuple[str, str, str | None, int | None], ...]:
        """(video id, status, sha256, size) per video, sorted: what :func:`download_digest` hashes."""
        return tuple(sorted((r.video_id, r.status, r.sha256, r.size) for r in self.downloads.values()))

    def video_entries(self) -> dict[str, dict[str, Any]]:
        """Video id -> its download, plan, record and reason (build_record.json's ``videos``)."""
        entries = {vid: {"download": _download_entry(r), "plan": None, "record": None,
                         "reason": self.missing.get(vid)} for vid, r in self.downloads.items()}
        for vid, data in self.records.items():
            entries[vid].update(plan=data["plan"], record=data["record"])
        return entries

    def split_generators(self) -> list[datasets.SplitGenerator]:
        """One generator per split that holds a built video; its ``items`` are what ``_generate_examples`` reads."""
        config, catalogue = self.config, self.catalogue
        release = catalogue.version if catalogue.official else f"{catalogue.version}+custom"
        generators = []
        for split in split_names(config.split, config.num_folds, config.fold):
            items = [{"video": _video_fields(v, config.task, release, self.downloads[v.id]),
                      "record": self.records[v.id]["record"]}
                     for v in self.videos if v.id in self.records and self.split_of[v.id] == split]
            if not items:  # datasets cannot hold an empty split; say so rather than fail later
                log.warning("%s: split %s has no video in this build; it is left out", config.name, split)
                continue
            generators.append(datasets.SplitGenerator(name=split, gen_kwargs={"items": items}))
        return generators


class CovidxUS(datasets.GeneratorBasedBuilder):
    """COVIDx-US lung-ultrasound frames or clips; see the module docstring."""

    BUILDER_CONFIG_CLASS = CovidxUSConfig
    BUILDER_CONFIGS = [_default_config(name) for name in CONFIG_NAMES]
    DEFAULT_CONFIG_NAME = "frames-4class"

    # Filled by _split_generators: what the build made, for the caller (covidx-us build writes it into the card).
    result: BuildResult | None = None
    # Set by the caller to share between the configs of one build: video id -> the DownloadResult of a video found
    # missing earlier in that build (same download options), which is then not looked for again.
    known_missing: dict[str, DownloadResult] | None = None

    def _create_builder_config(self, config_name=None, custom_features=None, config_id=None, **config_kwargs):
        # datasets would setattr() overrides onto the shared default config; build a validated copy instead.
        name = config_name or self.DEFAULT_CONFIG_NAME
        check_choice("config", name, CONFIG_NAMES)
        valid = [f.name for f in dataclasses.fields(CovidxUSConfig) if f.name not in ("name", "version")]
        for key in config_kwargs:
            if key not in valid:
                raise InvalidChoiceError("parameter", key, valid)
        base = self.builder_configs[name]
        overrides = {k: v for k, v in config_kwargs.items() if v is not None}
        config = dataclasses.replace(base, **overrides) if overrides else base
        if config_id is None:
            changed = {k: v for k, v in config.parameters().items() if v != base.parameters()[k] and k != "num_proc"}
            config_id = name if not changed else f"{name}-{json_digest(changed)[:16]}"
        return config, config_id

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description=_DESCRIPTION, features=features_for(self.config.name),
                                    homepage=_HOMEPAGE, citation=CITATION)

    # -- catalogue -> download -> processing

    def _work_dir(self, dl_manager: Any) -> Path:
        if self.config.work_dir:
            return Path(self.config.work_dir)
        cache = getattr(getattr(dl_manager, "download_config", None), "cache_dir", None) or self._cache_downloaded_dir
        return Path(cache) / "covidx_us"

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        self.result = self.build(self._work_dir(dl_manager))
        return self.result.split_generators()

    def build(self, work: Path) -> BuildResult:
        """Catalogue -> splits -> downloads -> processed clips, cached under ``work``; checks the split sizes.

        Raises :class:`~processing.errors.DownloadError` when videos could not be had and ``allow_missing`` is off,
        :class:`ExpectedCountsError` when a default build has other split sizes than dataset_infos.json.
        """
        from processing.sources.download import would_recover_text

        config = self.config
        catalogue = self._catalogue(work)
        split_of, videos = self._videos(catalogue)
        results, recoverable = self._download(catalogue, videos, work)
        missing = {r.video_id: r.reason or r.status for r in results if r.status == "missing" or r.path is None}
        jobs = {video.id: self._job(catalogue, video, result, work)
                for video, result in zip(videos, results, strict=True) if video.id not in missing}
        records, failed, reused = self._process(jobs)
        missing.update(failed)
        if missing:
            _stop_or_warn(config, missing, len(videos), would_recover_text(recoverable))
        result = BuildResult(
            config=config, catalogue=catalogue, videos=videos, split_of={v.id: split_of[v.id] for v in videos},
            downloads={r.video_id: r for r in results}, records=records, missing=missing,
            processed_now=tuple(sorted(set(jobs) - set(reused))), reused=reused,
            recoverable=recoverable)
        return dataclasses.replace(result, count_differences=check_counts(config, result.video_counts, missing))

    def _catalogue(self, work: Path) -> Catalogue:
        from processing.release.catalogue import load_catalogue

        config = self.config
        catalogue = load_catalogue(config.release, Path(config.release_dir) if config.release_dir else None,
                                   custom=config.custom_release, cache_dir=work / "release")
        if config.copies and self._registry(catalogue) is None:
            raise CovidxError("copies=True with a custom release needs copy_registry: the project's registry of "
                              "copies names the official catalogue's videos")
        return catalogue

    def _videos(self, catalogue: Catalogue) -> tuple[dict[str, str], tuple[Video, ...]]:
        """(video id -> split over the whole task, the config's videos): a video's split does not depend on the
        source/probe/class filter or on missing clips."""
        config = self.config
        task_videos = catalogue.filter(task=config.task).videos
        splits = assign_splits([v.group for v in task_videos], [v.task_label(config.task) for v in task_videos],
                               scheme=config.split, seed=config.seed, num_folds=config.num_folds, fold=config.fold)
        videos = catalogue.filter(task=config.task, sources=config.sources, probes=config.probes,
                                  classes=config.classes).videos
        if not videos:
            raise CovidxError(f"no video of release {config.release} matches sources={config.sources} "
                              f"probes={config.probes} classes={config.classes} for task {config.task}")
        return {v.id: s for v, s in zip(task_videos, splits, strict=True)}, videos

    def _download(self, catalogue: Catalogue, videos: tuple[Video, ...],
                  work: Path) -> tuple[list[DownloadResult], tuple[str, ...]]:
        """Each video's download (those found missing earlier in this build not looked for again), and the missing
        videos a rerun with copies=True would recover."""
        from processing.sources.download import DownloadOptions, copies_would_recover, download_videos

        config = self.config
        registry = self._registry(catalogue)
        options = DownloadOptions(cache_dir=work, mirrors=config.mirrors,
                                  data_dir=Path(config.data_dir) if config.data_dir else None,
                                  delay=config.download_delay, timeout=config.download_timeout,
                                  retries=config.download_retries, use_original=config.use_original,
                                  copies=config.copies, copy_registry=registry)
        known = self.known_missing if self.known_missing is not None else {}
        todo = [v for v in videos if v.id not in known]
        if len(todo) < len(videos):
            log.info("%s: %d videos found missing earlier in this build are not looked for again", config.name,
                     len(videos) - len(todo))
        fetched = {r.video_id: r for r in download_videos(todo, options)} if todo else {}
        results = [fetched[v.id] if v.id in fetched else known[v.id] for v in videos]
        known.update({vid: r for vid, r in fetched.items() if r.status == "missing" or r.path is None})
        recoverable = () if config.copies or registry is None else tuple(copies_would_recover(results, registry))
        return results, recoverable

    def _registry(self, catalogue: Catalogue) -> Path | None:
        """The registry of copies: copy_registry, else the project's (its ids are the official catalogue's, so a
        custom release has none unless given one)."""
        from processing.release.copies import REGISTRY_PATH

        if self.config.copy_registry:
            return Path(self.config.copy_registry)
        return REGISTRY_PATH if catalogue.official else None

    def _copy_map(self, catalogue: Catalogue, video: Video, result: DownloadResult) -> tuple[str | None, Any]:
        """(copy_plan, CopyMap) of a download: (None, None) for an original file; "mapped" with the copy's place
        in the original when the registry knows it, else "auto" (the automatic crop and masks)."""
        from processing.pixels.copymap import CopyMap
        from processing.release.copies import load_copies
        from processing.windows import Window

        if result.status != "copy":
            return None, None
        registry = self._registry(catalogue)
        rows = load_copies(registry) if registry else load_copies()
        copy = next((c for c in rows.get(video.id, ()) if c.sha256 == result.sha256), None)
        if copy is None or not copy.mapped:
            return "auto", None
        top, left, size = copy.crop
        return "mapped", CopyMap(crop=Window(left, top, size, size), first=copy.frame_range[0], timing=copy.timing,
                                 original_fps=video.expected.fps, copy_fps=copy.fps, width=copy.width,
                                 height=copy.height, frames=copy.frames)

    def _job(self, catalogue: Catalogue, video: Video, result: DownloadResult, work: Path) -> ClipJob:
        """The processing job of one downloaded clip (:class:`processing.build.processed.ClipJob`)."""
        from processing.build.processed import ClipJob, cache_root
        from processing.pixels.pipeline import ProcessingOptions

        config = self.config
        copy_plan, copy_map = self._copy_map(catalogue, video, result)
        # A copy whose place in the original is unknown cannot use the release's crop and masks (they are in the
        # original's pixels and frame numbers): it gets the automatic ones.
        crop, masks = ("auto", "auto") if copy_plan == "auto" else (config.crop, config.masks)
        mask_dir = catalogue.release_dir / "data" / "mask"
        for name in video.masks.mask_names(video.id, video.probe):
            mask_dir = catalogue.mask_path(name).parent  # fetched and verified on first use
        # Only videos-* examples are made from the clean video (the lossless encode is ~a quarter of a clip's
        # processing time), and none from the cropped one. Frames are the same bytes either way.
        need_video = config.kind == "videos"
        options = ProcessingOptions(max_frames=config.max_frames, sample_hz=config.sample_hz,
                                    inpaint=config.inpaint, image_format=config.image_format,
                                    write_videos=need_video, write_cropped=False,
                                    mask_dirs=config.all_mask_dirs())
        return ClipJob(video=video, source=Path(result.path), source_sha256=result.sha256, mask_dir=mask_dir,
                       out_root=cache_root(work, config.processing_key()), options=options,
                       crop=crop, masks=masks, official=catalogue.official, need_video=need_video,
                       pointer_policy=config.pointer_policy, copy_plan=copy_plan, copy=copy_map)

    def _process(self, jobs: Mapping[str, ClipJob]) -> tuple[dict[str, dict[str, Any]], dict[str, str],
                                                              tuple[str, ...]]:
        """Records of every job (cached ones reused, the others processed in ``num_proc`` processes), the
        reasons of the clips that failed, and the video ids whose record came from the cache."""
        from processing.build.processed import cached_record, init_worker, mark_cache, run_job

        records: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        todo = []
        for root in {job.out_root for job in jobs.values()}:  # one folder per processing key
            mark_cache(root, self.config.processing_key())
        for vid, job in jobs.items():
            cached = cached_record(job)
            if cached is not None:
                records[vid] = cached
            else:
                todo.append(job)
        reused = tuple(sorted(records))
        if todo:
            log.info("%s: processing %d clips (%d reused from the cache)", self.config.name, len(todo), len(records))
        workers = min(self.config.workers(), len(todo))
        if self.config.num_proc is None and _source_pixels(todo) < PARALLEL_MIN_PIXELS:
            workers = 1  # starting worker processes costs more than it saves on this little work (the demo)
        desc = f"process {self.config.name}"
        if workers <= 1:
            for job in progress(todo, desc=desc, total=len(todo), unit="clip"):
                try:
                    records[job.video.id] = run_job(job)
                except ClipError as exc:
                    failed[job.video.id] = f"processing failed: {exc}"
        else:
            # spawn: workers start clean (no copied locks of this process's threads); one OpenCV thread each.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                                     initargs=(os.getpid(),)) as pool:
                futures = {pool.submit(run_job, job): job for job in todo}
                for future in progress(as_completed(futures), desc=desc, total=len(futures), unit="clip"):
                    vid = futures[future].video.id
                    try:
                        records[vid] = future.result()
                    except ClipError as exc:
                        failed[vid] = f"processing failed: {exc}"
        return {vid: records[vid] for vid in jobs if vid in records}, failed, reused

    # -- examples: read processed results only

    def _generate_examples(self, items: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
        from PIL import Image

        frames = self.config.kind == "frames"
        for item in items:
            video, record = item["video"], item["record"]
            if not frames:
                clean = Path(record["clean_video"])
                width, height = record["crop_size"]
                yield video["video_id"], {
                    "video": _media(clean.name, clean.read_bytes()), **video, "width": width, "height": height,
                    "fps": record["fps"], "num_frames": record["frames_read"] - record["frames_deleted"],
                }
                continue
            source_w, source_h = record["source_size"]
            for index, timestamp, path_text, _masked in record["frames"]:
                path = Path(path_text)
                with Image.open(path) as image:  # reads the header only
                    width, height = image.size
                yield f"{video['video_id']}/{index}", {
                    "image": _media(path.name, path.read_bytes()), **video, "frame_index": index,
                    "timestamp": timestamp, "width": width, "height": height,
                    "original_width": source_w, "original_height": source_h,
                }


def _source_pixels(jobs: Any) -> int:
    """Pixels to decode for ``jobs``, from the release's expected sizes (300 frames where the count is unknown)."""
    total = 0
    for job in jobs:
        expected = job.video.expected
        total += expected.width * expected.height * (expected.frame_count or 300)
    return total


def _download_entry(result: Any) -> dict[str, Any]:
    entry = {"status": result.status, "origin": result.origin, "reason": result.reason, "url": result.url,
             "path": str(result.path) if result.path else None, "sha256": result.sha256}
    if result.copy:
        entry["copy"] = dict(result.copy)
    return entry


def _video_fields(video: Any, task: str, release: str, result: Any) -> dict[str, Any]:
    copy = result.copy or {}
    return {"label": video.task_label(task), "video_id": video.id, "source": video.source, "probe": video.probe,
            "patient_id": video.patient_id, "luss": video.luss, "release": release, "origin": result.origin,
            "copy_repository": copy.get("repository"), "copy_commit": copy.get("commit")}


def expected_video_counts(catalogue: Any, name: str) -> dict[str, int]:
    """Videos per split of config ``name`` at default split parameters (what dataset_infos.json records)."""
    base = _default_config(name)
    videos = catalogue.filter(task=base.task).videos
    splits = assign_splits([v.group for v in videos], [v.task_label(base.task) for v in videos],
                           scheme=base.split, seed=base.seed, num_folds=base.num_folds, fold=base.fold)
    counts = Counter(splits)
    return {s: counts.get(s, 0) for s in split_names(base.split, base.num_folds, base.fold)}


def dataset_infos(catalogue: Any) -> dict[str, Any]:
    """The content of dataset_infos.json for ``catalogue`` (the official v1.5 release)."""
    out = {}
    for name in CONFIG_NAMES:
        base = _default_config(name)
        out[name] = {
            "config_name": name,
            "description": base.description,
            "features": features_for(name).to_dict(),
            "expected_videos": {"release": catalogue.version, "commit": catalogue.commit, "split": base.split,
                                "seed": base.seed, "splits": expected_video_counts(catalogue, name)},
        }
    return out


if __name__ == "__main__":  # python covidx_us.py RELEASE_DIR: regenerate dataset_infos.json
    import sys

    from processing.release.catalogue import load_catalogue

    cat = load_catalogue("1.5", Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    with atomic_write(DATASET_INFOS_PATH) as tmp_path:
        tmp_path.write_text(json.dumps(dataset_infos(cat), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {DATASET_INFOS_PATH}")
