#!/usr/bin/env python3
"""Speed of the `kernelci` package against the upstream Python packages, from Python.

KCIDB: validating the same documents with `kernelci.kcidb` and with the reference validator
`kcidb_io` (pip `kcidb-io`), in two forms:
  - bytes -> verdict: what a receiver does with a submitted file (kcidb-io: json.loads then
    `kcidb_io.schema.LATEST.validate`; kernelci: `kcidb.is_valid(bytes)` / `validate(bytes)`);
  - dict -> verdict: a document already in memory (kernelci serializes it with json.dumps
    first, which is included in its time).
and v4.5 -> v5.3 upgrades when the shared upgrade set is there.

logspec: the upstream Python logspec is not on PyPI (shared/specs/real-peers.md §4.2), so
only our throughput is printed, with no comparison.

Documents: the shared fixtures `kcidb/small/*.json` (5 v5.3 submissions, 967 objects) when
found ($KERNELCI_FIXTURES or ../shared/fixtures beside the repository), else generated ones.

    python bench.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pathlib
import statistics
import sys
import time

import kernelci
from kernelci import kcidb, logspec

REPO = pathlib.Path(__file__).resolve().parents[2]


def fixtures_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KERNELCI_FIXTURES") or REPO.parent / "shared" / "fixtures")


def generated_documents(count: int = 5, builds: int = 40, tests: int = 5) -> list[bytes]:
    docs = []
    for d in range(count):
        checkout = f"lab:c{d}"
        doc = {
            "version": {"major": 5, "minor": 3},
            "checkouts": [
                {
                    "id": checkout,
                    "origin": "lab",
                    "tree_name": "mainline",
                    "git_repository_url": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
                    "git_commit_hash": "0123456789abcdef0123456789abcdef01234567",
                    "start_time": "2025-01-01T00:00:00.000000+00:00",
                }
            ],
            "builds": [],
            "tests": [],
        }
        for b in range(builds):
            build_id = f"lab:b{d}-{b}"
            doc["builds"].append(
                {
                    "id": build_id,
                    "origin": "lab",
                    "checkout_id": checkout,
                    "architecture": "arm64",
                    "config_name": "defconfig",
                    "compiler": "gcc-12",
                    "status": "PASS",
                    "start_time": "2025-01-01T00:10:00.000000+00:00",
                    "duration": 512.25,
                    "log_url": f"https://storage.example.org/logs/{build_id}.txt",
                }
            )
            for t in range(tests):
                doc["tests"].append(
                    {
                        "id": f"lab:t{d}-{b}-{t}",
                        "origin": "lab",
                        "build_id": build_id,
                        "path": f"kselftest.suite{t}.case{t}",
                        "status": "FAIL" if t == 3 else "PASS",
                        "environment": {"comment": "qemu", "compatible": ["qemu,x86_64"]},
                        "start_time": "2025-01-01T00:20:00.000000+00:00",
                        "misc": {"runtime": "lava", "job": t},
                    }
                )
        docs.append(json.dumps(doc, indent=1).encode())
    return docs


def documents() -> tuple[str, list[bytes]]:
    small = fixtures_root() / "kcidb" / "small"
    files = sorted(small.glob("*.json")) if small.is_dir() else []
    if files:
        return f"shared fixtures {small}", [p.read_bytes() for p in files]
    return "generated documents (shared fixtures not found)", generated_documents()


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def timed(fn, rounds: int) -> float:
    """The median of `rounds` timings of fn(), in seconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(label: str, seconds: float, megabytes: float, objects: int, baseline: float | None = None) -> None:
    speedup = f"{baseline / seconds:8.1f}x" if baseline else " " * 9
    print(
        f"  {label:<50} {seconds * 1e3:9.2f} ms {megabytes / seconds:9.1f} MB/s "
        f"{objects / seconds:11.0f} obj/s {speedup}"
    )


