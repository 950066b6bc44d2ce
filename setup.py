"""Ship the repository's top-level data files (metadata/, masks/, dataset_infos.json) inside the wheel.

They stay where the design card puts them, at the top of the repository; at build time a copy goes into
``processing/_data/``, which ``processing.project.data_path`` reads when no checkout is around the installed code.
Everything else about the package is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_NAMES = ("metadata", "masks", "dataset_infos.json")  # as processing.project.DATA_NAMES


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout itself
            return
        target = Path(self.build_lib) / "processing" / "_data"
        for name in DATA_NAMES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(".*", "__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildPyWithData})
