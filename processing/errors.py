"""Errors the user can act on. Each message names the culprit: file, row, video id, URL or parameter."""

from __future__ import annotations


class CovidxError(Exception):
    """Base of every error covidx-us raises on purpose; the CLI prints it without a traceback."""


class InvalidChoiceError(CovidxError, ValueError):
    """A parameter outside its valid values; the message lists them."""

    def __init__(self, name: str, value: object, valid: object) -> None:
        choices = ", ".join(map(str, valid))
        super().__init__(f"invalid {name} {value!r}; valid values: {choices}")
        self.name, self.value, self.valid = name, value, tuple(valid)


class ReleaseError(CovidxError):
    """The release files are missing, do not match their pinned digests, or hold a malformed row."""


class ClipError(CovidxError):
    """A clip cannot be read or processed (unreadable, truncated, zero frames, mask of the wrong size...)."""


class DownloadError(CovidxError):
    """A download failed for good (after retries and fallbacks)."""


def check_choice(name: str, value: object, valid: object) -> None:
    """Raise :class:`InvalidChoiceError` listing ``valid`` unless ``value`` is one of them (torchvision's verify_str_arg)."""
    valid = tuple(valid)
    if value not in valid:
        raise InvalidChoiceError(name, value, valid)
