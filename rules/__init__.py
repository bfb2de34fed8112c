"""Policies as code: policy files, the field catalog, validation and the reference evaluation."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
"""The repository's `data/` folder: bundled policy library and code lists."""
