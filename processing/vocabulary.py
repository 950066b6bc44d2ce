"""Words every layer shares, defined once. Imports nothing.

The command line reads its choices from here, so that ``covidx-us <cmd> --help`` answers without loading the
layers that use them (numpy, OpenCV, datasets: about 2 s); the modules that own an idea import its words from here.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUTPUT = Path("covidx_us")  # the export folder `build` writes and `report`, `push` and train.py read

# The release (processing.release.catalogue)
SOURCES = ("butterfly", "grepmed", "litfl", "pocusatlas", "radio", "core", "uf", "paper", "clarius")  # id spelling
CLASSES = ("covid", "pneumonia", "normal", "other")
PROBES = ("convex", "linear")
VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")
TASKS = {
    "binary": ("covid", "non-covid"),
    "3class": ("covid", "pneumonia", "normal"),
    "4class": ("covid", "pneumonia", "normal", "other"),
}

# The builder's configs and processing choices (covidx_us, processing.build.processed)
KINDS = ("frames", "videos")
CONFIG_NAMES = tuple(f"{kind}-{task}" for kind in KINDS for task in TASKS)
INPAINT_METHODS = ("ns", "telea")
IMAGE_FORMATS = ("png", "jpeg")
CROP_MODES = ("release", "auto")
MASK_MODES = ("release", "auto", "both")
POINTER_POLICIES = ("mask", "drop")
