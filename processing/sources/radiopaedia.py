"""Radiopaedia: direct ``prod-images-static.radiopaedia.org/images/<imageId>/<file>`` URLs.

Fallback (when the catalogue ``link`` names the case page): the page's ``div[data-study-id]`` give study ids;
``/studies/<id>/stacks`` is a JSON array of stacks whose images carry ``public_filename`` (the original file). The
image whose ``id`` equals the catalogue URL's image id is taken; a body that is not a JSON array is a failure.
"""

from __future__ import annotations

import json
import re
import urllib.parse

from processing.sources import Candidate, SourceEngine, find_urls, register

_IMAGE_ID = re.compile(r"/images/(\d+)/")


@register
class Radiopaedia(SourceEngine):
    name = "radio"
    hosts = ("prod-images-static.radiopaedia.org", "radiopaedia.org")

    def candidates(self, video) -> list[Candidate]:
        found = [Candidate(video.url)]
        if getattr(video, "link", ""):
            found.append(Candidate(video.link, "page", "case page"))
        return found

    def parse_page(self, video, page, body, content_type) -> list[Candidate]:
        text = body.decode("utf-8", "replace")
        if "/stacks" not in urllib.parse.urlsplit(page.url).path:
            studies = find_urls(text, r"""data-study-id=["'](\d+)["']""", page.url)
            return [Candidate(urllib.parse.urljoin(page.url, f"/studies/{s.rsplit('/', 1)[-1]}/stacks"), "page",
                              "study stacks") for s in studies]
        if not text.lstrip().startswith("["):
            return []
        try:
            stacks = json.loads(text)
        except ValueError:
            return []
        match = _IMAGE_ID.search(video.url)
        wanted = int(match.group(1)) if match else None
        found = []
        for stack in stacks if isinstance(stacks, list) else []:
            for image in stack.get("images") or []:
                url = image.get("public_filename")
                if url and (wanted is None or image.get("id") == wanted):
                    found.append(Candidate(urllib.parse.urljoin(page.url, url), "media", "study stacks image"))
        return found

    def imitate(self, site, served, *, js_buttons=False) -> None:
        for video, clip in served:
            site.add_file(video.url, clip)
            if getattr(video, "link", ""):
                match = _IMAGE_ID.search(video.url)
                image_id = int(match.group(1)) if match else 1
                study = 900000 + image_id % 100000
                site.add_page(video.link, f'<html><body><div class="case-study" data-study-id="{study}"></div>'
                                          "<script>var stackedImages = [];</script></body></html>")
                stacks = [{"modality": "Ultrasound", "images": [{
                    "id": image_id, "position": 1, "content_type": "video/mp4", "public_filename": video.url,
                    "fullscreen_filename": video.url.rsplit(".", 1)[0] + "_big_gallery.jpeg"}]}]
                site.add(f"https://radiopaedia.org/studies/{study}/stacks", json.dumps(stacks).encode(),
                         "application/json; charset=utf-8")
