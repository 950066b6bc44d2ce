"""The build layer: processed-clip jobs (cache keys, crash-safe records, the worker pool) and patient-grouped splits:
what the builder in ``covidx_us.py`` calls.
"""
