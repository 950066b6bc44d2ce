"""LoopbackSite: a real threaded HTTP server on 127.0.0.1 that imitates every source site, for tests and the demo.

Everything is served under ``/<original host>/<original path>[?query]``, so one ``--mirror http://127.0.0.1:PORT/``
(``DownloadOptions(mirrors=(site.prefix,))``) covers every source. It is a test fixture: it never reaches the
internet and is not used by the download path itself.

``LoopbackSite(path_prefix="web/2021id_/")`` serves the same under ``/web/2021id_/<host>/<path>``, like an
Internet Archive ``id_`` prefix. Usage::

    with LoopbackSite.from_videos(videos, clips={"23_grepmed_pneumonia": Path("a.mp4"), ...}) as site:
        options = DownloadOptions(cache_dir=tmp, mirrors=(site.prefix,), delay=0)
        site.fault(video.url, "500-then-ok")          # fault injection per original URL
        ...
        site.hits(video.url)                           # requests the server saw for that URL (Hit records)

``from_videos`` has each source's engine lay out its site (``SourceEngine.imitate``, in
``processing/sources/<engine>.py``), as NOTES-sources.md's "Loopback imitation" describes:

- butterfly: ``/transfer/<hash>`` page with ``a.btn.btn-primary`` -> ``/transfer/<hash>/download`` zip holding
  ``Published/<category>/<original filename>`` plus a ``.png`` per clip (``js_buttons=True``: the href is inserted
  by a script, for the Selenium path);
- grepmed: the upload URL, and the case page ``www.grepmed.com/images/<id>`` with the file in
  ``<video><source>`` and ``<meta property="og:video">`` (our assumption of the live markup);
- pocusatlas: the clip at the short CDN form, the 2020 ``ke17`` form answering 404, ``?format=750w`` serving other
  (smaller) GIF bytes; with a ``link``: the case page (``img[data-image]``) and its ``?format=json`` item;
- litfl: the upload URL; with a ``link``: a WordPress page with a ``[video]`` shortcode player (``?_=1``) and a
  ``wp-block-video`` figure;
- radio: the image URL; with a ``link``: the case page (``div[data-study-id]``) and ``/studies/<id>/stacks`` JSON;
- core: CloudFront files; ``vimeo.com/<id>`` as a page with a ``<video>`` (for yt-dlp's generic extractor) whose
  source lives on ``vod-progressive.akamaized.net``;
- uf, paper: the file, answering 403 unless the User-Agent looks like a browser;
- clarius: ``wp-content`` files; presigned S3 links answer 403 "Request has expired" once
  ``X-Amz-Date + X-Amz-Expires`` is past by the site's clock (``clock=`` to fake it).

Fault kinds (``site.fault(url, kind, ...)``): ``reset`` (connection dropped before a response), ``404``, ``403``,
``500-then-ok`` and ``429-then-ok`` (``times`` failures first; 429 carries ``Retry-After: 0``), ``slow`` (headers and
16 bytes, then ``delay`` seconds of silence), ``truncate`` (Content-Length of the whole file, half the body, then
close), ``cut-once`` (the first request gets half the body and a dropped connection; later ones are normal),
``html`` (an HTML page with status 200 and a video Content-Type), ``redirect`` (302 to ``location``), ``no-range``
(Range ignored), ``no-length`` (no Content-Length, body ends with the connection), ``oversized`` (announces
``size`` bytes, default 3 GiB, sends the file and closes). Every file route honours
``Range: bytes=N-`` with 206 and an ETag (``If-Range`` checked) unless ``no-range``.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from processing.errors import check_choice
from processing.sources.butterfly import butterfly_zip  # noqa: F401  (page and archive builders, handy in tests)
from processing.sources.grepmed import grepmed_page  # noqa: F401
from processing.sources.imitation import CONTENT_TYPES as _TYPES
from processing.sources.imitation import make_zip, resized_gif, tiny_png, video_page  # noqa: F401
from processing.sources.litfl import litfl_page  # noqa: F401

FAULTS = ("reset", "404", "403", "500-then-ok", "429-then-ok", "slow", "truncate", "cut-once", "html", "redirect",
          "no-range", "no-length", "oversized")


@dataclass(frozen=True)
class Hit:
    """One request the site answered: ``key`` is ``host/path`` of the original URL."""

    key: str
    query: str
    headers: Mapping[str, str]
    status: int
    sent: int          # body bytes written
    time: float        # time.monotonic() when the request arrived

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass
class Route:
    """What one URL answers. ``body`` is static; ``handler(site, request_headers) -> (status, headers, body)`` is
    dynamic. ``browser_only`` answers 403 to non-browser User-Agents."""

    body: bytes = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    handler: Callable[[LoopbackSite, Mapping[str, str]], tuple[int, dict[str, str], bytes]] | None = None
    browser_only: bool = False
    fault: str | None = None
    fault_args: dict[str, Any] = field(default_factory=dict)
    count: int = 0


def url_key(url: str) -> tuple[str, str]:
    """``(host/path, query)`` of an original URL, percent-decoded, as the site indexes it."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.unquote(parts.netloc + parts.path), parts.query


