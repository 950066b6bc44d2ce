"""Source engines: how each catalogue row becomes candidates and how each site's page is parsed; end to end through
the loopback imitation of every site (mirror prefix), including the Selenium and yt-dlp paths."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest
from clipfactory import noise_frames, write_clip
from releasefactory import make_video

from processing.demo.testsite import LoopbackSite, grepmed_page, litfl_page, video_page
from processing.errors import InvalidChoiceError
from processing.sources import BROWSER_USER_AGENT, Candidate, engines, get_engine
from processing.sources.clarius import presigned_expiry
from processing.sources.download import DownloadOptions, download_videos
from processing.sources.pocusatlas import short_form

TRANSFER = "https://butterflynetwork.getbynder.com/transfer/2cf9af2398bdc35b6b0d2100180cb69580198f41faeb4c25d9cdae61d1ca8e91"
GREPMED = "https://img.grepmed.com/uploads/7579/blines-lung-pulmonary-viral-pocus-original.mp4"
ATLAS = ("https://images.squarespace-cdn.com/content/v1/58118909e3df282037abfad7/1584912059748-B3CL2NYKBQ14AI6RGZYE/"
         "ke17ZwdGBToddI8pDm48kOyctPanBqSdf7WQMpY1FsRZw/Day+2.gif")
ATLAS_SHORT = ("https://images.squarespace-cdn.com/content/v1/58118909e3df282037abfad7/1584912059748-B3CL2NYKBQ14AI6RGZYE/"
               "Day+2.gif")
LITFL = "https://litfl.com/wp-content/uploads/2019/05/Pneumonia-case-3-LUS.mp4"
RADIO = "https://prod-images-static.radiopaedia.org/images/53989726/Emphesema_1.mp4"
PRESIGNED = ("https://cloud-ca.s3.amazonaws.com/I/28715/ci/0b7c.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AK%2F20210707%2Fca-central-1%2Fs3%2Faws4_request&X-Amz-Date=20210707T133258Z"
             "&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature=0f")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {"mp4": write_clip(folder / "a.mp4", noise_frames(10)),
            "mp4b": write_clip(folder / "b.mp4", noise_frames(10, seed=5)),
            "gif": write_clip(folder / "a.gif", noise_frames(10, seed=1))}


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def options(tmp_path: Path, site: LoopbackSite, **overrides) -> DownloadOptions:
    settings = dict(cache_dir=tmp_path / "cache", mirrors=(site.prefix,), timeout=5, retries=0, backoff=0, delay=0,
                    use_original=False)
    settings.update(overrides)
    return DownloadOptions(**settings)


# ---- registry and candidates (pure)

def test_registry_has_one_engine_per_catalogue_source():
    from processing.release.catalogue import SOURCES

    assert sorted(engines()) == sorted(SOURCES)
    for name, engine in engines().items():
        assert engine.name == name and engine.hosts


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(InvalidChoiceError, match="butterfly, clarius, core"):
        get_engine("youtube")


def test_hosts_match_subdomains_only():
    grepmed = get_engine("grepmed")
    assert grepmed.allows("img.grepmed.com") and grepmed.allows("www.grepmed.com")
    assert not grepmed.allows("grepmed.com.evil.example") and not grepmed.allows("notgrepmed.com")


def test_shared_cdns_admit_only_the_sources_own_distribution_or_bucket():
    core, clarius = get_engine("core"), get_engine("clarius")
    assert core.allows("d25ixnv6uinqzi.cloudfront.net") and not core.allows("d999someoneelse.cloudfront.net")
    assert core.allows("vod-progressive.akamaized.net") and not core.allows("evil.akamaized.net")
    assert clarius.allows("cloud-ca.s3.amazonaws.com") and not clarius.allows("other-bucket.s3.amazonaws.com")


def test_browser_user_agent_where_sites_refuse_others():
    assert {name for name, e in engines().items() if e.user_agent == BROWSER_USER_AGENT} == {"uf", "paper",
                                                                                               "clarius"}


def test_pocusatlas_drops_the_resize_query_and_adds_the_short_form():
    video = make_video("50_pocusatlas_covid", ATLAS + "?format=750w", filetype="gif",
                       link="https://www.thepocusatlas.com/covid19")
    found = get_engine("pocusatlas").candidates(video)
    assert [(c.url, c.kind) for c in found] == [
        (ATLAS, "media"), (ATLAS_SHORT, "media"), ("https://www.thepocusatlas.com/covid19", "page"),
        ("https://www.thepocusatlas.com/covid19?format=json", "page")]
    assert short_form(ATLAS_SHORT) is None


def test_pocusatlas_page_picks_the_catalogue_asset_among_several():
    video = make_video("50_pocusatlas_covid", ATLAS, filetype="gif", link="https://www.thepocusatlas.com/covid19")
    other = ATLAS_SHORT.replace("1584912059748-B3CL2NYKBQ14AI6RGZYE", "1584912023813-2HJSCJP8CYARBIFWY2TV")
    page = (f'<img data-src="{other}" data-image="{other}"><img data-src="{ATLAS_SHORT}?format=500w" '
            f'data-image="{ATLAS_SHORT}">').encode()
    engine = get_engine("pocusatlas")
    found = engine.parse_page(video, Candidate(video.link, "page"), page, "text/html")
    assert [c.url for c in found] == [ATLAS_SHORT]
    json_body = b'{"item": {"assetUrl": "' + ATLAS_SHORT.encode() + b'"}}'
    assert [c.url for c in engine.parse_page(video, Candidate(video.link + "?format=json", "page"), json_body,
                                             "application/json")] == [ATLAS_SHORT]


def test_grepmed_case_page_is_searched_for_the_original_upload():
    video = make_video("23_grepmed_pneumonia", GREPMED)
    engine = get_engine("grepmed")
    page = engine.candidates(video)[1]
    assert (page.url, page.kind) == ("https://www.grepmed.com/images/7579", "page")
    moved = "https://img.grepmed.com/uploads/7579/pocus-lung-blines-viral-original.mp4"
    found = engine.parse_page(video, page, grepmed_page(moved).encode(), "text/html")
    assert [c.url for c in found] == [moved]  # og:video and <source> name it twice: one candidate
    assert engine.parse_page(video, page, grepmed_page(moved.replace("7579", "7580")).encode(), "text/html") == []


def test_litfl_page_strips_the_shortcode_instance_query():
    video = make_video("121_litfl_pneumonia", LITFL, link="https://litfl.com/pneumonia-case-003/")
    engine = get_engine("litfl")
    page = engine.candidates(video)[1]
    found = engine.parse_page(video, page, litfl_page(LITFL).encode(), "text/html")
    assert [c.url for c in found] == [LITFL]


def test_radiopaedia_case_page_then_stacks_json():
    video = make_video("154_radio_other", RADIO, link="https://radiopaedia.org/cases/pneumonia-ultrasound-1")
    engine = get_engine("radio")
    page = engine.candidates(video)[1]
    stacks = engine.parse_page(video, page, b'<div data-study-id="12345"></div>', "text/html")
    assert [c.url for c in stacks] == ["https://radiopaedia.org/studies/12345/stacks"]
    body = (b'[{"modality":"Ultrasound","images":[{"id":1,"public_filename":"https://x/images/1/a.mp4"},'
            b'{"id":53989726,"public_filename":"' + RADIO.encode() + b'"}]}]')
    assert [c.url for c in engine.parse_page(video, stacks[0], body, "application/json")] == [RADIO]
    assert engine.parse_page(video, stacks[0], b"<html>Sorry</html>", "text/html") == []


def test_butterfly_button_link_becomes_the_shared_archive():
    video = make_video("1_butterfly_covid", TRANSFER, filename="Coalescing B lines.mp4")
    engine = get_engine("butterfly")
    page = engine.candidates(video)[0]
    body = b'<a class="btn">x</a><a class="btn btn-primary btn-lg" href="/transfer/abc/download">Download</a>'
    (found,) = engine.parse_page(video, page, body, "text/html")
    assert (found.url, found.kind, found.member) == (
        "https://butterflynetwork.getbynder.com/transfer/abc/download", "archive", "Coalescing B lines.mp4")
    assert engine.parse_page(video, page, b'<a class="btn btn-primary">Download</a>', "text/html") == []


def test_core_sends_vimeo_to_ytdlp_and_cloudfront_direct():
    engine = get_engine("core")
    assert engine.candidates(make_video("157_core_other", "https://vimeo.com/501985162"))[0].kind == "ytdlp"
    cloudfront = "https://d25ixnv6uinqzi.cloudfront.net/year2/uotw62.1.mp4"
    assert engine.candidates(make_video("163_core_covid", cloudfront))[0].kind == "media"


def test_clarius_presigned_expiry_is_read_from_the_query():
    assert presigned_expiry(PRESIGNED) == dt.datetime(2021, 7, 7, 13, 42, 58, tzinfo=dt.timezone.utc)
    assert presigned_expiry("https://clarius.com/wp-content/uploads/2020/03/3333.mp4") is None
    video = make_video("222_clarius_other", PRESIGNED, link="https://cloud.clarius.com/cases/28715/x/")
    engine = get_engine("clarius")
    assert "expired at 2021-07-07T13:42:58Z" in engine.unavailable(video, now=1.7e9)
    assert engine.unavailable(video, now=dt.datetime(2021, 7, 7, 13, 40, tzinfo=dt.timezone.utc).timestamp()) is None


# ---- end to end through the loopback imitation

def test_every_source_downloads_through_its_loopback_layout(tmp_path, clips):
    videos = [
        make_video("1_butterfly_covid", TRANSFER, filename="Coalescing B lines.mp4"),
        make_video("2_butterfly_covid", TRANSFER, filename="Confluent B lines.mp4"),
        make_video("23_grepmed_pneumonia", GREPMED),
        make_video("50_pocusatlas_covid", ATLAS, filetype="gif"),
        make_video("121_litfl_pneumonia", LITFL),
        make_video("154_radio_other", RADIO),
        make_video("163_core_covid", "https://d25ixnv6uinqzi.cloudfront.net/year2/uotw62.1.mp4"),
        make_video("175_uf_normal", "https://anest.ufl.edu/files/2016/10/Lung3-A-Lines.mp4"),
        make_video("199_paper_covid", "https://obgyn.onlinelibrary.wiley.com/action/downloadSupplement?"
                                      "doi=10.1002%2Fuog.22034&file=uog22034-sup-0001-VideoS1.mp4"),
        make_video("216_clarius_other", "https://clarius.com/wp-content/uploads/2020/03/3333.mp4"),
    ]
    served = {v.id: clips["gif" if v.filetype == "gif" else ("mp4b" if v.id.startswith("2_") else "mp4")]
              for v in videos}
    with LoopbackSite.from_videos(videos, served) as site:
        results = download_videos(videos, options(tmp_path, site, workers=4))
        assert {r.video_id: r.status for r in results} == {v.id: "mirror" for v in videos}, [r.reason for r in results]
        assert all(r.sha256 == sha(served[r.video_id]) for r in results)
        assert len(site.hits(TRANSFER + "/download")) == 1  # one archive fetch shared by both Butterfly clips
        assert site.hits(ATLAS)[0].status == 404 and site.hits(ATLAS_SHORT)[-1].status == 200
        assert all(hit.query != "format=750w" for hit in site.hits())


def test_a_video_without_a_served_clip_is_missing_with_reasons(tmp_path, clips):
    served, absent = make_video("23_grepmed_pneumonia", GREPMED), make_video("24_grepmed_covid", GREPMED.replace("7579", "7415"))
    with LoopbackSite.from_videos([served, absent], {served.id: clips["mp4"]}) as site:
        results = download_videos([served, absent], options(tmp_path, site))
    assert [r.status for r in results] == ["mirror", "missing"]
    assert "HTTP 404" in results[1].reason and "case page" in results[1].reason


def test_grepmed_falls_back_to_the_case_page_when_the_upload_slug_changed(tmp_path, clips):
    moved = "https://img.grepmed.com/uploads/7579/pocus-lung-blines-viral-original.mp4"
    video = make_video("23_grepmed_pneumonia", GREPMED)
    with LoopbackSite() as site:
        site.add_file(moved, clips["mp4"])
        site.add_page("https://www.grepmed.com/images/7579", grepmed_page(moved))
        (result,) = download_videos([video], options(tmp_path, site))
        assert (result.status, result.url, result.sha256) == ("mirror", site.url(moved), sha(clips["mp4"]))
        assert site.hits(GREPMED)[0].status == 404


@pytest.mark.parametrize("source", ["pocusatlas-page", "pocusatlas-json", "litfl", "radio"])
def test_case_page_fallbacks_find_a_moved_file(tmp_path, clips, source):
    """The catalogue URL is dead and the file moved: only the case page (or its JSON) knows where."""
    if source.startswith("pocusatlas"):
        video = make_video("50_pocusatlas_covid", ATLAS, filetype="gif", link="https://www.thepocusatlas.com/covid19")
        clip, old, moved = clips["gif"], ATLAS_SHORT, ATLAS_SHORT.replace("Day+2.gif", "image-asset.gif")
    elif source == "litfl":
        video = make_video("121_litfl_pneumonia", LITFL, link="https://litfl.com/pneumonia-case-003/")
        clip, old, moved = clips["mp4"], LITFL, LITFL.replace("2019/05", "2020/01")
    else:
        video = make_video("154_radio_other", RADIO, link="https://radiopaedia.org/cases/pneumonia-ultrasound-1")
        clip, old, moved = clips["mp4"], RADIO, RADIO.replace("Emphesema_1", "0a1b2c3d4e5f")
    with LoopbackSite.from_videos([video], {video.id: clip}) as site:
        site.fault(old, "404")
        site.add_file(moved, clip)
        for route in site.routes.values():  # the pages now name the moved file
            if route.content_type.startswith(("text/html", "application/json")):
                route.body = route.body.replace(old.encode(), moved.encode())
        if source == "pocusatlas-json":
            site.fault(video.link, "404")
        (result,) = download_videos([video], options(tmp_path, site))
        assert (result.status, result.sha256, result.url) == ("mirror", sha(clip), site.url(moved)), result.reason
        assert site.hits(old)[-1].status == 404


def test_clarius_expired_link_is_reported_without_a_request(tmp_path, clips):
    video = make_video("222_clarius_other", PRESIGNED, link="https://cloud.clarius.com/cases/28715/x/")
    with LoopbackSite.from_videos([video], {video.id: clips["mp4"]}) as site:
        (result,) = download_videos([video], options(tmp_path, site))
        assert result.status == "missing" and "presigned link expired at 2021-07-07T13:42:58Z" in result.reason
        assert site.hits() == []


def test_clarius_live_presigned_link_is_fetched(tmp_path, clips):
    fresh = PRESIGNED.replace("20210707T133258Z", dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    video = make_video("222_clarius_other", fresh)
    with LoopbackSite.from_videos([video], {video.id: clips["mp4"]}) as site:
        (result,) = download_videos([video], options(tmp_path, site))
    assert result.status == "mirror" and result.sha256 == sha(clips["mp4"])


def test_uf_is_refused_to_a_non_browser_agent(tmp_path, clips, monkeypatch):
    from processing.sources.uf import UF

    video = make_video("175_uf_normal", "https://anest.ufl.edu/files/2016/10/Lung3-A-Lines.mp4")
    with LoopbackSite.from_videos([video], {video.id: clips["mp4"]}) as site:
        monkeypatch.setattr(UF, "user_agent", None)
        (refused,) = download_videos([video], options(tmp_path, site))
        assert refused.status == "missing" and "HTTP 403" in refused.reason
        monkeypatch.setattr(UF, "user_agent", BROWSER_USER_AGENT)
        (fetched,) = download_videos([video], options(tmp_path, site))
        assert fetched.status == "mirror"
        assert site.hits()[-1].headers["user-agent"] == BROWSER_USER_AGENT


def test_vimeo_page_resolved_by_ytdlp_generic_extractor(tmp_path, clips):
    video = make_video("157_core_other", "https://vimeo.com/501985162")
    with LoopbackSite.from_videos([video], {video.id: clips["mp4"]}) as site:
        (result,) = download_videos([video], options(tmp_path, site))
        assert (result.status, result.sha256) == ("mirror", sha(clips["mp4"])), result.reason
        assert result.url == site.url("https://vod-progressive.akamaized.net/501985162/501985162.mp4")


def test_vimeo_failure_reports_ytdlp_reason(tmp_path):
    video = make_video("157_core_other", "https://vimeo.com/501985162")
    with LoopbackSite() as site:
        site.add_page(video.url, "<html><body><p>Verify you are human</p></body></html>")
        (result,) = download_videos([video], options(tmp_path, site))
    assert result.status == "missing" and "yt-dlp could not resolve" in result.reason
    assert "Unsupported URL" in result.reason or "no video" in result.reason.lower()


def test_video_page_helper_is_plain_html5():
    assert '<source src="https://a/b.mp4" type="video/mp4">' in video_page("t", "https://a/b.mp4")


@pytest.mark.browser
def test_butterfly_button_inserted_by_javascript_is_found_with_headless_chromium(tmp_path, clips):
    if not Path("/usr/bin/chromedriver").is_file() or not shutil.which("chromium"):
        pytest.skip("chromium and /usr/bin/chromedriver are not installed")
    videos = [make_video("1_butterfly_covid", TRANSFER, filename="Coalescing B lines.mp4")]
    with LoopbackSite.from_videos(videos, {videos[0].id: clips["mp4"]}, js_buttons=True) as site:
        static = get_engine("butterfly").parse_page(videos[0], Candidate(TRANSFER, "page"),
                                                    site.routes[(TRANSFER[8:], None)].body, "text/html")
        assert static == []  # the static HTML has no link: only the browser can find it
        (result,) = download_videos(videos, options(tmp_path, site))
        assert (result.status, result.sha256) == ("mirror", sha(clips["mp4"])), result.reason
        agents = [hit.headers.get("user-agent", "") for hit in site.hits(TRANSFER)]
        assert any("HeadlessChrome" in agent or "Chrome" in agent for agent in agents)


def test_browser_fallback_disabled_gives_a_clear_reason(tmp_path, clips):
    videos = [make_video("1_butterfly_covid", TRANSFER, filename="Coalescing B lines.mp4")]
    with LoopbackSite.from_videos(videos, {videos[0].id: clips["mp4"]}, js_buttons=True) as site:
        (result,) = download_videos(videos, options(tmp_path, site, browser=False))
    assert result.status == "missing" and "needs JavaScript and the browser is disabled" in result.reason


def test_missing_browser_is_a_clear_error(monkeypatch):
    from processing.sources.browser import BrowserUnavailableError, find_browser

    monkeypatch.setenv("COVIDX_US_CHROMEDRIVER", "/nonexistent/chromedriver")
    with pytest.raises(BrowserUnavailableError, match="chromedriver, which is not installed"):
        find_browser()


@pytest.mark.browser
def test_headless_browser_uses_the_system_driver_and_never_selenium_manager(monkeypatch):
    if not Path("/usr/bin/chromedriver").is_file() or not shutil.which("chromium"):
        pytest.skip("chromium and /usr/bin/chromedriver are not installed")
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    from processing.sources.browser import HeadlessBrowser

    def refuse(*args, **kwargs):
        raise AssertionError("Selenium Manager ran")

    monkeypatch.setattr(SeleniumManager, "binary_paths", refuse)
    script = ("<a id='a'>x</a><script>setTimeout(function () {"
              "document.getElementById('a').setAttribute('href', '/clip.mp4');}, 100);</script>")
    with LoopbackSite() as site:
        site.add_page("https://example.org/case", script)
        with HeadlessBrowser() as browser:
            dom = browser.render(site.url("https://example.org/case"), wait_css="a[href]", timeout=5)
    assert 'href="/clip.mp4"' in dom
