"""covidx-us processing: the release catalogue, the downloads, the clip processing, the build, the export.

One folder per layer; each layer imports only the layers below it (checked by ``lint-imports``, contracts in
``pyproject.toml``; see ARCHITECTURE.md)::

    cli                     the `covidx-us` command, one module per sub-command
    report | demo           the HTML build report | the simulator, simulated release and loopback site
    covidx_us.py            the `datasets` builder (top-level module, outside this package)
    build                   processed-clip jobs, splits
    pixels | sources | hub  clip processing | downloads and source engines | Hub-layout export and push
    release                 release files -> typed catalogue
    (root)                  errors, fileutil, progress, windows, vocabulary: shared by every layer
"""

__version__ = "0.1.0"
