//! The embedded shell templates, rendered and run by the shell runtime against a fake kernel
//! tree (a Makefile that imitates the targets) and a fake QEMU: exit codes, artifacts, logs.
#![cfg(feature = "shell")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kernelci_sched::runtime::{JobHandle, JobStatus, JobSubmission, Runtime, ShellRuntime};
use kernelci_sched::template::{JobContext, Templates};
use serde_json::{Value, json};

const FAKE_MAKEFILE: &str = "\
.PHONY: tinyconfig defconfig olddefconfig bzImage modules modules_install broken_defconfig
tinyconfig defconfig:
\techo 'CONFIG_BASE=y' > .config
\techo 'ARGS $(ARCH) $(CC) $(HOSTCC)' > args.txt
olddefconfig:
\tsort -u .config -o .config
bzImage:
\tmkdir -p arch/x86/boot && echo kernel > arch/x86/boot/bzImage && echo vmlinux > vmlinux
modules:
\techo building modules
modules_install:
\tmkdir -p $(INSTALL_MOD_PATH)/lib/modules/6.1.0 && echo ko > $(INSTALL_MOD_PATH)/lib/modules/6.1.0/m.ko
broken_defconfig:
\t@echo 'broken: no such configuration' && exit 1
";

fn have_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| {
        Command::new("bash")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn run(
    rt: &ShellRuntime,
    node: &str,
    name: &str,
    script: String,
    env: &[(&str, &str)],
) -> (JobHandle, JobStatus) {
    let h = rt
        .submit(&JobSubmission {
            node_id: node.into(),
            job_name: name.into(),
            definition: script,
            timeout: Duration::from_secs(60),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            image: None,
        })
        .expect("submit");
    let start = Instant::now();
    loop {
        let st = rt.status(&h).expect("status");
        if st.is_final() {
            return (h, st);
        }
        assert!(start.elapsed() < Duration::from_secs(60), "job did not end");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn fake_tarball(dir: &Path) -> String {
    let tree = dir.join("linux-fake");
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::write(tree.join("Makefile"), FAKE_MAKEFILE).expect("write");
    let tgz = dir.join("linux-fake.tar.gz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-czf")
        .arg(&tgz)
        .arg("linux-fake")
        .status()
        .expect("tar");
    assert!(st.success());
    format!("file://{}", tgz.display())
}

fn kbuild_script(tarball: &str, params: Value) -> String {
    let mut p = json!({"arch": "x86_64", "compiler": "gcc", "defconfig": "tinyconfig"});
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), params) {
        p.extend(extra);
    }
    let ctx = JobContext::new("kbuild-gcc-x86", "shell")
        .node(json!({"id": "n", "artifacts": {"tarball": tarball}}))
        .params(p)
        .fragment_configs(json!([
            {"name": "console", "configs": ["CONFIG_SERIAL_8250=y", "CONFIG_PRINTK=y"]},
            {"name": "modules", "configs": ["CONFIG_MODULES=y"]}
        ]))
        .build();
    Templates::new()
        .render("shell", "kbuild.jinja2", &ctx)
        .expect("render")
}

fn metadata(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("artifacts/metadata.json")).expect("metadata.json");
    serde_json::from_str(&text).expect("metadata is JSON")
}

