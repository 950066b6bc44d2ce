"""Clarius: ``clarius.com/wp-content/uploads/...`` files fetched directly (browser User-Agent), and presigned S3
links (``cloud-ca.s3.amazonaws.com/...?X-Amz-Date=...&X-Amz-Expires=...``) that died minutes after the release
was written: once ``X-Amz-Date + X-Amz-Expires`` is past they are reported unavailable, without a request.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse

from processing.sources import BROWSER_USER_AGENT, SourceEngine, register


def presigned_expiry(url: str) -> dt.datetime | None:
    """When a presigned S3 URL stops working (UTC), or None when ``url`` is not presigned."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    if "X-Amz-Date" not in query or "X-Amz-Expires" not in query:
        return None
    try:
        signed = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        return signed + dt.timedelta(seconds=int(query["X-Amz-Expires"]))
    except ValueError:
        return None


@register
class Clarius(SourceEngine):
    name = "clarius"
    hosts = ("clarius.com", "cloud-ca.s3.amazonaws.com")  # the bucket itself, not every S3 bucket
    user_agent = BROWSER_USER_AGENT

    def unavailable(self, video, now: float) -> str | None:
        expiry = presigned_expiry(video.url)
        if expiry is not None and expiry.timestamp() <= now:
            return (f"presigned link expired at {expiry:%Y-%m-%dT%H:%M:%SZ} (X-Amz-Date + X-Amz-Expires); "
                    f"the case page {video.link or '(none)'} mints new links only in a browser")
        return None

    def imitate(self, site, served, *, js_buttons=False) -> None:
        from processing.sources.imitation import CONTENT_TYPES

        for video, clip in served:
            data = clip.read_bytes()
            expiry = presigned_expiry(video.url)
            if expiry is None:
                site.add(video.url, data, CONTENT_TYPES.get(clip.suffix.lower()))
            else:  # answers 403 "Request has expired" once past, by the site's clock
                site.add(video.url, handler=_presigned(data, expiry.timestamp()), match_query=True)


def _presigned(data: bytes, expires: float):
    def answer(site, _headers) -> tuple[int, dict[str, str], bytes]:
        if site.clock() > expires:
            return 403, {"Content-Type": "application/xml"}, (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                b"<Message>Request has expired</Message></Error>")
        return 200, {"Content-Type": "video/mp4"}, data

    return answer
