"""Package discovery only; everything else is in pyproject.toml.

The rule catalog (rules/) and the corpus (corpus/) live at the top of the repository
but ship inside the wheel as magneton.rules_catalog and magneton.corpus_cases, so
`pip install magneton` has them. pyproject.toml cannot combine automatic discovery
with such a mapping; this file can.
"""

from setuptools import find_packages, setup

SHIPPED_FOLDERS = {"magneton.rules_catalog": "rules", "magneton.corpus_cases": "corpus"}

setup(
    packages=find_packages(include=["magneton", "magneton.*"]) + list(SHIPPED_FOLDERS),
    package_dir=SHIPPED_FOLDERS,
)