def bench_kcidb(rounds: int) -> None:
    source, raw = documents()
    dicts = [json.loads(b) for b in raw]
    megabytes = sum(map(len, raw)) / 1e6
    objects = sum(len(v) for d in dicts for k, v in d.items() if k != "version")
    print(f"KCIDB validation: {len(raw)} documents, {megabytes:.2f} MB, {objects} objects ({source})")
    print(f"  median of {rounds} rounds, all documents per round")

    ours_bytes = timed(lambda: [kcidb.is_valid(b) for b in raw], rounds)
    ours_list = timed(lambda: [kcidb.validate(b) for b in raw], rounds)
    ours_dict = timed(lambda: [kcidb.is_valid(d) for d in dicts], rounds)
    ours_load = timed(lambda: [kcidb.load(b) for b in raw], rounds)
    assert all(kcidb.is_valid(b) for b in raw)
    try:
        import kcidb_io  # noqa: PLC0415
    except ImportError:
        kcidb_io = None
        print("  kcidb_io is not installed (pip install kcidb-io): no comparison")
    ref_bytes = ref_dict = None
    if kcidb_io is not None:
        latest = kcidb_io.schema.LATEST
        ref_bytes = timed(lambda: [latest.validate(json.loads(b)) for b in raw], rounds)
        ref_dict = timed(lambda: [latest.validate(d) for d in dicts], rounds)
        print(f"  kcidb-io {package_version('kcidb-io')}, jsonschema {package_version('jsonschema')}, "
              f"format checkers: rfc3339-validator {package_version('rfc3339-validator')}, "
              f"rfc3987 {package_version('rfc3987')}")
        row("kcidb_io: json.loads + LATEST.validate", ref_bytes, megabytes, objects)
    row("kernelci: kcidb.is_valid(bytes)", ours_bytes, megabytes, objects, ref_bytes)
    row("kernelci: kcidb.validate(bytes) (problem list)", ours_list, megabytes, objects, ref_bytes)
    row("kernelci: kcidb.load(bytes) (typed, to dict)", ours_load, megabytes, objects, ref_bytes)
    if kcidb_io is not None:
        row("kcidb_io: LATEST.validate(dict)", ref_dict, megabytes, objects)
    row("kernelci: kcidb.is_valid(dict) (json.dumps incl.)", ours_dict, megabytes, objects, ref_dict)

    upgrade_file = fixtures_root() / "kcidb" / "upgrade" / "v4.5.json"
    if kcidb_io is not None and upgrade_file.is_file():
        doc_bytes = upgrade_file.read_bytes()
        doc = json.loads(doc_bytes)
        n = 200
        ref = timed(lambda: [latest.upgrade(latest.validate(doc)) for _ in range(n)], max(1, rounds // 2))
        ours = timed(lambda: [kcidb.upgrade(doc) for _ in range(n)], max(1, rounds // 2))
        assert kcidb.upgrade(doc) == latest.upgrade(doc)
        print(f"KCIDB upgrade v4.5 -> v5.3 (validate + upgrade), {n} x {upgrade_file.name}:")
        print(f"  kcidb_io: {ref * 1e3:8.2f} ms   kernelci: {ours * 1e3:8.2f} ms   speed-up {ref / ours:.1f}x")


def bench_logspec(rounds: int) -> None:
    qemu = REPO / "kernelci-logspec" / "tests" / "data" / "qemu"
    logs = [p.read_bytes() for p in sorted(qemu.glob("*.log"))]
    fixtures = fixtures_root() / "logspec"
    cases = []
    if fixtures.is_dir():
        for path in sorted(fixtures.glob("*/*.log")):
            expected = path.with_suffix(".expected.json")
            if expected.exists():
                cases.append((path.read_bytes(), json.loads(expected.read_text())["parser"]))
    cases += [(log, "generic_linux_boot") for log in logs]
    megabytes = sum(len(b) for b, _ in cases) / 1e6
    seconds = timed(lambda: [logspec.parse(b, p) for b, p in cases], rounds)
    print(f"logspec: {len(cases)} logs, {megabytes:.2f} MB: {seconds * 1e3:.2f} ms, {megabytes / seconds:.1f} MB/s")
    print("  upstream logspec is not on PyPI, so there is no comparison from Python here")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per figure (median)")
    parser.add_argument("--quick", action="store_true", help="3 rounds (a smoke run for CI)")
    args = parser.parse_args()
    rounds = 3 if args.quick else max(1, args.rounds)
    print(f"kernelci {kernelci.__version__}, Python {sys.version.split()[0]}")
    bench_kcidb(rounds)
    bench_logspec(rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
