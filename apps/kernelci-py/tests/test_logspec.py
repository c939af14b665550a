"""kernelci.logspec: the repository's QEMU consoles, and the shared logspec fixtures, whose
expected results are upstream logspec's own output."""

import json
import pathlib

import pytest

from conftest import REPO, fixture_dir
from kernelci import logspec

QEMU = REPO / "kernelci-logspec" / "tests" / "data" / "qemu"


def qemu_log(name: str) -> bytes:
    return (QEMU / name).read_bytes()


def test_the_parsers_are_upstream_s():
    assert logspec.parsers() == ["kbuild", "generic_linux_boot", "test_baseline", "test_kselftest"]
    assert logspec.LOGSPEC_VERSION == "1.0.0"


def test_a_boot_without_init_is_a_kernel_panic():
    result = logspec.parse(qemu_log("no-init-panic.log"), "generic_linux_boot")
    assert result["linux.boot.kernel_started"] is True
    assert result["linux.boot.prompt"] is False
    panics = [e for e in result["errors"] if e["error_type"] == "linux.kernel.panic"]
    assert len(panics) == 1
    # The compat output has no hidden keys; the full one has them, with the signatures.
    assert not any(k.startswith("_") for k in result)
    full = logspec.parse(qemu_log("no-init-panic.log"), "generic_linux_boot", full=True)
    assert full["_signature"] and len(full["_signature"]) == 40
    assert all("_signature" in e for e in full["errors"])


def test_a_boot_to_a_shell_reaches_the_prompt_whatever_the_input_type():
    raw = qemu_log("shell-prompt.log")
    as_bytes = logspec.parse(raw, "generic_linux_boot")
    assert as_bytes["linux.boot.prompt"] is True
    assert as_bytes["errors"] == []
    assert logspec.parse(raw.decode("utf-8", "replace"), "generic_linux_boot") == as_bytes
    assert logspec.parse(bytearray(raw), "generic_linux_boot") == as_bytes


def test_every_qemu_console_parses_with_every_parser():
    logs = sorted(QEMU.glob("*.log"))
    assert len(logs) >= 10
    for path in logs:
        for parser in logspec.parsers():
            result = logspec.parse(path.read_bytes(), parser, full=True)
            assert isinstance(result["errors"], list)
            json.dumps(result)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="Definition of parser nope not found."):
        logspec.parse("", "nope")
    with pytest.raises(NotImplementedError):
        logspec.parse("", "chromebook_single_boot")
    with pytest.raises(TypeError, match="expected str or bytes"):
        logspec.parse(42, "kbuild")
    # Invalid UTF-8 and lone surrogates are read, not refused.
    assert logspec.parse(b"\xff\xfe make: *** [x] Error 1\n", "kbuild")["errors"] is not None
    assert logspec.parse("\ud800 / # ", "generic_linux_boot")["errors"] == []


def test_every_shared_fixture_gives_upstream_s_output():
    directory = fixture_dir("logspec")
    logs = sorted(
        p for p in directory.glob("*/*.log") if p.with_suffix(".expected.json").exists()
    )
    assert logs
    failures = []
    for log in logs:
        expected = json.loads(log.with_suffix(".expected.json").read_text())
        text = log.read_bytes().decode("utf-8")
        if logspec.parse(text, expected["parser"]) != expected["output"]:
            failures.append(f"{log.name}: output")
        if logspec.parse(text, expected["parser"], full=True) != expected["output_full"]:
            failures.append(f"{log.name}: output_full")
    assert not failures, failures
