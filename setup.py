"""Packaging beyond what pyproject.toml can say: the repository's top-level ``schemas/`` ships
inside the package, as ``scim_server/schemas`` (``default_schema_dir`` finds it there once
installed, and beside the package in a source checkout). Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["scim_server*"]) + ["scim_server.schemas"],
    package_dir={"scim_server.schemas": "schemas"},
)
