"""Kept for tools that still call `setup.py`; the project's metadata is in pyproject.toml."""

from setuptools import setup

setup()
