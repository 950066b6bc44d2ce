"""Words every layer shares, defined once. Imports nothing."""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUTPUT = Path("covidx_us")  # the export folder `build` writes and `report`, `push` and train.py read
