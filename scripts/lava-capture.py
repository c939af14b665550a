#!/usr/bin/python3
"""lava-capture.py: capture real LAVA notify-callback payloads as test data for kernelci-lava.

  scripts/lava-capture.py record [--port 9999] [--dir DIR]
      a callback recorder: every request to 127.0.0.1:PORT is answered 200 "ok" and stored
      as DIR/NNN.body (the raw body, byte for byte) and DIR/NNN.json (method, path, headers).

  scripts/lava-capture.py run --kernel BZIMAGE --ramdisk INITRAMFS [--out DATA_DIR]
                              [--port 9999] [--only NAME ...]
      submits the jobs of JOBS below to the LAVA of scripts/lava-local.sh (KERNELCI_LAVA_URL,
      KERNELCI_LAVA_TOKEN, as in $KERNELCI_LAVA_DIR/env), runs the recorder meanwhile, and
      writes for each job NAME:
        DATA_DIR/jobs/NAME.yaml                the job definition, with {{KERNEL_URL}} and
                                               {{RAMDISK_URL}} for the machine's file:// URLs
        DATA_DIR/callbacks/NAME.json           the callback body as received
        DATA_DIR/callbacks/NAME.meta.json      headers, submitted definition, job id, health
                                               and the facts a parser must find (`expected`)
      The job `canceled` is cancelled through the REST API once its `busybox sleep 300` runs;
      meanwhile `canceled-queued` is submitted (it stays Submitted: the only device is busy)
      and cancelled before it starts.
      Exit status 0 only if every job ended as expected and sent its callback.

Runs with Debian's python3 (needs python3-yaml, a dependency of lava-server).
The kernel is the tinyconfig bzImage of specs/real-peers.md §3.2 (serial console), the
ramdisk the shell-mode initramfs of scripts/make-initramfs.sh. About 3.5 min for all five jobs
(the boot-timeout job alone waits 1 min).
"""

import argparse
import gzip
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

CALLBACK_TOKEN_NAME = "kernelci-callback"

# Fake KernelCI node ids (24 hex digits, like MongoDB object ids), one per job.
NODE_IDS = {
    "complete-boot": "6650c0ffee00000000000001",
    "complete-with-failure": "6650c0ffee00000000000002",
    "incomplete-missing-image": "6650c0ffee00000000000003",
    "incomplete-boot-timeout": "6650c0ffee00000000000004",
    "canceled": "6650c0ffee00000000000005",
    "canceled-queued": "6650c0ffee00000000000006",
}

HEADER = """\
device_type: qemu
job_name: kernelci-rs {name}
timeouts:
  job: {{minutes: {job_minutes}}}
  action: {{minutes: 3}}
  connection: {{minutes: {connection_minutes}}}
priority: medium
visibility: public
context:
  arch: amd64
metadata:
  node_id: {node_id}
notify:
  criteria:
    status: finished
  callback:
    url: http://127.0.0.1:{{{{CALLBACK_PORT}}}}/node/{node_id}
    method: POST
    dataset: all
    token: kernelci-callback
    content-type: json
actions:
- deploy:
    to: tmpfs
    timeout: {{minutes: 2}}
    images:
      kernel:
        image_arg: -kernel {{kernel}}{append}
        url: {kernel_url}
      ramdisk:
        image_arg: -initrd {{ramdisk}}
        url: '{{{{RAMDISK_URL}}}}'
- boot:
    method: qemu
    media: tmpfs
    timeout: {{minutes: {boot_minutes}}}
    prompts: ['/ # ']
"""

APPEND = ' -append "console=ttyS0,115200 rdinit=/init"'
KERNEL = "'{{KERNEL_URL}}'"

TEST_COMPLETE = """\
- test:
    timeout: {minutes: 2}
    interactive:
    - name: kernelci-smoke
      prompts: ['/ # ']
      script:
      - command: uname -a
        name: uname
        successes:
        - message: x86_64 GNU/Linux
      - command: echo kernelci-$((6*7))
        name: shell-arithmetic
        successes:
        - message: kernelci-42
"""

