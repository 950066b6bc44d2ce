"""Butterfly Network: a Bynder transfer page whose download button (``a.btn.btn-primary``) leads to one zip holding
category folders of ``.mp4`` clips (and ``.png`` stills). Clips are matched by their original file name.

The zip is fetched once per transfer and shared by every video that names it (the downloader caches archives by URL).
The live button may be inserted by JavaScript, so ``js_pages`` lets the downloader render the page in Chromium
when the static HTML has no link. A user-supplied zip in ``--data-dir`` is searched by the downloader's manual step.
"""

from __future__ import annotations

import urllib.parse

from processing.sources import Candidate, SourceEngine, has_classes, parse_tags, register


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
