"""kernelci.kcidb.submit against a real KCIDB receiver: the project's own binary,
``kernelci kcidb serve``, on a free port with a token from ``kernelci kcidb token``.

The binary is ``$KERNELCI_BIN``, else ``$CARGO_TARGET_DIR/debug/kernelci``, else
``target/debug/kernelci``; when none exists the tests are skipped, except under CI.
"""

import os
import pathlib
import socket
import subprocess
import time

import pytest

from conftest import REPO, in_ci
from kernelci import kcidb


def kernelci_bin() -> pathlib.Path:
    candidates = []
    if os.environ.get("KERNELCI_BIN"):
        candidates.append(pathlib.Path(os.environ["KERNELCI_BIN"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(pathlib.Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "kernelci")
    candidates.append(REPO / "target" / "debug" / "kernelci")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    message = f"the kernelci binary was not found (tried {', '.join(map(str, candidates))})"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = kernelci_bin()
    data = tmp_path_factory.mktemp("kcidb")
    # The server's settings all come from the command line (its KERNELCI_* variables, as a
    # database URL or a secret set for other tests, are dropped).
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERNELCI_")}
    token = subprocess.run(
        [binary, "kcidb", "token", "--origin", "lab", "--data-dir", data],
        env=env, check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    port = free_port()
    proc = subprocess.Popen(
        [binary, "kcidb", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                pytest.fail(f"kcidb serve exited with {proc.wait()}")
            if "listening on" in line:
                break
        yield {"url": f"http://127.0.0.1:{port}/submit", "token": token}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def submission(origin: str) -> dict:
    return {
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": f"{origin}:c1", "origin": origin}],
        "builds": [{"id": f"{origin}:b1", "origin": origin, "checkout_id": f"{origin}:c1", "status": "PASS"}],
    }


def test_a_submission_is_received_and_processed(server):
    receipt = kcidb.submit(server["url"], server["token"], submission("lab"))
    assert receipt["status"] == "ok"
    assert receipt["id"]
    done = kcidb.submit(server["url"], server["token"], submission("lab"), wait=30)
    assert done["status"] == "processed"
    status = kcidb.status(server["url"], server["token"], receipt["id"])
    assert status["status"] in ("ready", "inprogress", "processed")


def test_an_invalid_submission_is_refused_with_every_problem(server):
    bad = submission("lab")
    bad["builds"][0]["status"] = "pass"
    with pytest.raises(kcidb.SubmitError) as raised:
        kcidb.submit(server["url"], server["token"], bad)
    assert raised.value.status == 400
    assert "/builds/0/status" in str(raised.value.reply)


def test_another_origin_and_a_bad_token_are_refused(server):
    with pytest.raises(kcidb.SubmitError) as raised:
        kcidb.submit(server["url"], server["token"], submission("other"))
    assert raised.value.status == 403
    with pytest.raises(kcidb.SubmitError) as raised:
        kcidb.submit(server["url"], "not-a-token", submission("lab"))
    assert raised.value.status == 401


def test_an_unreachable_receiver_and_a_bad_url_raise():
    with pytest.raises(kcidb.SubmitError) as raised:
        kcidb.submit(f"http://127.0.0.1:{free_port()}/submit", "t", submission("lab"), tries=1)
    assert raised.value.status is None
    assert "no reply" in str(raised.value)
    with pytest.raises(kcidb.SubmitError, match="not an http"):
        kcidb.submit("ftp://example.invalid/submit", "t", submission("lab"))
    with pytest.raises(ValueError):
        kcidb.submit("http://127.0.0.1:1/submit", "t", submission("lab"), wait=-1)
