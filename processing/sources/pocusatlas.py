"""The POCUS Atlas (Squarespace): files on ``images.squarespace-cdn.com/content/v1/<site>/<stamp>-<ID>/<file>``.

A ``?format=<N>w`` query selects a resized rendition, never the original, so it is dropped. 2020-era URLs carry
an extra ``ke17...`` segment before the file name; the short form without it is tried next. Fallback: the case page
(catalogue ``link``) lists the asset in ``<img data-image=...>`` (no JavaScript needed) and ``?format=json`` returns
the item record with ``assetUrl``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import PurePosixPath

from processing.sources import Candidate, SourceEngine, find_urls, register, strip_query

_KE17 = re.compile(r"^(/content/v1/[^/]+/[^/]+)/ke17[^/]*(/[^/]+)$")
_CDN = r"""((?:https?:)?//images\.squarespace-cdn\.com/content/[^"'\s<>]+)"""


def short_form(url: str) -> str | None:
    """The URL without the 2020 ``ke17...`` segment, or None when there is none."""
    parts = urllib.parse.urlsplit(url)
    match = _KE17.match(parts.path)
    return urllib.parse.urlunsplit(parts._replace(path=match.group(1) + match.group(2))) if match else None


@register
class PocusAtlas(SourceEngine):
    name = "pocusatlas"
    hosts = ("images.squarespace-cdn.com", "static1.squarespace.com", "thepocusatlas.com")

    def candidates(self, video) -> list[Candidate]:
        url = strip_query(video.url, "format")
        found = [Candidate(url)]
        short = short_form(url)
        if short:
            found.append(Candidate(short, "media", "catalogue URL without the ke17 segment"))
        if getattr(video, "link", ""):
            found.append(Candidate(video.link, "page", "case page"))
            parts = urllib.parse.urlsplit(video.link)
            found.append(Candidate(urllib.parse.urlunsplit(parts._replace(query="format=json")), "page",
                                   "case page JSON"))
        return found

    def parse_page(self, video, page, body, content_type) -> list[Candidate]:
        text = body.decode("utf-8", "replace")
        urls: list[str] = []
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                data = {}
            items = [data.get("item") or {}] + list(data.get("items") or [])
            urls = [item["assetUrl"] for item in items if isinstance(item, dict) and item.get("assetUrl")]
        else:
            urls = find_urls(text, r"""data-image=["']([^"']+)["']""", page.url)
        if not urls:
            urls = find_urls(text, _CDN, page.url)
        wanted_id = _asset_key(video.url)
        # a page may hold several clips ("Day 1".."Day 4"): keep the one with the catalogue's asset id when known
        matching = [u for u in urls if wanted_id and _asset_key(u) == wanted_id] or urls
        return [Candidate(strip_query(u, "format"), "media", "case page asset") for u in matching]

    def imitate(self, site, served, *, js_buttons=False) -> None:
        from processing.sources.imitation import resized_gif

        for video, clip in served:
            url = video.url.split("?", 1)[0]
            short = short_form(url)
            if short:
                site.fault(url, "404")
            served_url = short or url
            site.add_file(served_url, clip)
            site.add(served_url + "?format=750w", resized_gif(), "image/gif", match_query=True)
            if getattr(video, "link", ""):
                _imitate_case_page(site, video, served_url)


def _asset_key(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url).path.split("/")
    return parts[4] if len(parts) > 4 and parts[1:3] == ["content", "v1"] else None


def _imitate_case_page(site, video, served: str) -> None:
    """The Squarespace case page (``img[data-image]``) and its ``?format=json`` item record."""
    expected = getattr(video, "expected", None)
    width, height = getattr(expected, "width", 0), getattr(expected, "height", 0)
    site.add_page(video.link, f'<html><body><div class="sqs-block image-block"><img data-src="{served}" '
                              f'data-image="{served}" data-image-dimensions="{width}x{height}" '
                              f'data-load="false" alt=""></div></body></html>')
    site.add(video.link + "?format=json", json.dumps({
        "website": {"id": "58118909e3df282037abfad7"}, "collection": {"title": "Lung"},
        "item": {"assetUrl": served, "filename": PurePosixPath(served).name, "contentType": "image/gif",
                 "body": f'<p><img src="{served}?format=750w"></p>',
                 "systemDataId": served.rstrip("/").split("/")[-2]}}).encode(),
        "application/json", match_query=True)
