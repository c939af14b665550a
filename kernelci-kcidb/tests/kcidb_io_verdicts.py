#!/usr/bin/env python3
"""Verdicts of the reference KCIDB validator (kcidb-io) on submission files.

Follows the ingesters' procedure (shared/fixtures/kcidb/README.md): read the file as UTF-8
text (stage "decode"), json.loads (stage "json"), kcidb_io.schema.LATEST.validate (stage
"schema"), kcidb_io.schema.LATEST.upgrade (stage "upgrade").

Usage: kcidb_io_verdicts.py [--time] < list-of-paths
  Reads one path per line on stdin. Prints one JSON object per file on stdout:
  {"file": PATH, "verdict": "accepted"|"rejected", "stage": "ok"|STAGE, "message": TEXT,
   "path": JSONPATH-or-null}, plus "upgraded": the v5.3 document when an accepted file
  declares an older major version.
  With --time, prints only one JSON object at the end instead:
  {"files": N, "objects": N, "accepted": N, "seconds": S} where S covers reading, parsing,
  validating and upgrading every file (not the interpreter start or imports).
Used by kernelci-kcidb's differential test and its validate_bench example.
"""
import json
import sys
import time

import jsonschema
import kcidb_io

LATEST = kcidb_io.schema.LATEST
LISTS = ("checkouts", "builds", "tests", "issues", "incidents", "revisions")


def verdict(path):
    """Return (stage, message, json_path, objects, upgraded-or-None) for one file."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        return "decode", str(e), None, 0, None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        return "json", f"{type(e).__name__}: {e}", None, 0, None
    try:
        LATEST.validate(data)
    except jsonschema.exceptions.ValidationError as e:
        return "schema", e.message[:300], e.json_path, 0, None
    old = not LATEST.is_compatible_directly(data)
    try:
        data = LATEST.upgrade(data)
    except Exception as e:  # InheritanceImpossible, or an assertion on odd versions
        return "upgrade", f"{type(e).__name__}: {e}"[:300], None, 0, None
    objects = sum(len(data.get(name, [])) for name in LISTS)
    return "ok", "", None, objects, data if old else None


def main():
    timing = "--time" in sys.argv[1:]
    paths = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if timing:
        start = time.perf_counter()
        objects = accepted = 0
        for path in paths:
            stage, _, _, count, _ = verdict(path)
            objects += count
            accepted += stage == "ok"
        seconds = time.perf_counter() - start
        print(json.dumps(dict(files=len(paths), objects=objects, accepted=accepted,
                              seconds=seconds)))
        return
    for path in paths:
        stage, message, json_path, _, upgraded = verdict(path)
        result = dict(file=path, verdict="accepted" if stage == "ok" else "rejected",
                      stage=stage, message=message, path=json_path)
        if upgraded is not None:
            result["upgraded"] = upgraded
        print(json.dumps(result))


if __name__ == "__main__":
    main()
