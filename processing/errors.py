"""Errors the user can act on. Each message names the culprit: file, row, video id, URL or parameter."""

from __future__ import annotations

import argparse
import errno
import math
import os


class CovidxError(Exception):
    """Base of every error covidx-us raises on purpose; the CLI prints it without a traceback."""


class InvalidValueError(CovidxError, ValueError):
    """A parameter outside its valid values; the message says which values are valid."""

    def __init__(self, name: str, value: object, valid: str) -> None:
        super().__init__(f"invalid {name} {value!r}; valid values: {valid}")
        self.name, self.value = name, value


class InvalidChoiceError(InvalidValueError):
    """A parameter that is not one of a list of choices; the message lists them."""

    def __init__(self, name: str, value: object, valid: object) -> None:
        super().__init__(name, value, ", ".join(map(str, valid)))
        self.valid = tuple(valid)


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


def check_int(name: str, value: object, *, minimum: int | None = None, none: str | None = None) -> None:
    """Raise :class:`InvalidValueError` unless ``value`` is an integer (not a bool) >= ``minimum``.

    ``none``: None is valid too, and means this ("every core"); without it None is refused.
    """
    if value is None and none is not None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        kind = "a positive integer" if minimum == 1 else "an integer" if minimum is None else f"an integer >= {minimum}"
        raise InvalidValueError(name, value, _or_none(kind, none))


def check_number(name: str, value: object, *, minimum: float | None = None, positive: bool = False,
                 none: str | None = None) -> None:
    """Raise :class:`InvalidValueError` unless ``value`` is a finite number (not a bool), > 0 when ``positive``,
    >= ``minimum`` when given. ``none``: None is valid too, and means this."""
    if value is None and none is not None:
        return
    ok = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
          and not (positive and value <= 0) and not (minimum is not None and value < minimum))
    if not ok:
        kind = ("a positive number" if positive else f"a number >= {minimum:g}" if minimum is not None
                else "a finite number")
        raise InvalidValueError(name, value, _or_none(kind, none))


def check_mirror(prefix: object) -> None:
    """Raise :class:`InvalidValueError` unless ``prefix`` is an http(s) URL prefix (a mirror)."""
    if not (isinstance(prefix, str) and prefix.lower().startswith(("http://", "https://"))
            and len(prefix.split("://", 1)[1]) > 0):
        raise InvalidValueError("mirror", prefix, "http(s) URL prefixes")


def _or_none(kind: str, none: str | None) -> str:
    return kind if none is None else f"{kind} or None ({none})"


# What to do about the operating-system errors a user can act on.
_OS_HINTS = {
    errno.ENOSPC: "free some space and run again",
    errno.EDQUOT: "free some space and run again",
    errno.EROFS: "choose a folder on a writable file system",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "a folder is where a file was expected",
    errno.EFBIG: "the file grew larger than this process may write",
}


def os_error_message(exc: OSError, where: os.PathLike | str | None = None) -> str:
    """One line for an operating-system error: the path (the error's own, else ``where``), the reason, what to do.

    Errors raised by writes to an open file carry no file name; ``where`` is then the folder being written.
    """
    path = exc.filename if exc.filename is not None else where
    reason = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if exc.errno in _OS_HINTS:
        reason = f"{reason} ({_OS_HINTS[exc.errno]})"
    target = _path_text(path) if path is not None else "(no path given)"
    if exc.filename2 is not None:
        target += f" -> {_path_text(exc.filename2)}"
    return f"{target}: {reason}"


def _path_text(path: object) -> str:
    return os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path)


def find_os_error(exc: BaseException) -> OSError | None:
    """``exc`` or the first operating-system error it was raised from (libraries wrap them, e.g. ``datasets``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def finite_float(text: str) -> float:
    """An ``argparse`` type: a finite number (``inf`` and ``nan`` are refused when the arguments are parsed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
