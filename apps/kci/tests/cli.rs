//! Runs the real `kci` binary: exit codes 0 (no errors), 1 (errors found), 2 (bad input),
//! human and JSON output.

use std::path::PathBuf;
use std::process::{Command, Output};

fn kci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kci"))
        .args(args)
        .output()
        .expect("run kci")
}

fn write_log(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kci-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write log");
    path
}

const CLEAN_BOOT: &str = "U-Boot 2024.01\nStarting kernel ...\n\
[    0.000000] Booting Linux on physical CPU 0x0\n\
[    0.000000] Linux version 6.8.0 (builder@host) #1 SMP\n\
[    1.234567] Run /init as init process\n\
/ # ";

const FAILED_BOOT: &str = "U-Boot 2024.01\nStarting kernel ...\n\
[    0.000000] Booting Linux on physical CPU 0x0\n\
[    3.575030] generic-adc-thermal: probe of thermal-sensor2 failed with error -22\n\
[    7.113510] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n\
[    7.123065] CPU: 1 PID: 1 Comm: swapper/0 Not tainted 6.8.0 #1\n\
[    7.130542] Hardware name: BCM2835\n\
[    7.133938] Call trace:\n\
[    7.133956]  unwind_backtrace from show_stack+0x10/0x14\n\
[    7.141726]  show_stack from dump_stack_lvl+0x50/0x64\n\
[    7.201599] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---\n";

#[test]
fn no_errors_exits_0() {
    let log = write_log("clean.log", CLEAN_BOOT);
    let out = kci(&[
        "logspec",
        log.to_str().expect("utf-8 path"),
        "--parser",
        "generic_linux_boot",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 errors found"), "{stdout}");
    assert!(stdout.contains("linux.boot.prompt=true"), "{stdout}");
}

#[test]
fn errors_found_exits_1_with_one_line_per_error() {
    let log = write_log("failed.log", FAILED_BOOT);
    let out = kci(&[
        "logspec",
        log.to_str().expect("utf-8 path"),
        "--parser",
        "generic_linux_boot",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "line 4: linux.kernel.error_return_code: probe of thermal-sensor2 failed with error -22"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "line 5: linux.kernel.panic: VFS: Unable to mount root fs on unknown-block(0,0)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("2 errors found"), "{stdout}");
}

#[test]
fn json_is_upstream_shaped() {
    let log = write_log("failed-json.log", FAILED_BOOT);
    let path = log.to_str().expect("utf-8 path");
    let out = kci(&["logspec", path, "--parser", "generic_linux_boot", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["bootloader.done"], true);
    assert_eq!(value["linux.boot.prompt"], false);
    assert_eq!(value["errors"][1]["error_type"], "linux.kernel.panic");
    assert_eq!(value["errors"][1]["hardware"], "BCM2835");
    assert!(value.get("_signature").is_none());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("{\n    \"bootloader.done\": true,\n"),
        "{text}"
    );

    let full = kci(&[
        "logspec",
        path,
        "--parser",
        "generic_linux_boot",
        "--json",
        "--full",
        "--extra",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&full.stdout).expect("JSON");
    assert_eq!(
        value["errors"][0]["_signature"].as_str().map(str::len),
        Some(40)
    );
    assert!(value["extra"].is_array());
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let log = write_log("any.log", CLEAN_BOOT);
    let out = kci(&[
        "logspec",
        log.to_str().expect("utf-8 path"),
        "--parser",
        "no_such_parser",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Definition of parser no_such_parser not found."),
        "{stderr}"
    );

    let out = kci(&["logspec", "/nonexistent/kci-test.log", "--parser", "kbuild"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open /nonexistent/kci-test.log"),
        "{stderr}"
    );

    let out = kci(&[
        "logspec",
        log.to_str().expect("utf-8 path"),
        "--parser",
        "chromebook_single_boot",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not implemented"));

    let out = kci(&["logspec"]);
    assert_eq!(out.status.code(), Some(2));
}
