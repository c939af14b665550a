"""kernelci.kcidb: validate, load, upgrade on inline documents and the shared KCIDB fixtures."""

import json

import pytest

from conftest import fixture_dir
from kernelci import kcidb

V53 = {"major": 5, "minor": 3}


def build(**fields):
    obj = {"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1"}
    obj.update(fields)
    return obj


def test_a_valid_document_has_no_problems_in_every_input_form():
    doc = {"version": V53, "builds": [build(status="PASS")]}
    text = json.dumps(doc)
    for form in (doc, text, text.encode(), bytearray(text.encode())):
        assert kcidb.validate(form) == []
        assert kcidb.is_valid(form)
        assert kcidb.load(form) == doc


def test_every_problem_is_listed_with_its_pointer():
    doc = {"version": V53, "builds": [build(status="pass", start_time="yesterday")]}
    problems = kcidb.validate(doc)
    assert [p["pointer"] for p in problems] == ["/builds/0/status", "/builds/0/start_time"]
    assert all(p["stage"] == "schema" for p in problems)
    assert "is not one of" in problems[0]["message"]
    assert not kcidb.is_valid(doc)


def test_load_raises_invalid_submission_with_the_problems():
    doc = {"version": V53, "builds": [build(status="pass")]}
    with pytest.raises(kcidb.InvalidSubmission) as raised:
        kcidb.load(doc)
    err = raised.value
    assert isinstance(err, ValueError)
    assert err.stage == "schema"
    assert [p["pointer"] for p in err.problems] == ["/builds/0/status"]
    assert "/builds/0/status" in str(err)


@pytest.mark.parametrize(
    "doc, stage",
    [
        (b"", "json"),
        (b"{", "json"),
        (b"\xff", "decode"),
        (b'{"version": {"major": 5, "minor": 3}, "version": {"major": 5, "minor": 3}}', "json"),
        ({"version": V53, "builds": [build(duration=float("nan"))]}, "json"),
        (b"[]", "schema"),
        ({"version": {"major": 9, "minor": 0}}, "schema"),
    ],
)
def test_bad_inputs_are_refused_at_their_stage(doc, stage):
    problems = kcidb.validate(doc)
    assert problems and {p["stage"] for p in problems} == {stage}
    with pytest.raises(kcidb.InvalidSubmission) as raised:
        kcidb.load(doc)
    assert raised.value.stage == stage
    with pytest.raises(kcidb.InvalidSubmission):
        kcidb.upgrade(doc)


def test_objects_that_are_not_json_raise_type_error():
    with pytest.raises(TypeError, match="JSON-serializable"):
        kcidb.validate({"version": object()})
    with pytest.raises(TypeError):
        kcidb.load(42j)


def test_a_v4_document_is_upgraded_to_v5_3():
    doc = {"version": {"major": 4, "minor": 5}, "builds": [build(valid=True)]}
    upgraded = kcidb.upgrade(doc)
    assert upgraded["version"] == V53
    assert upgraded["builds"][0]["status"] == "PASS"
    assert "valid" not in upgraded["builds"][0]
    assert kcidb.load(doc) == upgraded
    assert kcidb.SCHEMA_VERSION == "v5.3"


def test_a_v4_path_that_v5_cannot_inherit_fails_at_the_upgrade_stage():
    doc = {
        "version": {"major": 4, "minor": 5},
        "tests": [{"id": "lab:t1", "origin": "lab", "build_id": "lab:b1", "path": "a..b"}],
    }
    with pytest.raises(kcidb.InvalidSubmission) as raised:
        kcidb.upgrade(doc)
    assert raised.value.stage == "upgrade"
    assert raised.value.problems[0]["pointer"] == "/tests/0/path"


# --- the shared fixtures -------------------------------------------------------------------


def test_the_small_submissions_are_valid_and_load_to_the_same_json():
    files = sorted(fixture_dir("kcidb/small").glob("*.json"))
    assert files
    for path in files:
        raw = path.read_bytes()
        assert kcidb.validate(raw) == [], path.name
        assert kcidb.validate(json.loads(raw)) == [], path.name
        # v5.3 documents come back as they were (objects in KCIDB's key order may differ).
        assert kcidb.load(raw) == json.loads(raw), path.name
        assert kcidb.upgrade(raw) == json.loads(raw), path.name


def test_every_edge_valid_submission_is_valid():
    directory = fixture_dir("kcidb/edge-valid")
    files = sorted(directory.glob("e*.json"))
    assert len(files) >= 20
    for path in files:
        assert kcidb.validate(path.read_bytes()) == [], path.name


def test_every_invalid_input_is_rejected_at_kcidb_io_s_stage():
    directory = fixture_dir("kcidb/invalid")
    cases = [json.loads(line) for line in (directory / "cases.jsonl").read_text().splitlines()]
    assert len(cases) >= 50
    for case in cases:
        problems = kcidb.validate((directory / case["file"]).read_bytes())
        assert problems, case["file"]
        stages = {p["stage"] for p in problems}
        if case["kcidb_io"]["verdict"] == "rejected":
            assert stages == {case["kcidb_io"]["stage"]}, case["file"]
        else:
            # kcidb-io accepts it; we refuse it on purpose (documented stricter checks, or
            # JSON that Python's parser is lenient about).
            assert stages <= {"json", "schema"}, case["file"]


def test_the_mixed_submissions_are_rejected_exactly_where_the_manifest_says():
    directory = fixture_dir("kcidb/mixed")
    manifest = json.loads((directory.parent / "mixed.manifest.json").read_text())
    for entry in manifest["files"]:
        problems = kcidb.validate((directory / entry["file"]).read_bytes())
        assert (problems == []) == entry["expect_valid"], entry["file"]
        objects = {
            "/".join(p["pointer"].split("/")[1:3]) for p in problems
        }
        expected = {
            f"{bad['list']}/{bad['index']}"
            for bad in manifest["invalid_objects"]
            if bad["file"] == entry["file"]
        }
        assert objects == expected, entry["file"]


def test_the_upgrade_set_gives_exactly_the_upgraded_files():
    directory = fixture_dir("kcidb/upgrade")
    seen = 0
    for path in sorted(directory.glob("v*.json")):
        if path.name.endswith(".upgraded.json"):
            continue
        seen += 1
        expected_path = path.with_name(path.name.replace(".json", ".upgraded.json"))
        expected = json.loads(
            (expected_path if expected_path.exists() else path).read_text()
        )
        assert kcidb.upgrade(path.read_bytes()) == expected, path.name
        assert kcidb.load(path.read_bytes()) == expected, path.name
    assert seen >= 10


def test_kcidb_io_agrees_on_the_small_and_upgrade_sets():
    kcidb_io = pytest.importorskip("kcidb_io")
    for sub in ("kcidb/small", "kcidb/upgrade"):
        for path in sorted(fixture_dir(sub).glob("*.json")):
            data = json.loads(path.read_bytes())
            kcidb_io.schema.LATEST.validate(data)
            assert kcidb.validate(data) == [], path.name
            if sub == "kcidb/upgrade" and not path.name.endswith(".upgraded.json"):
                assert kcidb.upgrade(data) == kcidb_io.schema.LATEST.upgrade(data), path.name
