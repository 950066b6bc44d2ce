"""Papers: publishers' supplementary files (Wiley ``downloadSupplement``, Springer ``static-content``, Elsevier
``els-cdn``), fetched directly with a browser User-Agent."""

from __future__ import annotations

from processing.sources import BROWSER_USER_AGENT, SourceEngine, register


@register
class Paper(SourceEngine):
    name = "paper"
    hosts = ("onlinelibrary.wiley.com", "wiley.com", "static-content.springer.com", "springer.com",
             "ars.els-cdn.com", "els-cdn.com", "elsevier.com")
    user_agent = BROWSER_USER_AGENT

    def imitate(self, site, served, *, js_buttons=False) -> None:
        for video, clip in served:
            site.add_file(video.url, clip, browser_only=True, match_query=True)