class LoopbackSite:
    """A threaded HTTP server on 127.0.0.1 (random port) serving original URLs under ``/<host>/<path>``."""

    def __init__(self, *, clock: Callable[[], float] = time.time, path_prefix: str = "") -> None:
        self.clock = clock
        self.path_prefix = path_prefix.strip("/") + "/" if path_prefix.strip("/") else ""
        self.routes: dict[tuple[str, str | None], Route] = {}
        self.log: list[Hit] = []
        self._lock = threading.Lock()
        # Responses whose last byte may have reached the client before their hit is logged: hits() waits for them
        # (a client can read a whole response and ask for hits() before the server thread logs it).
        self._settled = threading.Condition(self._lock)
        self._responding = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> LoopbackSite:
        site = self

        class Handler(_Handler):
            pass

        Handler.site = site
        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="loopback-site",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackSite:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LoopbackSite is not started")
        return self._server.server_address[1]

    @property
    def prefix(self) -> str:
        """The mirror prefix: ``http://127.0.0.1:PORT/`` (plus ``path_prefix``, e.g. ``web/2021id_/``)."""
        return f"http://127.0.0.1:{self.port}/{self.path_prefix}"

    def url(self, original: str) -> str:
        """Where ``original`` is served on this site."""
        parts = urllib.parse.urlsplit(original)
        return self.prefix + parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")

    # ---- content

    def add(self, url: str, body: bytes = b"", content_type: str | None = None, *, match_query: bool = False,
            **route: Any) -> Route:
        """Serve ``body`` at the original ``url`` (the query is ignored unless ``match_query``)."""
        key, query = url_key(url)
        if content_type is None:
            content_type = _TYPES.get(Path(key).suffix.lower(), "application/octet-stream")
        entry = Route(body=body, content_type=content_type, **route)
        self.routes[(key, query if match_query else None)] = entry
        return entry

    def add_file(self, url: str, path: Path, **route: Any) -> Route:
        path = Path(path)
        return self.add(url, path.read_bytes(), _TYPES.get(path.suffix.lower()), **route)

    def add_page(self, url: str, text: str, *, match_query: bool = False, **route: Any) -> Route:
        return self.add(url, text.encode(), "text/html; charset=utf-8", match_query=match_query, **route)

    def fault(self, url: str, kind: str, *, times: int = 1, delay: float = 2.0, location: str = "",
              size: int = 3 * 1024**3, match_query: bool = False) -> Route:
        """Inject fault ``kind`` (one of :data:`FAULTS`) into the route of ``url`` (created empty if absent)."""
        check_choice("fault", kind, FAULTS)
        key, query = url_key(url)
        route = self.routes.get((key, query if match_query else None)) or self.routes.get((key, query)) \
            or self.add(url, match_query=match_query)
        route.fault, route.count = kind, 0
        route.fault_args = {"times": times, "delay": delay, "location": location, "size": size}
        return route

    def hits(self, url: str | None = None) -> list[Hit]:
        """Requests seen (for the original ``url`` only, when given), once the responses being sent are logged."""
        with self._settled:
            self._settled.wait_for(lambda: self._responding == 0, timeout=2.0)
            log = list(self.log)
        if url is None:
            return log
        key, _query = url_key(url)
        return [hit for hit in log if hit.key == key]

    def _find(self, key: str, query: str) -> Route | None:
        return self.routes.get((key, query)) or self.routes.get((key, None))

    # ---- the catalogue layout

    @classmethod
    def from_videos(cls, videos: Iterable[Any], clips: Mapping[str, Path], *, js_buttons: bool = False,
                    clock: Callable[[], float] = time.time, path_prefix: str = "") -> LoopbackSite:
        """A site serving every video that has a clip in ``clips`` (video id -> local file) in its source's layout.

        Videos without a clip are not served (they end ``missing``). Two videos sharing one URL (a Vimeo page
        cut into two clips) are served the first one's clip. Not started: use ``with`` or :meth:`start`.
        """
        from processing.sources import engines

        site = cls(clock=clock, path_prefix=path_prefix)
        by_source: dict[str, list[tuple[Any, Path]]] = {}
        for video in videos:
            if clips.get(video.id) is not None:
                by_source.setdefault(video.source, []).append((video, Path(clips[video.id])))
        known = engines()
        for source, served in by_source.items():
            if source in known:  # each engine lays out its own site (processing/sources/<engine>.py)
                known[source].imitate(site, served, js_buttons=js_buttons)
            else:
                for video, clip in served:
                    site.add_file(video.url, clip)
        return site


# ---- the HTTP handler

class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # dropped connections are expected here
        pass


