"""LoopbackSite: a real HTTP server that lays out every source under /<host>/<path> and injects faults."""

from __future__ import annotations

import http.client
import io
import json
import zipfile

import pytest
import requests
from clipfactory import noise_frames, write_clip
from releasefactory import make_video

from processing.demo.testsite import FAULTS, LoopbackSite, make_zip

GREPMED = "https://img.grepmed.com/uploads/7579/blines-lung-pulmonary-viral-pocus-original.mp4"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips") / "a.mp4", noise_frames(10))


def test_serves_original_urls_under_host_and_path(clip):
    with LoopbackSite() as site:
        site.add_file(GREPMED, clip)
        response = requests.get(site.prefix + "img.grepmed.com/uploads/7579/"
                                "blines-lung-pulmonary-viral-pocus-original.mp4", timeout=5)
        assert response.status_code == 200
        assert response.content == clip.read_bytes()
        assert response.headers["Content-Type"] == "video/mp4"
        assert requests.get(site.url(GREPMED + "x"), timeout=5).status_code == 404
        assert [hit.status for hit in site.hits(GREPMED)] == [200]


def test_hits_waits_for_a_response_the_client_already_has(clip, monkeypatch):
    # The server thread logs a hit after the body is written; a client that has read the whole body can ask for
    # hits() first (a CI run saw a download's second request missing from the log). Make the logging slow.
    import time

    from processing.demo import testsite

    record = testsite._Handler._record

    def late(self, *args):
        time.sleep(0.3)
        record(self, *args)

    monkeypatch.setattr(testsite._Handler, "_record", late)
    with LoopbackSite() as site:
        site.add_file(GREPMED, clip)
        for _ in range(3):
            assert requests.get(site.url(GREPMED), timeout=5).content == clip.read_bytes()
            assert requests.get(site.url(GREPMED + "x"), timeout=5).status_code == 404
        assert len(site.hits(GREPMED)) == 3 and len(site.hits(GREPMED + "x")) == 3


def test_range_request_gets_206_and_the_tail(clip):
    data = clip.read_bytes()
    with LoopbackSite() as site:
        site.add_file(GREPMED, clip)
        etag = requests.get(site.url(GREPMED), timeout=5).headers["ETag"]
        tail = requests.get(site.url(GREPMED), headers={"Range": "bytes=100-", "If-Range": etag}, timeout=5)
        assert tail.status_code == 206
        assert tail.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
        assert tail.content == data[100:]
        stale = requests.get(site.url(GREPMED), headers={"Range": "bytes=100-", "If-Range": '"other"'}, timeout=5)
        assert stale.status_code == 200 and stale.content == data


def test_cut_once_drops_the_first_body_then_serves_normally(clip):
    with LoopbackSite() as site:
        site.add_file(GREPMED, clip)
        site.fault(GREPMED, "cut-once")
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(site.url(GREPMED), timeout=5).content  # noqa: B018
        assert requests.get(site.url(GREPMED), timeout=5).content == clip.read_bytes()


@pytest.mark.parametrize("kind, status", [("404", 404), ("403", 403), ("500-then-ok", 500), ("429-then-ok", 429),
                                          ("html", 200), ("redirect", 302)])
def test_status_faults(clip, kind, status):
    with LoopbackSite() as site:
        site.add_file(GREPMED, clip)
        site.fault(GREPMED, kind, location="http://elsewhere.example/x.mp4")
        response = requests.get(site.url(GREPMED), timeout=5, allow_redirects=False)
        assert response.status_code == status
        if kind == "html":
            assert response.content.startswith(b"<!DOCTYPE html>")
        if kind.endswith("then-ok"):
            assert requests.get(site.url(GREPMED), timeout=5).content == clip.read_bytes()


def test_truncate_announces_more_than_it_sends(clip):
    with LoopbackSite() as site:
        site.add_file(GREPMED, clip)
        site.fault(GREPMED, "truncate")
        connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=5)
        connection.request("GET", "/img.grepmed.com/uploads/7579/blines-lung-pulmonary-viral-pocus-original.mp4")
        response = connection.getresponse()
        assert int(response.headers["Content-Length"]) == clip.stat().st_size
        with pytest.raises(http.client.IncompleteRead):
            response.read()


