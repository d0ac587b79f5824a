"""Shim: discover the subpackages of each top-level folder and map them into the `aqa` namespace.

setup.cfg holds all metadata and the folder -> package mapping; this only expands
`aqa.extract` into `aqa.extract`, `aqa.extract.pose`, ... so both `pip install .` and
`pip install -e .` see every subpackage.
"""
from setuptools import find_packages, setup

ROOTS = {"aqa.extract": "extract", "aqa.heads": "heads", "aqa.data": "data", "aqa.pipelines": "pipelines"}

packages, package_dir = [], {}
for pkg, folder in ROOTS.items():
    packages.append(pkg)
    package_dir[pkg] = folder
    for sub in find_packages(where=folder):
        packages.append(f"{pkg}.{sub}")
        package_dir[f"{pkg}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
