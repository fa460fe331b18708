"""Package discovery for the folder-to-namespace mapping declared in pyproject.toml.

The top-level folders drivers/, protocols/, ... are installed as robochem.drivers,
robochem.protocols, ...; every folder below them that has an __init__.py becomes a
sub-package, so nothing needs listing by hand.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {
    "robochem": "robochem",
    "robochem.drivers": "drivers",
    "robochem.protocols": "protocols",
    "robochem.optimizer": "optimizer",
    "robochem.web": "web",
    "robochem.simulator": "simulator",
}


def discover_packages() -> list[str]:
    here = Path(__file__).parent
    found = []
    for name, folder in ROOTS.items():
        base = here / folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base)
            found.append(".".join((name, *rel.parts)))
    return found


setup(packages=discover_packages())
