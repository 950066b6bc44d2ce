"""Progress bars for long steps: tqdm on a terminal, silent otherwise (logs and CI stay readable).

tqdm is imported when a bar is made (tqdm.auto brings asyncio: ~30 ms of a ``covidx-us clean`` start-up), and a
silent :func:`bar` does not import it at all."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    """Bars show on an interactive stderr unless COVIDX_US_PROGRESS=0; COVIDX_US_PROGRESS=1 forces them."""
    forced = os.environ.get("COVIDX_US_PROGRESS")
    if forced is not None:
        return forced not in ("", "0", "false", "no")
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it", leave: bool = True):
    """Wrap ``iterable`` in a tqdm bar labelled ``desc`` (disabled when :func:`enabled` is False)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, disable=not enabled(), dynamic_ncols=True)


def bar(*, desc: str, total: int | None = None, unit: str = "frame", leave: bool = False):
    """A manually updated bar (``.update(n)``, ``.close()``), e.g. per frame inside one clip; same rules as above."""
    if not enabled():
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(desc=desc, total=total, unit=unit, leave=leave, disable=not enabled(), dynamic_ncols=True)


class _Silent:
    """What a disabled :func:`bar` is: the calls the pipeline makes, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
