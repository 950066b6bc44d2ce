"""Words every layer shares, defined once. Imports nothing.

The command line reads its choices from here, so that ``covidx-us <cmd> --help`` answers without loading the
layers that use them (numpy, OpenCV, datasets: about 2 s); the modules that own an idea import its words from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

DEFAULT_OUTPUT = Path("covidx_us")  # the export folder `build` writes and `report`, `push` and train.py read
DEFAULT_DEMO_OUTPUT = Path("covidx_us_demo")  # the export folder `covidx-us demo` writes

# The release (processing.release.catalogue)
LICENCE_NOT_STATED = "not stated"


class SourceInfo(NamedTuple):
    """What the card and the catalogue say about a source; its download rules live in its engine
    (processing/sources/<engine>.py)."""

    display_name: str
    licence: str  # as the upstream README states it (../shared ORIGIN.md); a row's own `license` column wins


# Every source of the release, by its id spelling (the catalogue's `source`), in the release's order. Adding a
# source: one entry here and one engine file in processing/sources/ (see that package's docstring).
SOURCE_INFO: dict[str, SourceInfo] = {
    "butterfly": SourceInfo("Butterfly Network", LICENCE_NOT_STATED),
    "grepmed": SourceInfo("GrepMed", LICENCE_NOT_STATED),
    "litfl": SourceInfo("Life in the Fast Lane (LITFL)", "CC BY-NC-SA 4.0"),
    "pocusatlas": SourceInfo("The POCUS Atlas", "CC BY-NC 4.0"),
    "radio": SourceInfo("Radiopaedia", "CC BY-NC-SA 3.0"),
    "core": SourceInfo("CoreUltrasound", LICENCE_NOT_STATED),
    "uf": SourceInfo("University of Florida", LICENCE_NOT_STATED),
    "paper": SourceInfo("Publications' supplementary material", LICENCE_NOT_STATED),
    "clarius": SourceInfo("Clarius", LICENCE_NOT_STATED),
}
SOURCES = tuple(SOURCE_INFO)
CLASSES = ("covid", "pneumonia", "normal", "other")
PROBES = ("convex", "linear")
VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")
TASKS = {
    "binary": ("covid", "non-covid"),
    "3class": ("covid", "pneumonia", "normal"),
    "4class": ("covid", "pneumonia", "normal", "other"),
}

CONTAINERS = ("mp4", "gif", "avi", "mov", "wmv")  # the clip file types the release holds (and the simulator writes)

# What became of one video's download (processing.sources.download; the CLI and the report count them)
DOWNLOAD_STATUSES = ("ok", "mirror", "manual", "copy", "missing")

# The builder's configs and processing choices (covidx_us, processing.build.processed)
CONFIG_KINDS = ("frames", "videos")  # one example per frame, or per clip
CONFIG_NAMES = tuple(f"{kind}-{task}" for kind in CONFIG_KINDS for task in TASKS)
INPAINT_METHODS = ("ns", "telea")
IMAGE_SUFFIXES = {"png": ".png", "jpeg": ".jpg"}  # frame image format -> file suffix
IMAGE_FORMATS = tuple(IMAGE_SUFFIXES)
CROP_MODES = ("release", "auto")
MASK_MODES = ("release", "auto", "both")
POINTER_POLICIES = ("mask", "drop")

CITATION = """@article{ebadi2021covidxus,
  title   = {{COVIDx-US} -- An Open-Access Benchmark Dataset of Ultrasound Imaging Data for {AI}-Driven {COVID-19} Analytics},
  author  = {Ebadi, Ashkan and Xi, Pengcheng and MacLean, Alexander and Tremblay, St{\\'e}phane and Kohli, Sonny and Wong, Alexander},
  journal = {arXiv preprint arXiv:2103.10003},
  year    = {2021},
  note    = {Published in Frontiers in Bioscience-Landmark (2022); data and scripts: https://github.com/nrc-cnrc/COVID-US}
}"""
