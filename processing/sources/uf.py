"""University of Florida (anest.ufl.edu/files/2016/...): direct files, served only to a browser User-Agent."""

from __future__ import annotations

from processing.sources import BROWSER_USER_AGENT, SourceEngine, register


@register
class UF(SourceEngine):
    name = "uf"
    hosts = ("anest.ufl.edu", "ufl.edu")
    user_agent = BROWSER_USER_AGENT

    def imitate(self, site, served, *, js_buttons=False) -> None:
        for video, clip in served:
            site.add_file(video.url, clip, browser_only=True)
