"""Shared helpers: where the repository's and the shared fixtures are.

The shared fixtures (``../shared/fixtures`` beside the repository, or ``$KERNELCI_FIXTURES``)
are skipped when missing, except under CI (``CI`` set and not ``false``), where a missing
folder fails, as the Rust tests do (``kernelci_tests::fixture_dir``).
"""

import os
import pathlib

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]


def in_ci() -> bool:
    value = os.environ.get("CI", "")
    return value not in ("", "false")


def fixture_dir(sub: str) -> pathlib.Path:
    """The shared fixture folder ``sub`` (e.g. ``kcidb/small``), or a skip outside CI."""
    root = os.environ.get("KERNELCI_FIXTURES") or str(REPO.parent / "shared" / "fixtures")
    path = pathlib.Path(root) / sub
    if path.is_dir():
        return path
    if in_ci():
        pytest.fail(f"fixtures not found at {path} (set KERNELCI_FIXTURES)")
    pytest.skip(f"fixtures not found at {path} (set KERNELCI_FIXTURES)")
