#!/usr/bin/env bash
# The Python package in CI: `pip install` from the repository (maturin builds the wheel),
# the pytest suite (including submissions to the real `kernelci kcidb serve`), and a short
# run of the benchmark against kcidb-io. Called by .ci/run; runs alone too.
#
# Environment:
#   KERNELCI_CI_CACHE  where the venv (and, by default, the cargo target dir) live
#                      (default /tmp/kernelci-ci, as .ci/run)
#   CARGO_TARGET_DIR   honoured by maturin: the release build of the wheel is cached there
#   KERNELCI_BIN       the kernelci binary for the submit tests (default:
#                      $CARGO_TARGET_DIR/debug/kernelci, built here when missing)
#   KERNELCI_FIXTURES  the shared fixtures (default ../shared/fixtures beside the repo)
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${KERNELCI_CI_CACHE:-/tmp/kernelci-ci}"
mkdir -p "$CACHE"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="$CACHE/py-venv"
PY="$VENV/bin/python"

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "python venv ($VENV): maturin, pytest, kcidb-io"
if [ ! -x "$PY" ] || ! "$PY" -c 'import pytest, kcidb_io' 2>/dev/null \
    || ! "$VENV/bin/maturin" --version >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q 'maturin>=1.9.4,<2' pytest kcidb-io
fi
"$PY" --version

step "pip install ./apps/kernelci-py (maturin, release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
t0=$SECONDS
"$PY" -m pip install -q --force-reinstall --no-deps ./apps/kernelci-py
echo "built and installed in $((SECONDS - t0)) s"
"$PY" -c 'import kernelci; print("kernelci", kernelci.__version__, "from", kernelci.__file__)'

step "the kernelci binary for the submit tests"
export KERNELCI_BIN="${KERNELCI_BIN:-$CARGO_TARGET_DIR/debug/kernelci}"
if [ ! -x "$KERNELCI_BIN" ]; then
  cargo build -p kernelci --bin kernelci --locked
fi
echo "$KERNELCI_BIN"

step "pytest"
# Run from the package folder so that tests import the installed package, not the sources.
(cd apps/kernelci-py && "$PY" -m pytest -q -p no:cacheprovider tests)

step "benchmark (quick)"
"$PY" apps/kernelci-py/bench.py --quick

echo
echo "kernelci-py CI done in $((SECONDS - started)) s"
