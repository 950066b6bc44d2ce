"""CoreUltrasound: ``vimeo.com/<id>`` pages resolved by yt-dlp's Python API, and CloudFront ``.mp4`` files fetched
directly. Vimeo often blocks anonymous clients (Cloudflare challenge, login-only source formats); yt-dlp's message
is reported as the reason when it fails.
"""

from __future__ import annotations

import urllib.parse

from processing.sources import Candidate, SourceEngine, register


@register
class Core(SourceEngine):
    name = "core"
    # Exact CDN hosts only: a shared CDN's suffix (cloudfront.net, akamaized.net) would admit anyone's distribution.
    hosts = ("d25ixnv6uinqzi.cloudfront.net", "vimeo.com", "vimeocdn.com", "vod-progressive.akamaized.net",
             "coreultrasound.com", "ultrasoundoftheweek.com")

    def candidates(self, video) -> list[Candidate]:
        host = urllib.parse.urlsplit(video.url).hostname or ""
        if host == "vimeo.com" or host.endswith(".vimeo.com"):
            return [Candidate(video.url, "ytdlp", "Vimeo page (yt-dlp)")]
        return [Candidate(video.url)]

    def imitate(self, site, served, *, js_buttons=False) -> None:
        from processing.sources.imitation import video_page

        pages: set[str] = set()
        for video, clip in served:
            host = urllib.parse.urlsplit(video.url).hostname or ""
            if not host.endswith("vimeo.com"):
                site.add_file(video.url, clip)
            elif video.url not in pages:  # two clips cut from one Vimeo video: the page serves the first
                pages.add(video.url)
                vimeo_id = video.url.rstrip("/").rsplit("/", 1)[-1]
                media = f"https://vod-progressive.akamaized.net/{vimeo_id}/{vimeo_id}.mp4"
                site.add_file(media, clip)
                site.add_page(video.url, video_page(f"Vimeo {vimeo_id}", media))
