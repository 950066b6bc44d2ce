"""Tiny releases and catalogue records for the tests: ``MINIMAL``/``write_minimal`` write a two-video release in the
upstream format (only the required columns), ``make_video`` builds one catalogue ``Video`` with the fields the
downloader reads. Clips come from clipfactory.py, the simulated release on a loopback site from site_fixtures.py."""

from __future__ import annotations

from pathlib import Path

from processing.release.catalogue import CropRule, Expected, MaskPlan, Video
from processing.windows import Window

MINIMAL = {
    "utils/video_metadata.csv": "id,filename,filetype,source,url,probe,class,version\n"
    "1_grepmed_covid,a.mp4,mp4,GrepMed,https://img.grepmed.com/uploads/1/a-original.mp4,Convex,COVID,1.0\n"
    "2_litfl_other,b.mp4,mp4,litfl,https://litfl.com/wp-content/uploads/2020/01/b.mp4,linear,other,1.2\n"
    ",,,,,,,\n",
    "utils/video_cropping_metadata.csv": "filename,del_upper,width_rate,x1_w_y1_h\n"
    "1_grepmed_covid.mp4,4,0.1,\n2_litfl_other.mp4,,,\"(2, 20, 0, 40)\"\n",
    "utils/mask_metadata.csv": "filename,need_mask_after_crop,mask_main_filename\n"
    "1_grepmed_covid.mp4,yes,1_grepmed_covid_prc_convex_frame0_mask.jpg\n2_litfl_other.mp4,no,\n",
    "utils/video_files_properties.csv": "filename,framerate,width,height,frame_count\n"
    "1_grepmed_covid.mp4,25.0,64.0,48.0,10.0\n2_litfl_other.mp4,10,32,40,5\n",
}


def write_minimal(root: Path, **overrides: str) -> Path:
    """Write MINIMAL (each file in ``overrides`` replaced) and its one mask under ``root``."""
    for rel, text in {**MINIMAL, **overrides}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="latin-1")
    (root / "data/mask").mkdir(parents=True, exist_ok=True)
    (root / "data/mask/1_grepmed_covid_prc_convex_frame0_mask.jpg").write_bytes(b"\xff\xd8")
    return root


def make_video(video_id: str, url: str, *, filename: str | None = None, link: str = "", filetype: str = "mp4",
               width: int = 64, height: int = 48, frames: int | None = 10, trusted: bool = True,
               label: str | None = None) -> Video:
    """A catalogue Video for ``video_id`` (``<n>_<source>_<label>``) with the fields the downloader reads."""
    number, source, default_label = video_id.split("_", 2)
    return Video(
        id=video_id, number=int(number), source=source, label=label or default_label, probe="convex",
        filetype=filetype, url=url, filename=filename or url.rstrip("/").rsplit("/", 1)[-1].split("?")[0],
        version_added="1.0", body_region="lung", patient_id=None, case_no=None, group=video_id, luss=None,
        clinical=(), licence="", link=link, crop_rule=CropRule("square", del_upper=0, width_rate=0.0),
        crop_window=Window(0, 0, min(width, height), min(width, height)), crop_size=(width, height),
        artifacts=frozenset(), masks=MaskPlan(False, None, (), (), False),
        expected=Expected(width, height, 10.0, frames, trusted))
