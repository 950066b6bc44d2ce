"""covidx-us processing: release catalogue, source engines, clip processing, export.

The package is layered; each layer only calls down (see ARCHITECTURE.md):
catalogue (CSV rows -> typed records) -> sources/download (bytes on disk) -> clip processing (pixels)
-> ``covidx_us.py`` (the ``datasets`` builder) -> export / hub.
"""

__version__ = "0.1.0"