#[test]
fn kbuild_script_pass_fail_and_infrastructure_failure() {
    if !have_tools(&[
        "make", "tar", "gzip", "bc", "flex", "bison", "perl", "nproc", "gcc", "xz",
    ]) {
        eprintln!("skipped: kernel build tools missing");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tarball = fake_tarball(tmp.path());
    let rt = ShellRuntime::new("shell", tmp.path().join("jobs")).expect("runtime");

    // Pass.
    let (h, st) = run(&rt, "n1", "kbuild", kbuild_script(&tarball, json!({})), &[]);
    let dir = rt.workdir(&h).expect("dir");
    let log = std::fs::read_to_string(dir.join("artifacts/build.log")).expect("build.log");
    assert_eq!(st, JobStatus::Finished { exit_code: 0 }, "{log}");
    let a = dir.join("artifacts");
    assert_eq!(
        std::fs::read_to_string(a.join("bzImage")).expect("image"),
        "kernel\n"
    );
    assert!(a.join("vmlinux").is_file());
    assert!(
        a.join("modules.tar.xz").is_file(),
        "CONFIG_MODULES=y gives modules"
    );
    assert_eq!(
        std::fs::read_to_string(a.join("fragments/0.config")).expect("frag"),
        "CONFIG_SERIAL_8250=y\nCONFIG_PRINTK=y\n"
    );
    let config = std::fs::read_to_string(a.join(".config")).expect(".config");
    for line in ["CONFIG_BASE=y", "CONFIG_SERIAL_8250=y", "CONFIG_MODULES=y"] {
        assert!(
            config.lines().any(|l| l == line),
            "{line} missing: {config}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("linux/args.txt")).expect("args"),
        "ARGS x86_64 gcc gcc\n"
    );
    assert_eq!(
        metadata(&dir),
        json!({"build": {"arch": "x86_64", "compiler": "gcc", "defconfig": "tinyconfig",
            "fragments": ["console", "modules"], "config_full": "tinyconfig+console+modules",
            "result": "pass"}})
    );
    assert!(log.contains("kci: === kernel"), "{log}");
    assert!(
        log.contains("kci: build passed: tinyconfig+console+modules"),
        "{log}"
    );
    // Also on stdout, i.e. in the runtime's log, complete up to the last line.
    let job_log = String::from_utf8(rt.logs(&h).expect("logs")).expect("utf8");
    assert!(job_log.contains("kci: build passed"), "{job_log}");
    let state = std::fs::read_to_string(a.join("state.txt")).expect("state");
    assert!(
        state.contains("kernel=done") && state.contains("done=running"),
        "{state}"
    );

    // Build failure: exit 1.
    let (h, st) = run(
        &rt,
        "n2",
        "kbuild",
        kbuild_script(&tarball, json!({"defconfig": "broken_defconfig"})),
        &[],
    );
    let dir = rt.workdir(&h).expect("dir");
    let log = std::fs::read_to_string(dir.join("artifacts/build.log")).expect("build.log");
    assert_eq!(st, JobStatus::Finished { exit_code: 1 }, "{log}");
    assert!(log.contains("broken: no such configuration"));
    assert!(log.contains("step 'config' failed"), "{log}");
    assert_eq!(metadata(&dir)["build"]["result"], "fail");
    assert!(!dir.join("artifacts/bzImage").exists());

    // Compile step failure (unknown image target): exit 1.
    let (_, st) = run(
        &rt,
        "n3",
        "kbuild",
        kbuild_script(&tarball, json!({"make_target": "noSuchImage"})),
        &[],
    );
    assert_eq!(st, JobStatus::Finished { exit_code: 1 });

    // Infrastructure failure (tarball missing): exit 2.
    let missing = format!("file://{}/nope.tar.gz", tmp.path().display());
    let (h, st) = run(&rt, "n4", "kbuild", kbuild_script(&missing, json!({})), &[]);
    let dir = rt.workdir(&h).expect("dir");
    assert_eq!(st, JobStatus::Finished { exit_code: 2 });
    assert_eq!(metadata(&dir)["build"]["result"], "incomplete");
    let log = std::fs::read_to_string(dir.join("artifacts/build.log")).expect("build.log");
    assert!(log.contains("tarball not readable"), "{log}");

    // Infrastructure failure (missing compiler): exit 2.
    let (_, st) = run(
        &rt,
        "n5",
        "kbuild",
        kbuild_script(&tarball, json!({"compiler": "gcc-does-not-exist"})),
        &[],
    );
    assert_eq!(st, JobStatus::Finished { exit_code: 2 });

    // Corrupt tarball: exit 2.
    let bad = tmp.path().join("bad.tar.gz");
    std::fs::write(&bad, "not a tarball").expect("write");
    let (_, st) = run(
        &rt,
        "n6",
        "kbuild",
        kbuild_script(&format!("file://{}", bad.display()), json!({})),
        &[],
    );
    assert_eq!(st, JobStatus::Finished { exit_code: 2 });
}

const FAKE_QEMU: &str = r#"#!/bin/bash
printf '%s\n' "$@" > "$(dirname "$0")/qemu-args.txt"
printf 'Booting from ROM..\e[0m[    0.000000] Linux version 6.1.0 (fake)\n'
echo "warning from qemu" >&2
if [ "$FAKE_MODE" = hang ]; then sleep 30; fi
echo "BOOT-MARKER: init reached, kernel 6.1.0 x86_64, uptime ?"
echo "[    1.0] reboot: Restarting system"
exit 0
"#;

fn baseline_script(kernel: &str, params: Value) -> String {
    let ctx = JobContext::new("baseline-x86", "shell")
        .node(json!({"artifacts": {"kernel": kernel}}))
        .params(params)
        .build();
    Templates::new()
        .render("shell", "baseline.jinja2", &ctx)
        .expect("render")
}

#[test]
fn baseline_script_runs_qemu_under_timeout() {
    if !have_tools(&["timeout", "tee"]) {
        eprintln!("skipped: coreutils missing");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let qemu = tmp.path().join("fake-qemu");
    std::fs::write(&qemu, FAKE_QEMU).expect("write");
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let kernel = tmp.path().join("bzImage");
    std::fs::write(&kernel, "kernel").expect("write");
    let ramdisk = tmp.path().join("initramfs.cpio.gz");
    std::fs::write(&ramdisk, "ramdisk").expect("write");
    let rt = ShellRuntime::new("shell", tmp.path().join("jobs")).expect("runtime");
    let kernel_url = format!("file://{}", kernel.display());
    let params = json!({
        "qemu_bin": qemu.display().to_string(), "ramdisk": ramdisk.display().to_string(),
        "qemu_append": "console=ttyS0 x='a b'", "boot_timeout": 20
    });

    // The guest boots and QEMU exits.
    let (h, st) = run(
        &rt,
        "b1",
        "baseline",
        baseline_script(&kernel_url, params.clone()),
        &[],
    );
    let dir = rt.workdir(&h).expect("dir");
    assert_eq!(st, JobStatus::Finished { exit_code: 0 });
    let console = std::fs::read_to_string(dir.join("artifacts/console.log")).expect("console");
    assert!(console.contains("Linux version 6.1.0"), "{console}");
    assert!(console.contains("BOOT-MARKER: init reached"), "{console}");
    assert!(
        console.contains("warning from qemu"),
        "stderr is captured too"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("artifacts/qemu_status.txt")).expect("status"),
        "exit=0\ntimed_out=no\n"
    );
    let args = std::fs::read_to_string(tmp.path().join("qemu-args.txt")).expect("args");
    let args: Vec<&str> = args.lines().collect();
    let downloads = dir.join("downloads");
    let kernel_dl = downloads.join("kernel").display().to_string();
    let ramdisk_dl = downloads.join("ramdisk").display().to_string();
    assert_eq!(
        args,
        vec![
            "-m",
            "256",
            "-nographic",
            "-no-reboot",
            "-kernel",
            kernel_dl.as_str(),
            "-initrd",
            ramdisk_dl.as_str(),
            "-append",
            "console=ttyS0 x='a b'"
        ]
    );
    assert!(String::from_utf8_lossy(&rt.logs(&h).expect("logs")).contains("BOOT-MARKER"));

    // The guest hangs: the boot timeout ends QEMU, the job still exits 0 with a partial log.
    let mut hang = params.clone();
    hang["boot_timeout"] = json!(1);
    let start = Instant::now();
    let (h, st) = run(
        &rt,
        "b2",
        "baseline",
        baseline_script(&kernel_url, hang),
        &[("FAKE_MODE", "hang")],
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    let dir = rt.workdir(&h).expect("dir");
    assert_eq!(st, JobStatus::Finished { exit_code: 0 });
    assert_eq!(
        std::fs::read_to_string(dir.join("artifacts/qemu_status.txt")).expect("status"),
        "exit=124\ntimed_out=yes\n"
    );
    let console = std::fs::read_to_string(dir.join("artifacts/console.log")).expect("console");
    assert!(console.contains("Linux version") && !console.contains("BOOT-MARKER"));

    // QEMU missing: infrastructure failure.
    let mut p = params.clone();
    p["qemu_bin"] = json!("/nonexistent/qemu-system-x86_64");
    let (_, st) = run(&rt, "b3", "baseline", baseline_script(&kernel_url, p), &[]);
    assert_eq!(st, JobStatus::Finished { exit_code: 2 });

    // Kernel download failure: infrastructure failure.
    let missing = format!("file://{}/nope", tmp.path().display());
    let (_, st) = run(
        &rt,
        "b4",
        "baseline",
        baseline_script(&missing, params.clone()),
        &[],
    );
    assert_eq!(st, JobStatus::Finished { exit_code: 2 });
    if have_tools(&["curl"]) {
        let (_, st) = run(
            &rt,
            "b5",
            "baseline",
            baseline_script("http://127.0.0.1:9/bzImage", params),
            &[],
        );
        assert_eq!(st, JobStatus::Finished { exit_code: 2 });
    }
}
