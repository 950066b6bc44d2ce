"""GrepMed: the catalogue holds direct upload URLs ``img.grepmed.com/uploads/<id>/<slug>-original.<ext>``.

When the direct URL fails, the case page ``www.grepmed.com/images/<id>`` is searched, as raw text, for any
``img.grepmed.com/uploads/<id>/...-original.<ext>`` link (the page's tag structure is not known, so no single tag
is relied on; the file slug may differ from the page slug, so the file URL cannot be built from the page).
"""

from __future__ import annotations

import html
import re
import urllib.parse

from processing.sources import Candidate, SourceEngine, find_urls, register

_UPLOAD_ID = re.compile(r"/uploads/(\d+)/")


@register
class GrepMed(SourceEngine):
    name = "grepmed"
    hosts = ("img.grepmed.com", "grepmed.com")

    def candidates(self, video) -> list[Candidate]:
        found = [Candidate(video.url)]
        match = _UPLOAD_ID.search(urllib.parse.urlsplit(video.url).path)
        if match:
            found.append(Candidate(f"https://www.grepmed.com/images/{match.group(1)}", "page", "case page"))
        return found

    def parse_page(self, video, page, body, content_type) -> list[Candidate]:
        image_id = page.url.rstrip("/").split("/images/")[-1].split("/")[0]
        pattern = rf"""((?:https?:)?//img\.grepmed\.com/uploads/{re.escape(image_id)}/[^"'\s<>?]+-original\.(?:mp4|gif|webm|mov))"""
        return [Candidate(url, "media", "case page link") for url in find_urls(body.decode("utf-8", "replace"),
                                                                               pattern, page.url)]

    def imitate(self, site, served, *, js_buttons=False) -> None:
        for video, clip in served:
            site.add_file(video.url, clip)
            match = _UPLOAD_ID.search(video.url)
            if match:
                site.add_page(f"https://www.grepmed.com/images/{match.group(1)}", grepmed_page(video.url))


def grepmed_page(file_url: str) -> str:
    """A GrepMed-like case page naming ``file_url`` in a ``<video><source>`` and in ``og:video``."""
    return ("<!DOCTYPE html><html><head>"
            f'<meta property="og:video" content="{html.escape(file_url)}">'
            '<meta property="og:type" content="video.other"></head><body><div class="image-container">'
            f'<video autoplay loop muted playsinline><source src="{html.escape(file_url)}" type="video/mp4">'
            "</video></div></body></html>")
