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
