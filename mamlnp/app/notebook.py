"""Small helpers the chapter notebooks share: fast mode and figure saving.

``MAMLNP_FAST=1`` (set by CI and by the notebook tests) shrinks iteration counts so that every
notebook runs in well under a minute. In fast mode figures go to a temporary folder, so running the
tests never overwrites the committed full-run figures in ``figures/``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .guard import write_figure

__all__ = ["FAST", "is_fast", "pick", "figures_dir", "save_figure"]


def is_fast() -> bool:
    return os.environ.get("MAMLNP_FAST", "").strip().lower() not in ("", "0", "false", "no")


FAST = is_fast()


def pick(full, fast):
    """``full`` normally, ``fast`` under MAMLNP_FAST=1 (e.g. ``iters = pick(5000, 200)``)."""
    return fast if is_fast() else full


def _repo_root(start: Path):
    for folder in (start, *start.parents):
        if (folder / "mamlnp").is_dir() and (folder / "figures").is_dir():
            return folder
    return None


def figures_dir() -> Path:
    """Where figures go: $MAMLNP_FIGURES if set; a temp folder in fast mode; else the repo's figures/."""
    if os.environ.get("MAMLNP_FIGURES"):
        path = Path(os.environ["MAMLNP_FIGURES"])
    elif is_fast():
        path = Path(tempfile.gettempdir()) / "mamlnp-fast-figures"
    else:
        root = _repo_root(Path.cwd().resolve()) or _repo_root(Path(__file__).resolve().parent)
        path = (root / "figures") if root else Path.cwd() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, name: str, dpi: int = 120) -> Path:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` (name should start with its chapter, e.g. ``ch03_1_contours``)."""
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain file stem like 'ch03_1_contours', got {name!r}")
    path = figures_dir() / f"{name}.png"
    write_figure(fig, path, dpi=dpi, bbox_inches="tight")
    return path
