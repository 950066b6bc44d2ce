"""Crop windows in source-frame pixels. Pure geometry: no I/O, no pixels."""

from __future__ import annotations

import re
from dataclasses import dataclass

from processing.errors import CovidxError


@dataclass(frozen=True)
class Window:
    """A rectangle ``x, y, w, h`` in the source frame (origin top-left). Odd sizes are kept exactly."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if min(self.x, self.y) < 0 or min(self.w, self.h) <= 0:
            raise CovidxError(f"invalid crop window {self}: x, y must be >= 0 and w, h > 0")

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` so that ``frame[rows, cols]`` is the window."""
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    def fits(self, width: int, height: int) -> bool:
        """True when the window lies inside a ``width`` x ``height`` frame."""
        return self.x + self.w <= width and self.y + self.h <= height

    @property
    def size(self) -> tuple[int, int]:
        return self.w, self.h

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse ``"x,y,w,h"`` (spaces allowed)."""
        parts = re.split(r"\s*,\s*", text.strip())
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise CovidxError(f"invalid crop window {text!r}: expected four non-negative integers 'x,y,w,h'")
        return cls(*(int(p) for p in parts))
