"""LITFL (WordPress): direct ``litfl.com/wp-content/uploads/YYYY/MM/<name>.mp4`` files.

Fallback: the case page (catalogue ``link``) is server-rendered; its ``[video]`` shortcode player carries
``<source src="<file>?_=<n>">`` (the ``_`` instance query is stripped) and block-editor figures carry
``video[src]``. Only the link whose file name equals the catalogue URL's file name is taken.
"""

from __future__ import annotations

import html

from processing.sources import Candidate, SourceEngine, basename, parse_tags, register, strip_query


@register
class Litfl(SourceEngine):
    name = "litfl"
    hosts = ("litfl.com", "i0.wp.com")

    def candidates(self, video) -> list[Candidate]:
        found = [Candidate(strip_query(video.url, "_"))]
        if getattr(video, "link", ""):
            found.append(Candidate(video.link, "page", "case page"))
        return found

    def parse_page(self, video, page, body, content_type) -> list[Candidate]:
        import urllib.parse

        wanted = basename(video.url)
        urls: dict[str, None] = {}
        for tag, attrs in parse_tags(body.decode("utf-8", "replace")):
            for key in ("src", "href"):
                if tag in ("source", "video", "a") and attrs.get(key):
                    url = strip_query(urllib.parse.urljoin(page.url, attrs[key]), "_")
                    if "/wp-content/uploads/" in url and basename(url) == wanted:
                        urls.setdefault(url, None)
        return [Candidate(url, "media", "case page link") for url in urls]

    def imitate(self, site, served, *, js_buttons=False) -> None:
        for video, clip in served:
            url = video.url.split("?", 1)[0]
            site.add_file(url, clip)
            if getattr(video, "link", ""):
                site.add_page(video.link, litfl_page(url))


def litfl_page(file_url: str) -> str:
    """A WordPress case page: a ``[video]`` shortcode player (``?_=1``, fallback link) and a block-editor figure."""
    src = html.escape(file_url)
    return ('<!DOCTYPE html><html><body><article><div class="entry-content"><p>Case</p>'
            '<div style="width: 640px;" class="wp-video"><video class="wp-video-shortcode" id="video-1-1" '
            f'preload="metadata" controls="controls"><source type="video/mp4" src="{src}?_=1" />'
            f'<a href="{src}">{src}</a></video></div>'
            f'<figure class="wp-block-video"><video controls src="{src}"></video></figure>'
            "</div></article></body></html>")
