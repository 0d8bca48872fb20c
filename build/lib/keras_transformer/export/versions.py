"""Versions: OUT/N/ folders, the next free number, and an atomic publish that never overwrites one."""

import os
from pathlib import Path

from keras_transformer.export.artifacts import ExportError


def next_version(base) -> int:
    """1 + the highest numbered version under `base` (1 when there is none)."""
    base = Path(base)
    if not base.is_dir():
        return 1
    return max((int(child.name) for child in base.iterdir()
                if child.is_dir() and child.name.isdigit()), default=0) + 1


def check_version(base, version):
    if version is None:
        return
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be a positive integer, got {version!r}")
    if (Path(base) / str(version)).exists():
        raise ExportError(f"{Path(base) / str(version)} exists and versions are never "
                          "overwritten; leave the version out to write the next one "
                          f"({next_version(base)})")


def publish(staging, base, version):
    """Renames the finished staging folder to base/version (the next free one if None).

    The rename is atomic and fails if the name is taken, so concurrent exports do not
    overwrite each other: an explicit version then errs, an automatic one takes the next.
    """
    while True:
        number = version if version is not None else next_version(base)
        target = base / str(number)
        if target.exists():
            check_version(base, version)  # raises for an explicit version
            continue
        try:
            os.rename(staging, target)
            return target
        except OSError:
            if not target.exists():
                raise
            check_version(base, version)
