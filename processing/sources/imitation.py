"""Byte and page builders for imitating a source's site on a loopback test server (no network, no pixels).

Each engine's :meth:`~processing.sources.SourceEngine.imitate` lays its videos out on a site through the small
:class:`LoopbackLayout` interface (what :class:`processing.demo.testsite.LoopbackSite` offers), using the helpers here.
The imitation lives in the engine's file beside the download rules it must satisfy; the server lives in the demo.
"""

from __future__ import annotations

import html
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

CONTENT_TYPES = {".mp4": "video/mp4", ".gif": "image/gif", ".avi": "video/x-msvideo", ".mov": "video/quicktime",
                 ".wmv": "video/x-ms-wmv", ".zip": "application/zip", ".json": "application/json",
                 ".html": "text/html; charset=utf-8"}


class LoopbackLayout(Protocol):
    """What an engine may do to a loopback site: serve bytes, a file or a page at an original URL, or a fault."""

    clock: Callable[[], float]

    def add(self, url: str, body: bytes = b"", content_type: str | None = None, *, match_query: bool = False,
            **route: Any) -> Any: ...

    def add_file(self, url: str, path: Path, **route: Any) -> Any: ...

    def add_page(self, url: str, text: str, *, match_query: bool = False, **route: Any) -> Any: ...

    def fault(self, url: str, kind: str, **options: Any) -> Any: ...


def video_page(title: str, media_url: str) -> str:
    """A plain page with one HTML5 ``<video>`` (what yt-dlp's generic extractor reads)."""
    return (f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head><body>"
            f'<video controls width="640"><source src="{html.escape(media_url)}" type="video/mp4"></video>'
            "</body></html>")


def make_zip(members: Mapping[str, bytes]) -> bytes:
    """A zip holding ``members`` (name -> bytes) verbatim, unsafe names included (for fault tests)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, (2021, 1, 12, 16, 46, 52)), data)
    return buffer.getvalue()


def tiny_png() -> bytes:
    """A valid 1x1 grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


def resized_gif() -> bytes:
    """A tiny valid GIF standing in for a Squarespace ``?format=750w`` rendition (not the original bytes)."""
    return (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
            b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
