//! `kernelci images`: the small `base` image built from Debian packages into a real Docker
//! engine (debootstrap, `docker import`), the second build a no-op, `images list --json`
//! showing it, then a kbuild-like job (the fake kbuild tree's Makefile) run in it by the
//! docker runtime.
//!
//! Needs `KERNELCI_TEST_DOCKER_HOST` (`bash scripts/docker-local.sh start && .
//! /tmp/kernelci-docker/env`), root and debootstrap; without the engine the test prints why
//! and passes, except under CI, where it fails. The .debs of minbase are kept in
//! `$KERNELCI_IMAGES_CACHE` (default `/tmp/kernelci-images-cache`) between runs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::fake_tree::MAKEFILE;
use common::run;
use kernelci_sched::runtime::{DockerRuntime, JobStatus, JobSubmission, Runtime};
use serde_json::{Map, Value, json};

fn engine() -> Option<String> {
    match std::env::var("KERNELCI_TEST_DOCKER_HOST") {
        Ok(h) if !h.is_empty() => Some(h),
        _ => {
            let why = "KERNELCI_TEST_DOCKER_HOST is not set (bash scripts/docker-local.sh start && . /tmp/kernelci-docker/env)";
            assert!(!kernelci_tests::in_ci(), "under CI: {why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

#[test]
fn an_unknown_image_exits_2_and_lists_the_names() {
    let (code, out, err) = run(
        &["images", "build", "gcc-99:x86"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("unknown image \"gcc-99:x86\"")
            && err.contains("base")
            && err.contains("gcc-12:arm64")
            && err.contains("clang-16:x86"),
        "{err}"
    );
}

#[test]
fn an_unreachable_engine_exits_3_naming_the_host_tried() {
    for args in [
        &["images", "list", "--json"][..],
        &["images", "build", "base"][..],
    ] {
        let (code, out, err) = run(
            args,
            &[("DOCKER_HOST", "unix:///nonexistent/kernelci-docker.sock")],
        );
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(
            err.contains("unreachable at DOCKER_HOST=unix:///nonexistent/kernelci-docker.sock"),
            "{err}"
        );
        assert!(out.is_empty(), "{out}");
    }
}

#[test]
fn base_is_built_from_debian_cached_listed_and_runs_a_kbuild_job() {
    let Some(host) = engine() else {
        return;
    };
    let cache = std::env::var("KERNELCI_IMAGES_CACHE")
        .unwrap_or_else(|_| "/tmp/kernelci-images-cache".into());
    let env = [
        ("DOCKER_HOST", host.as_str()),
        ("KERNELCI_IMAGES_CACHE", cache.as_str()),
    ];

    // A real build every time (the engine keeps images between runs).
    let t = Instant::now();
    let (code, out, err) = run(&["images", "build", "base", "--rebuild", "--json"], &env);
    assert_eq!(code, 0, "images build base:\n{err}");
    let cold = t.elapsed();
    let built: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(built["built"], true, "{built}");
    assert_eq!(built["tag"], "kernelci/base");
    for line in [
        "[1/4] debootstrap",
        "[2/4] apt-get install 1 package",
        "[4/4] imported",
    ] {
        assert!(err.contains(line), "no progress line {line:?}:\n{err}");
    }
    let size = built["size"].as_u64().unwrap();
    assert!(size < 150_000_000, "base is {size} bytes");

    // Current: a no-op.
    let t = Instant::now();
    let (code, out, err) = run(&["images", "build", "base", "--json"], &env);
    assert_eq!(code, 0, "{err}");
    let cached = t.elapsed();
    let again: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(again["built"], false, "{again}");
    assert_eq!(again["id"], built["id"]);
    assert!(err.contains("up to date"), "{err}");
    eprintln!(
        "base: cold build {:.1} s, cached {:.2} s, {size} bytes",
        cold.as_secs_f64(),
        cached.as_secs_f64()
    );

    let (code, out, err) = run(&["images", "list", "--json"], &env);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(out.trim()).unwrap();
    let base = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "base")
        .unwrap_or_else(|| panic!("no base in {list:#}"));
    assert_eq!(base["present"], true, "{base:#}");
    assert_eq!(base["current"], true, "{base:#}");
    assert_eq!(base["id"], built["id"]);
    assert_eq!(base["size"], size);
    assert!(
        base["built"].as_str().is_some_and(|b| b.ends_with('Z')),
        "{base:#}"
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "gcc-12:x86-kselftest"
                && i["aliases"] == json!(["gcc-12:x86-kselftest-kernelci"])),
        "{list:#}"
    );

    // A kbuild-like job in the image: the fake tree (a Makefile imitating kbuild) mounted
    // read-only, built with the image's make, the kernel image collected from artifacts/.
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("linux");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("Makefile"), MAKEFILE).unwrap();
    let mut fields = Map::new();
    fields.insert(
        "volumes".into(),
        json!([format!("{}:/src/linux:ro", tree.display())]),
    );
    let rt = DockerRuntime::with_socket("docker", dir.path().join("jobs"), &fields, &host)
        .expect("engine reachable");
    let script = r#"set -e
. /etc/os-release
echo "image: $PRETTY_NAME"
echo "make: $(command -v make) $(make --version | head -n1)"
mkdir -p artifacts build
cp -R /src/linux/. build/
cd build
make tinyconfig
make bzImage
cp arch/x86/boot/bzImage ../artifacts/
"#;
    let handle = rt
        .submit(&JobSubmission {
            node_id: "images-test-kbuild".into(),
            job_name: "kbuild-gcc-x86_64".into(),
            definition: script.into(),
            timeout: Duration::from_secs(120),
            env: vec![],
            image: Some("kernelci/base".into()),
        })
        .expect("submit");
    let start = Instant::now();
    let status = loop {
        let s = rt.status(&handle).unwrap();
        if s.is_final() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "job still running"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let logs = String::from_utf8_lossy(&rt.logs(&handle).unwrap()).into_owned();
    let workdir = rt.workdir(&handle);
    let kernel = workdir.as_ref().map(|w| w.join("artifacts/bzImage"));
    let kernel_ok = kernel.as_ref().is_some_and(|k| k.is_file());
    rt.release(&handle).unwrap();
    assert_eq!(status, JobStatus::Finished { exit_code: 0 }, "{logs}");
    assert!(
        logs.contains("image: Debian GNU/Linux 12 (bookworm)"),
        "{logs}"
    );
    assert!(logs.contains("make: /usr/bin/make GNU Make 4.3"), "{logs}");
    assert!(
        logs.contains("Kernel: arch/x86/boot/bzImage is ready"),
        "{logs}"
    );
    assert!(kernel_ok, "no artifacts/bzImage in {workdir:?}");
}