def test_reset_drops_the_connection(clip):
    with LoopbackSite() as site:
        site.add_file(GREPMED, clip)
        site.fault(GREPMED, "reset")
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(site.url(GREPMED), timeout=5)


def test_unknown_fault_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid values: " + ", ".join(FAULTS[:2])):
        LoopbackSite().fault(GREPMED, "explode")


def test_from_videos_lays_out_each_source(tmp_path, clip):
    gif = write_clip(tmp_path / "a.gif", noise_frames(10, seed=1))
    transfer = "https://butterflynetwork.getbynder.com/transfer/" + "ab" * 32
    atlas = ("https://images.squarespace-cdn.com/content/v1/58118909e3df282037abfad7/1584912023813-2HJSCJP8CYARB"
             "IFWY2TV/ke17ZwdGBToddI8pDm48kOyc/image-asset.gif")
    videos = [
        make_video("1_butterfly_covid", transfer, filename="Coalescing B lines.mp4"),
        make_video("2_butterfly_covid", transfer, filename="Confluent B lines.mp4"),
        make_video("23_grepmed_pneumonia", GREPMED),
        make_video("49_pocusatlas_covid", atlas, filetype="gif", link="https://www.thepocusatlas.com/covid19"),
        make_video("175_uf_normal", "https://anest.ufl.edu/files/2016/10/Lung3-A-Lines.mp4"),
    ]
    clips = {v.id: (gif if v.source == "pocusatlas" else clip) for v in videos}
    with LoopbackSite.from_videos(videos, clips) as site:
        page = requests.get(site.url(transfer), timeout=5).text
        assert 'class="btn btn-primary"' in page and f"/transfer/{'ab' * 32}/download" in page
        archive = zipfile.ZipFile(io.BytesIO(requests.get(site.url(transfer + "/download"), timeout=5).content))
        assert sorted(archive.namelist()) == ["Published/B lines/Coalescing B lines.mp4",
                                              "Published/B lines/Coalescing B lines.png",
                                              "Published/B lines/Confluent B lines.mp4",
                                              "Published/B lines/Confluent B lines.png"]
        assert GREPMED in requests.get(site.url("https://www.grepmed.com/images/7579"), timeout=5).text
        short = atlas.replace("/ke17ZwdGBToddI8pDm48kOyc", "")
        assert requests.get(site.url(atlas), timeout=5).status_code == 404
        assert requests.get(site.url(short), timeout=5).content == gif.read_bytes()
        resized = requests.get(site.url(short + "?format=750w"), timeout=5).content
        assert resized.startswith(b"GIF89a") and resized != gif.read_bytes()
        item = json.loads(requests.get(site.url(videos[3].link + "?format=json"), timeout=5).text)["item"]
        assert item["assetUrl"] == short
        uf = site.url(videos[4].url)
        assert requests.get(uf, timeout=5, headers={"User-Agent": "python-requests"}).status_code == 403
        assert requests.get(uf, timeout=5, headers={"User-Agent": "Mozilla/5.0 (X11)"}).status_code == 200


def test_presigned_route_follows_the_site_clock(clip):
    url = ("https://cloud-ca.s3.amazonaws.com/I/1/ci/x.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           "&X-Amz-Date=20210707T133258Z&X-Amz-Expires=600&X-Amz-Signature=abc")
    now = [1625664800.0]  # 2021-07-07T13:33:20Z: within the 600 s
    video = make_video("222_clarius_other", url)
    with LoopbackSite.from_videos([video], {video.id: clip}, clock=lambda: now[0]) as site:
        assert requests.get(site.url(url), timeout=5).status_code == 200
        now[0] += 3600
        expired = requests.get(site.url(url), timeout=5)
        assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_make_zip_keeps_unsafe_names_verbatim():
    archive = zipfile.ZipFile(io.BytesIO(make_zip({"../../x": b"boom", "ok.txt": b"fine"})))
    assert archive.namelist() == ["../../x", "ok.txt"]
