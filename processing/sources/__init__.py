"""Source engines: one small class per data source of the release, and the registry that maps a source id to it.

An engine knows its site and nothing else: which hosts it may talk to, how a catalogue row becomes candidate URLs,
and how one of its pages is parsed to find the media link. It never opens a connection: fetching, retries, resume,
verification, mirrors and the manual folder live once, in :mod:`processing.sources.download` (the imagefolder-over-base idea:
a child names what differs, the base does the work).

Adding a source is one file in this package (found by the registry itself) that subclasses :class:`SourceEngine`
and is decorated with :func:`register`, its test, and one entry in ``processing.vocabulary.SOURCE_INFO`` (its id,
display name and licence, which the catalogue and the dataset card read)::

    @register
    class Example(SourceEngine):
        name = "example"                       # the catalogue's source id
        hosts = ("media.example.org",)         # redirects may go only here (suffix match: sub-domains allowed)

        def candidates(self, video):           # optional: the default is the catalogue URL as a direct media link
            return [Candidate(video.url)]

        def imitate(self, site, served, *, js_buttons=False):  # optional: the default serves each URL's clip
            ...                                # the site's layout on the loopback test server (demo and tests)

To put the source in ``covidx-us demo``'s simulated release too, add videos of it to
``processing/demo/simrelease.py`` (its URL pattern and release spelling); the demo does not need every source.

A :class:`Candidate` is one thing to try, in order. ``kind`` says what the downloader does with it:

- ``"media"``   GET it; the body must be the clip itself (sniffed and decoded before it is kept);
- ``"page"``    GET it; :meth:`SourceEngine.parse_page` turns the HTML/JSON into further candidates (when it finds
  nothing and the engine sets ``js_pages``, the page is rendered in headless Chromium and parsed again);
- ``"archive"`` GET a zip once per URL, shared by every video that names it, and extract the member whose file name
  equals ``member``;
- ``"ytdlp"``   resolve the page with yt-dlp's Python API, then fetch the format it picks as ``"media"``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from processing.errors import DownloadError, check_choice

if TYPE_CHECKING:
    from processing.release.catalogue import Video
    from processing.sources.imitation import LoopbackLayout

CANDIDATE_KINDS = ("media", "page", "archive", "ytdlp")

#: Sent where a site refuses non-browser clients (UF, publishers, Clarius).
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Candidate:
    """One locator to try for a video.

    ``note`` is a short human label used in reasons ("catalogue URL", "case page", ...).
    ``member`` is the archive member's file name (``kind="archive"`` only).
    """

    url: str
    kind: str = "media"
    note: str = "catalogue URL"
    member: str | None = None

    def __post_init__(self) -> None:
        check_choice("candidate kind", self.kind, CANDIDATE_KINDS)
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise DownloadError(f"candidate URL must be http(s): {self.url!r}")


class SourceEngine:
    """Base of every source engine. A child overrides:

    - ``name``: the catalogue source id (one of ``processing.release.catalogue.SOURCES``);
    - ``hosts``: hosts the source's files and redirects may live on (a host matches itself and its sub-domains);
    - ``user_agent``: ``None`` for the downloader's own UA, or :data:`BROWSER_USER_AGENT` for sites that refuse others;
    - ``js_pages``: True when a page may build its media link with JavaScript (then Chromium renders it as a fallback);
    - :meth:`candidates`: catalogue row -> ordered candidates (default: the catalogue URL as a direct media link);
    - :meth:`parse_page`: a fetched page -> further candidates (default: none);
    - :meth:`unavailable`: a reason to skip the network for this row altogether (default: ``None``);
    - :meth:`imitate`: how the site serves its videos, on a loopback test server (default: each catalogue URL
      serves its clip), for the tests and ``covidx-us demo``.
    """

    name: ClassVar[str] = ""
    hosts: ClassVar[tuple[str, ...]] = ()
    user_agent: ClassVar[str | None] = None
    js_pages: ClassVar[bool] = False

    def candidates(self, video: Video) -> list[Candidate]:
        return [Candidate(video.url)]

    def parse_page(self, video: Video, page: Candidate, body: bytes, content_type: str) -> list[Candidate]:
        """Media candidates found in ``body``, the page fetched for ``page`` (relative links resolve against
        ``page.url``, the original, un-mirrored URL)."""
        return []

    def unavailable(self, video: Video, now: float) -> str | None:
        """A reason why no request can succeed (e.g. an expired presigned link), or None. ``now``: Unix time."""
        return None

    def imitate(self, site: LoopbackLayout, served: Sequence[tuple[Video, Path]], *, js_buttons: bool = False) -> None:
        """Lay out ``served`` ((video, local clip) pairs of this source) on ``site`` the way the real site serves
        them (``js_buttons``: links a page builds with JavaScript are built so; see NOTES-sources.md)."""
        for video, clip in served:
            site.add_file(video.url, clip)

    def allows(self, host: str) -> bool:
        """True when ``host`` is one of :attr:`hosts` or a sub-domain of one."""
        host = host.lower().rstrip(".")
        return any(host == h or host.endswith("." + h) for h in self.hosts)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


_REGISTRY: dict[str, SourceEngine] = {}
# The modules of this package that are not engines; every other module is imported to register its engine.
_SHARED = frozenset({"availability", "browser", "download", "imitation"})


def register(cls: type[SourceEngine]) -> type[SourceEngine]:
    """Class decorator: add one instance of ``cls`` to the registry under ``cls.name``."""
    if not cls.name or not cls.hosts:
        raise TypeError(f"{cls.__name__} must set name and hosts")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _SHARED and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def engines() -> dict[str, SourceEngine]:
    """Every registered engine by source id."""
    _load_all()
    return dict(_REGISTRY)


def get_engine(source: str) -> SourceEngine:
    """The engine for a catalogue source id; :class:`~processing.errors.InvalidChoiceError` lists the valid ids."""
    _load_all()
    check_choice("source", source, sorted(_REGISTRY))
    return _REGISTRY[source]


# ---- helpers engines share (pure functions on strings) ----

def strip_query(url: str, *names: str) -> str:
    """``url`` without the query parameters ``names`` (all of them when ``names`` is empty)."""
    parts = urllib.parse.urlsplit(url)
    if not names:
        return urllib.parse.urlunsplit(parts._replace(query=""))
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept)))


def find_urls(text: str, pattern: str, base: str) -> list[str]:
    """Absolute URLs (resolved against ``base``) of every ``pattern`` match in ``text``, first occurrence order.

    ``pattern`` must have one group holding the URL. HTML entities ``&amp;`` / ``&quot;`` are undone first.
    """
    text = text.replace("&amp;", "&").replace("&quot;", '"').replace("&#038;", "&")
    seen: dict[str, None] = {}
    for match in re.finditer(pattern, text):
        seen.setdefault(urllib.parse.urljoin(base, match.group(1)), None)
    return list(seen)


def basename(url: str) -> str:
    """The last path segment of ``url``, percent-decoded (``Day+2.gif`` -> ``Day 2.gif``)."""
    path = urllib.parse.urlsplit(url).path.rstrip("/")
    return urllib.parse.unquote_plus(path.rsplit("/", 1)[-1])


def parse_tags(html: str) -> list[tuple[str, dict[str, str]]]:
    """Every start tag in ``html`` as ``(name, attributes)``, in document order (stdlib parser, tolerant of junk)."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict[str, str]]] = []

    class _Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, {k: (v or "") for k, v in attrs}))

    parser = _Collector(convert_charrefs=True)
    parser.feed(html)
    parser.close()
    return found


def has_classes(attrs: dict[str, str], *classes: str) -> bool:
    """True when the tag's ``class`` attribute holds every one of ``classes``."""
    return set(classes) <= set(attrs.get("class", "").split())
