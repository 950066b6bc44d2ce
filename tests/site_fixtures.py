"""Shared fixtures (registered in conftest.py via ``pytest_plugins``): the simulated release served on loopback.

``simulated_site(scale, frames, missing=())`` writes the demo's simulated release once per session for each size
asked, loads its catalogue (a custom release) and serves its clips on a started :class:`LoopbackSite` in each source's
URL layout; the videos named in ``missing`` answer HTTP 404 there for the whole session (a separate site over the same
release). Every site stops at the end of the session.

The sites are shared: a test that injects another fault resets it in a ``finally``, and a test that counts requests
counts those it made (``len(site.hits())`` before and after), never the total.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class SimulatedSite:
    sim: Any  # processing.demo.simrelease.SimulatedRelease: clips, ground truth, URLs
    catalogue: Any  # its catalogue, loaded as a custom release
    site: Any  # the started LoopbackSite serving every clip under its source's URL layout

    @property
    def mirror(self) -> str:
        return self.site.prefix


@pytest.fixture(scope="session")
def simulated_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SimulatedSite]]:
    from processing.demo.simrelease import write_simulated_release
    from processing.demo.testsite import LoopbackSite
    from processing.release.catalogue import load_catalogue

    releases: dict[tuple[float, float], tuple[Any, Any]] = {}
    made: dict[tuple[float, float, tuple[str, ...]], SimulatedSite] = {}

    def make(scale: float = 0.5, frames: float = 0.25, missing: tuple[str, ...] = ()) -> SimulatedSite:
        missing = tuple(sorted(missing))
        if (scale, frames) not in releases:
            sim = write_simulated_release(tmp_path_factory.mktemp(f"sim-{scale}-{frames}"), scale=scale,
                                          frames=frames)
            releases[scale, frames] = sim, load_catalogue("1.5", sim.release_dir, custom=True)
        if (scale, frames, missing) not in made:
            sim, catalogue = releases[scale, frames]
            site = LoopbackSite.from_videos(catalogue.videos, clips=sim.clips).start()
            for video_id in missing:
                site.fault(catalogue[video_id].url, "404")  # a 404 fault answers 404 until it is reset
            made[scale, frames, missing] = SimulatedSite(sim, catalogue, site)
        return made[scale, frames, missing]

    yield make
    for entry in made.values():
        entry.site.stop()