class _Handler(BaseHTTPRequestHandler):
    site: LoopbackSite
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:  # the connection was dropped on purpose (reset / cut faults)
            pass
        finally:
            self._settle()

    def _settle(self) -> None:
        """This response is logged, or will never be (the client went away mid-response): stop holding hits()."""
        with self.site._settled:
            if getattr(self, "_unlogged", False):
                self._unlogged = False
                self.site._responding -= 1
                self.site._settled.notify_all()

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _hold_hits(self) -> None:
        """The response's last bytes go out next: until it is logged, :meth:`LoopbackSite.hits` waits."""
        with self.site._settled:
            self.site._responding += 1
        self._unlogged = True

    def _record(self, key: str, query: str, status: int, sent: int) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.site._settled:
            self.site.log.append(Hit(key, query, headers, status, sent, self._arrived))
        self._settle()

    def _serve(self, head: bool) -> None:
        self._arrived = time.monotonic()
        self.close_connection = True
        raw = self.path.lstrip("/")
        prefix = self.site.path_prefix
        if prefix and not raw.startswith(prefix):
            return self._reply(raw, "", 404, {"Content-Type": "text/html"}, b"<html>not under the prefix</html>",
                               head)
        path, _, query = raw[len(prefix):].partition("?")
        key = urllib.parse.unquote(path)
        route = self.site._find(key, query)
        if route is None:
            return self._reply(key, query, 404, {"Content-Type": "text/html"}, b"<html><body>404</body></html>", head)
        with self.site._lock:
            route.count += 1
            count = route.count
        fault, args = route.fault, route.fault_args
        agent = self.headers.get("User-Agent", "")
        if fault == "reset":
            self._record(key, query, 0, 0)
            return self._reset()
        if fault in ("404", "403"):
            return self._reply(key, query, int(fault), {"Content-Type": "text/html"},
                               f"<html><body>{fault}</body></html>".encode(), head)
        if fault == "500-then-ok" and count <= args["times"]:
            return self._reply(key, query, 500, {"Content-Type": "text/html"}, b"<html>500</html>", head)
        if fault == "429-then-ok" and count <= args["times"]:
            return self._reply(key, query, 429, {"Content-Type": "text/html", "Retry-After": "0"}, b"busy", head)
        if fault == "redirect":
            return self._reply(key, query, 302, {"Location": args["location"]}, b"", head)
        if route.browser_only and not agent.startswith("Mozilla/"):
            return self._reply(key, query, 403, {"Content-Type": "text/html"}, b"<html>Forbidden</html>", head)
        if fault == "html":
            return self._reply(key, query, 200, {"Content-Type": "video/mp4"},
                               b"<!DOCTYPE html><html><body>Sorry, this page is unavailable</body></html>", head)
        if route.handler is not None:
            status, headers, body = route.handler(self.site, {k.lower(): v for k, v in self.headers.items()})
            return self._reply(key, query, status, headers, body, head)
        body = route.body
        headers = {"Content-Type": route.content_type, **route.headers}
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        headers["ETag"] = etag
        headers["Accept-Ranges"] = "none" if fault == "no-range" else "bytes"
        status, start = 200, 0
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and fault != "no-range" and (not if_range or if_range == etag):
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(body) - 1
                if start >= len(body):
                    return self._reply(key, query, 416, {"Content-Range": f"bytes */{len(body)}"}, b"", head)
                end = min(end, len(body) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
                body, status = body[start:end + 1], 206
        if fault == "slow":
            return self._slow(key, query, status, headers, body, args["delay"])
        if fault == "truncate" or (fault == "cut-once" and count == 1):
            return self._partial(key, query, status, headers, body, reset=fault == "cut-once")
        if fault == "no-length":
            return self._reply(key, query, status, headers, body, head, length=False)
        if fault == "oversized":
            self._head(status, headers, args["size"])
            return self._partial(key, query, status, {}, body + body, reset=False, head_sent=True)
        return self._reply(key, query, status, headers, body, head)

    def _head(self, status: int, headers: Mapping[str, str], length: int | None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()

    def _reply(self, key: str, query: str, status: int, headers: Mapping[str, str], body: bytes, head: bool,
               length: bool = True) -> None:
        self._hold_hits()
        self._head(status, headers, len(body) if length else None)
        sent = 0
        if not head:
            try:
                self.wfile.write(body)
                sent = len(body)
            except OSError:
                pass
        self._record(key, query, status, sent)

    def _slow(self, key, query, status, headers, body: bytes, delay: float) -> None:
        self._head(status, headers, len(body))
        try:
            self.wfile.write(body[:16])
            self.wfile.flush()
            time.sleep(delay)
            self._hold_hits()
            self.wfile.write(body[16:])
            sent = len(body)
        except OSError:
            sent = 16
        self._record(key, query, status, sent)

    def _partial(self, key, query, status, headers, body: bytes, reset: bool, head_sent: bool = False) -> None:
        half = max(1, len(body) // 2)
        self._hold_hits()
        if not head_sent:
            self._head(status, headers, len(body))
        try:
            self.wfile.write(body[:half])
            self.wfile.flush()
        except OSError:
            pass
        self._record(key, query, status, half)
        if reset:
            self._reset()
        else:  # a clean close: the body simply ends short of its Content-Length
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _reset(self) -> None:
        """Drop the connection with a TCP reset."""
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()
