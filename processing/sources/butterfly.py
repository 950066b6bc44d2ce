"""Butterfly Network: a Bynder transfer page whose download button (``a.btn.btn-primary``) leads to one zip holding
category folders of ``.mp4`` clips (and ``.png`` stills). Clips are matched by their original file name.

The zip is fetched once per transfer and shared by every video that names it (the downloader caches archives by URL).
The live button may be inserted by JavaScript, so ``js_pages`` lets the downloader render the page in Chromium
when the static HTML has no link. A user-supplied zip in ``--data-dir`` is searched by the downloader's manual step.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import urllib.parse
from pathlib import Path

from processing.sources import Candidate, SourceEngine, has_classes, parse_tags, register

# The transfer zip's category folder per class (the imitation's; the live zip's names are matched by file name).
FOLDERS = {"covid": "B lines", "pneumonia": "Consolidation", "normal": "Normal Lung", "other": "Other"}


@register
class Butterfly(SourceEngine):
    name = "butterfly"
    hosts = ("butterflynetwork.getbynder.com", "getbynder.com", "bynder.com", "butterflynetwork.com")
    js_pages = True

    def candidates(self, video) -> list[Candidate]:
        return [Candidate(video.url, "page", "transfer page")]

    def parse_page(self, video, page, body, content_type) -> list[Candidate]:
        html = body.decode("utf-8", "replace")
        links = [
            attrs["href"]
            for tag, attrs in parse_tags(html)
            if tag == "a" and has_classes(attrs, "btn", "btn-primary") and attrs.get("href", "").strip()
            and not attrs["href"].startswith(("#", "javascript:"))
        ]
        return [
            Candidate(urllib.parse.urljoin(page.url, links[0]), "archive", "transfer zip", member=video.filename)
        ] if links else []

    def imitate(self, site, served, *, js_buttons=False) -> None:
        transfers: dict[str, list] = {}
        for video, clip in served:
            transfers.setdefault(video.url, []).append((video, clip))
        for transfer, members in transfers.items():
            _imitate_transfer(site, transfer, members, js_buttons)


def _imitate_transfer(site, transfer: str, members: list, js_buttons: bool) -> None:
    """One Bynder transfer page whose button (inserted by a script when ``js_buttons``) leads to the zip."""
    path = urllib.parse.urlsplit(transfer).path.rstrip("/")
    stamp = dt.datetime.fromtimestamp(1610469413, dt.timezone.utc)
    site.add(f"{transfer.rstrip('/')}/download", butterfly_zip(members), "application/zip",
             headers={"Content-Disposition": f'attachment; filename="Published -{stamp:%Y%m%dT%H%M%SZ}-001.zip"'})
    link = f"{path}/download"
    if js_buttons:
        button = ('<a class="btn btn-primary" id="download">Download</a>\n<script>setTimeout(function () {'
                  f'document.getElementById("download").setAttribute("href", {json.dumps(link)});}}, 150);'
                  '</script>')
    else:
        button = f'<a class="btn btn-primary" href="{html.escape(link)}">Download</a>'
    site.add_page(transfer, f"<!DOCTYPE html><html><head><title>Bynder transfer</title></head><body>"
                            f'<div class="transfer"><h1>{len(members)} files</h1>\n{button}</div></body></html>')


def butterfly_zip(members) -> bytes:
    """The Butterfly transfer zip: ``Published/<category>/<original filename>`` plus a ``.png`` per clip."""
    from processing.sources.imitation import make_zip, tiny_png

    files: dict[str, bytes] = {}
    for video, clip in members:
        folder = FOLDERS.get(getattr(video, "label", ""), "Other")
        files[f"Published/{folder}/{video.filename}"] = Path(clip).read_bytes()
        files[f"Published/{folder}/{Path(video.filename).stem}.png"] = tiny_png()
    return make_zip(files)