# The second command fails: its `failures` pattern matches the shell's error message. LAVA's
# interactive action then logs "Matched a failure", records the named case as `fail` and goes
# on (no `exception:` key): the job stays Complete.
TEST_FAILURE = """\
- test:
    timeout: {minutes: 2}
    interactive:
    - name: kernelci-smoke
      prompts: ['/ # ']
      script:
      - command: uname -a
        name: uname
        successes:
        - message: x86_64 GNU/Linux
      - command: ls /kernelci-missing-file
        name: missing-file
        failures:
        - message: No such file or directory
"""

TEST_LONG = """\
- test:
    timeout: {minutes: 10}
    interactive:
    - name: kernelci-long
      prompts: ['/ # ']
      script:
      - command: busybox sleep 300
        name: sleep
"""


def job_template(name):
    node_id = NODE_IDS[name]
    h = dict(name=name, node_id=node_id, job_minutes=5, connection_minutes=2,
             append=APPEND, kernel_url=KERNEL, boot_minutes=2)
    if name == "complete-boot":
        return HEADER.format(**h) + TEST_COMPLETE
    if name == "complete-with-failure":
        return HEADER.format(**h) + TEST_FAILURE
    if name == "incomplete-missing-image":
        h["kernel_url"] = "file:///nonexistent/kernelci/bzImage"
        return HEADER.format(**h) + TEST_COMPLETE
    if name == "incomplete-boot-timeout":
        # No -append: the kernel writes to VGA only, LAVA never sees "Linux version" on the
        # serial line, and the boot action times out after 1 minute.
        h.update(append="", boot_minutes=1, job_minutes=3)
        return HEADER.format(**h) + TEST_COMPLETE
    if name in ("canceled", "canceled-queued"):
        h.update(job_minutes=15, connection_minutes=10)
        return HEADER.format(**h) + TEST_LONG
    raise KeyError(name)


# What each job must end as (checked before anything is written).
WANT = {
    "complete-boot": dict(health="Complete", failed_cases=0),
    "complete-with-failure": dict(health="Complete", failed_cases=1),
    "incomplete-missing-image": dict(health="Incomplete"),
    "incomplete-boot-timeout": dict(health="Incomplete"),
    "canceled": dict(health="Canceled"),
    "canceled-queued": dict(health="Canceled"),
}

# ------------------------------------------------------------------------------------------
# the recorder


class Recorder:
    def __init__(self, port, directory=None):
        self.requests = []
        self.lock = threading.Condition()
        self.directory = directory
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                entry = {"at": time.time(), "method": self.command, "path": self.path,
                         "headers": dict(self.headers.items()), "body": body}
                recorder.add(entry)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_GET = do_PUT = handle_any

            def log_message(self, fmt, *args):
                sys.stderr.write("[recorder] %s %s\n" % (self.address_string(), fmt % args))

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def add(self, entry):
        with self.lock:
            self.requests.append(entry)
            seq = len(self.requests)
            self.lock.notify_all()
        if self.directory:
            os.makedirs(self.directory, exist_ok=True)
            base = os.path.join(self.directory, "%03d" % seq)
            with open(base + ".body", "wb") as f:
                f.write(entry["body"])
            meta = {k: v for k, v in entry.items() if k != "body"}
            with open(base + ".json", "w") as f:
                json.dump(meta, f, indent=1)

    def wait_for(self, path, timeout):
        end = time.time() + timeout
        with self.lock:
            while True:
                for e in self.requests:
                    if e["path"] == path:
                        return e
                left = end - time.time()
                if left <= 0:
                    return None
                self.lock.wait(left)

    def serve_in_background(self):
        t = threading.Thread(target=self.server.serve_forever, daemon=True)
        t.start()


