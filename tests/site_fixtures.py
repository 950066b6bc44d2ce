"""Shared fixtures (registered in conftest.py via ``pytest_plugins``): the simulated release served on loopback.

``simulated_site(scale, frames)`` writes the demo's simulated release once per session for each size asked, loads
its catalogue (a custom release) and serves its clips on a started :class:`LoopbackSite`; every site stops at the
end of the session. Tests that change the site (faults) should make their own.
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

    made: dict[tuple[float, float], SimulatedSite] = {}

    def make(scale: float = 0.5, frames: float = 0.25) -> SimulatedSite:
        if (scale, frames) not in made:
            sim = write_simulated_release(tmp_path_factory.mktemp(f"sim-{scale}-{frames}"), scale=scale,
                                          frames=frames)
            catalogue = load_catalogue("1.5", sim.release_dir, custom=True)
            site = LoopbackSite.from_videos(catalogue.videos, clips=sim.clips).start()
            made[(scale, frames)] = SimulatedSite(sim, catalogue, site)
        return made[(scale, frames)]

    yield make
    for entry in made.values():
        entry.site.stop()
