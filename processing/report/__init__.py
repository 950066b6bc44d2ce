"""The build report: one self-contained HTML page drawn from an export's ``build_record.json``. Reads local files
only and never changes a build.
"""