# ------------------------------------------------------------------------------------------
# LAVA REST


class Lava:
    def __init__(self, url, token):
        self.api = url.rstrip("/") + "/api/v0.2"
        self.token = token

    def request(self, method, path, body=None):
        data = None
        headers = {"Authorization": "Token " + self.token}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.api + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path):
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError("GET %s: %s %s" % (path, status, body[:300]))
        return json.loads(body)

    def submit(self, definition):
        status, body = self.request("POST", "/jobs/", {"definition": definition})
        if status != 201:
            raise RuntimeError("submit: %s %s" % (status, body[:500]))
        return json.loads(body)["job_ids"][0]

    def wait_finished(self, job_id, timeout):
        end = time.time() + timeout
        while time.time() < end:
            job = self.get_json("/jobs/%d/" % job_id)
            if job["state"] == "Finished":
                return job
            time.sleep(1)
        raise RuntimeError("job %d not finished within %d s" % (job_id, timeout))

    def logs(self, job_id):
        status, body = self.request("GET", "/jobs/%d/logs/" % job_id)
        return body.decode("utf-8", "replace") if status == 200 else ""


# ------------------------------------------------------------------------------------------
# facts of a payload


def facts(body):
    """The facts a parser of this callback body must find."""
    d = json.loads(body)
    out = {k: d.get(k) for k in ("id", "status", "status_string", "state", "state_string",
                                 "health", "health_string", "actual_device_id", "description",
                                 "submitter_username", "failure_comment", "submit_time", "start_time", "end_time",
                                 "token",
                                 "metadata", "priority")}
    suites = {}
    lava_job = None
    for suite, text in (d.get("results") or {}).items():
        cases = yaml.safe_load(text) or []
        suites[suite] = [{"name": c["name"], "result": c["result"]} for c in cases]
        if suite == "lava":
            for c in cases:
                if c["name"] == "job":
                    md = c.get("metadata") or {}
                    lava_job = {"result": c["result"]}
                    for k in ("error_type", "error_msg"):
                        if k in md:
                            lava_job[k] = md[k]
    out["results"] = suites
    out["lava_job_case"] = lava_job
    log = yaml.load(d.get("log") or "[]", Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or []
    target = [e for e in log if e.get("lvl") == "target"]
    levels = {}
    for e in log:
        levels[e.get("lvl")] = levels.get(e.get("lvl"), 0) + 1
    out["has_log"] = "log" in d
    out["log_lines"] = len(log)
    out["log_levels"] = levels
    out["target_log_lines"] = len(target)
    text = [str(e.get("msg")) for e in target]
    out["target_has_linux_version"] = any("Linux version" in m for m in text)
    out["target_has_boot_marker"] = any("BOOT-MARKER" in m for m in text)
    linux = [m for m in text if "Linux version" in m]
    if linux:
        out["linux_version_line"] = linux[0]
    out["keys"] = sorted(d.keys())
    return out


def check(name, f):
    """Problems of a payload against WANT[name] (an empty list when it is as wanted)."""
    want = WANT[name]
    problems = []
    if f["health_string"] != want["health"]:
        problems.append("health %s, wanted %s" % (f["health_string"], want["health"]))
    if "failed_cases" in want:
        failed = [c for s, cs in f["results"].items() if s != "lava" for c in cs
                  if c["result"] == "fail"]
        if len(failed) != want["failed_cases"]:
            problems.append("%d failed test cases, wanted %d" % (len(failed), want["failed_cases"]))
    if name.startswith("complete") and not f["target_has_linux_version"]:
        problems.append("no Linux version line in the target log")
    return problems


# ------------------------------------------------------------------------------------------
# commands


def cmd_record(args):
    rec = Recorder(args.port, args.dir)
    print("recording to %s on 127.0.0.1:%d" % (args.dir, args.port), file=sys.stderr)
    rec.server.serve_forever()


def find_job_data(job_id):
    """The job_data.gz LAVA keeps in the job's output directory (the same payload)."""
    root = "/var/lib/lava-server/default/media/job-output"
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.basename(dirpath) == str(job_id) and "job_data.gz" in filenames:
            return os.path.join(dirpath, "job_data.gz")
    return None


def render(name, args, kernel_url, ramdisk_url):
    """(definition to submit, definition to store under jobs/)"""
    template = job_template(name)
    definition = (template.replace("{{KERNEL_URL}}", kernel_url)
                  .replace("{{RAMDISK_URL}}", ramdisk_url)
                  .replace("{{CALLBACK_PORT}}", str(args.port)))
    yaml.safe_load(definition)  # well-formed
    return definition, template.replace("{{CALLBACK_PORT}}", str(args.port))


def cancel(lava, name, job_id, notes):
    # LAVA 2023.01: @detail_route(methods=["get"], suffix="cancel"): POST answers 405.
    st_post, b_post = lava.request("POST", "/jobs/%d/cancel/" % job_id)
    st_get, b_get = lava.request("GET", "/jobs/%d/cancel/" % job_id)
    notes["cancel"] = {
        "POST /api/v0.2/jobs/<id>/cancel/": "%d %s" % (st_post, b_post.decode()[:200]),
        "GET /api/v0.2/jobs/<id>/cancel/": "%d %s" % (st_get, b_get.decode()[:200]),
    }
    print("[%s] cancel: %s" % (name, notes["cancel"]), file=sys.stderr)
    if st_get != 200:
        raise RuntimeError("cannot cancel job %d" % job_id)


def run_one(name, lava, rec, args, kernel_url, ramdisk_url, write=True, queued=None):
    """Submit job NAME, wait for its end and its callback, write its files (if write).
    For `canceled`, `queued` (a function) runs while the job holds the only device."""
    definition, stored = render(name, args, kernel_url, ramdisk_url)
    t0 = time.time()
    job_id = lava.submit(definition)
    print("[%s] submitted job %d" % (name, job_id), file=sys.stderr)
    notes = {}
    if name == "canceled":
        end = time.time() + 180
        while time.time() < end:
            if "Sending 'busybox sleep 300'" in lava.logs(job_id):
                break
            time.sleep(1)
        else:
            raise RuntimeError("job %d never started its sleep" % job_id)
        time.sleep(2)
        if queued:
            queued()
        cancel(lava, name, job_id, notes)
    elif name == "canceled-queued":
        # qemu-01 is busy with the `canceled` job: this one stays Submitted until cancelled.
        time.sleep(3)
        state = lava.get_json("/jobs/%d/" % job_id)["state"]
        notes["state_when_canceled"] = state
        if state != "Submitted":
            raise RuntimeError("job %d is %s, not Submitted" % (job_id, state))
        cancel(lava, name, job_id, notes)
    job = lava.wait_finished(job_id, args.timeout)
    elapsed = time.time() - t0
    finish(name, job_id, job, definition, stored, notes, elapsed, rec, args, write)


def finish(name, job_id, job, definition, stored, notes, elapsed, rec, args, write):
    path = "/node/%s" % NODE_IDS[name]
    entry = rec.wait_for(path, 30)
    if entry is None:
        raise RuntimeError("no callback to %s for job %d (health %s)" % (path, job_id, job["health"]))
    body = entry["body"]
    f = facts(body)
    problems = check(name, f)
    if f["id"] != job_id:
        problems.append("callback id %s != job %d" % (f["id"], job_id))
    if problems:
        raise RuntimeError("[%s] job %d: %s" % (name, job_id, "; ".join(problems)))
    jd = find_job_data(job_id)
    if jd:
        with gzip.open(jd, "rb") as g:
            stored_payload = g.read()
        notes["job_data_gz_equal_to_body"] = json.loads(stored_payload) == json.loads(body)
    notes["submit_to_finished_seconds"] = round(elapsed, 1)
    if not write:
        print("[%s] job %d %s (not written)" % (name, job_id, job["health"]), file=sys.stderr)
        return
    cb_dir = os.path.join(args.out, "callbacks")
    job_dir = os.path.join(args.out, "jobs")
    os.makedirs(cb_dir, exist_ok=True)
    os.makedirs(job_dir, exist_ok=True)
    with open(os.path.join(job_dir, name + ".yaml"), "w") as out:
        out.write(stored)
    with open(os.path.join(cb_dir, name + ".json"), "wb") as out:
        out.write(body)
    f.pop("keys")
    meta = {
        "headers": entry["headers"],
        "method": entry["method"],
        "path": entry["path"],
        "job_definition": definition,
        "lava_job_id": job_id,
        "health": job["health"],
        "expected": f,
        "notes": notes,
    }
    with open(os.path.join(cb_dir, name + ".meta.json"), "w") as out:
        json.dump(meta, out, indent=2)
        out.write("\n")
    print("[%s] job %d %s in %.1f s, callback %d bytes, %d target lines"
          % (name, job_id, job["health"], elapsed, len(body), f["target_log_lines"]),
          file=sys.stderr)


def cmd_run(args):
    url = os.environ.get("KERNELCI_LAVA_URL", "http://127.0.0.1:8000/")
    token = os.environ.get("KERNELCI_LAVA_TOKEN", "kernelci-lava-admin-token")
    lava = Lava(url, token)
    kernel_url = "file://" + os.path.abspath(args.kernel)
    ramdisk_url = "file://" + os.path.abspath(args.ramdisk)
    for p in (args.kernel, args.ramdisk):
        if not os.path.isfile(p):
            sys.exit("lava-capture.py: %s does not exist" % p)
    rec = Recorder(args.port, args.record_dir)
    rec.serve_in_background()
    failed = []
    names = args.only or list(NODE_IDS)
    for name in names:
        if name == "canceled-queued":
            continue  # run while `canceled` holds the device
        queued = None
        if name == "canceled" and "canceled-queued" in names:
            def queued():
                try:
                    run_one("canceled-queued", lava, rec, args, kernel_url, ramdisk_url)
                except Exception as e:
                    print("[canceled-queued] FAILED: %s" % e, file=sys.stderr)
                    failed.append("canceled-queued")
        try:
            run_one(name, lava, rec, args, kernel_url, ramdisk_url, queued=queued)
        except Exception as e:  # go on with the others
            print("[%s] FAILED: %s" % (name, e), file=sys.stderr)
            failed.append(name)
    if "canceled-queued" in names and "canceled" not in names:
        # A `canceled` job (not written) holds the device meanwhile.
        def queued():
            run_one("canceled-queued", lava, rec, args, kernel_url, ramdisk_url)
        try:
            run_one("canceled", lava, rec, args, kernel_url, ramdisk_url, write=False, queued=queued)
        except Exception as e:
            print("[canceled-queued] FAILED: %s" % e, file=sys.stderr)
            failed.append("canceled-queued")
    rec.server.shutdown()
    if failed:
        sys.exit("lava-capture.py: failed: %s" % " ".join(failed))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--port", type=int, default=9999)
    r.add_argument("--dir", default="callbacks")
    r.set_defaults(func=cmd_record)
    u = sub.add_parser("run")
    u.add_argument("--kernel", required=True)
    u.add_argument("--ramdisk", required=True)
    u.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "kernelci-lava", "tests", "data"))
    u.add_argument("--port", type=int, default=9999)
    u.add_argument("--timeout", type=int, default=600, help="seconds per job")
    u.add_argument("--record-dir", default=None, help="also store every request here")
    u.add_argument("--only", nargs="*", choices=list(NODE_IDS))
    u.set_defaults(func=cmd_run)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
