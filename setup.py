"""Maps the top folders engine/, bridge/, export/ to filmscore.engine, filmscore.bridge, filmscore.export.

pyproject.toml cannot express "every subpackage of folder X, renamed under prefix Y", so this walks the folders.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
TOP_FOLDERS = ("engine", "bridge", "export")

packages: list[str] = []
package_dir: dict[str, str] = {}
for folder in TOP_FOLDERS:
    packages.append(f"filmscore.{folder}")
    package_dir[f"filmscore.{folder}"] = folder
    for sub in find_packages(where=str(ROOT / folder)):
        packages.append(f"filmscore.{folder}.{sub}")

setup(
    packages=packages,
    package_dir=package_dir,
    # The data folders (default_bundle/, maestros/, metrics/evalset/) are not Python packages: they ship as
    # package data of filmscore.engine, named here. include-package-data is off (pyproject.toml), or setuptools
    # would also treat each of those folders as a package it "would ignore" and warn once per folder.
    package_data={"filmscore.engine": ["default_bundle/*", "maestros/*", "maestros/**/*", "metrics/evalset/*",
                                       "metrics/evalset/*/*"]},
)
