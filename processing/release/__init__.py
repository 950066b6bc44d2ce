"""The release layer: the release's files (fetched at the pinned commit, or a local copy, verified) -> a typed
catalogue with the errata applied. Knows no HTTP but the release fetch, no pixels, no `datasets`.
"""
