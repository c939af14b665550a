//! Runs the `logspec_parse` example's parsing and report on its embedded log and on a file.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "../logspec_parse.rs"]
mod example;

use kernelci_logspec::Parser;

#[test]
fn the_sample_boot_log_reports_the_kernel_panic() {
    let result = example::parse(example::SAMPLE_LOG.as_bytes(), Parser::GenericLinuxBoot);
    assert!(result.has_errors());
    let panic = result
        .errors
        .iter()
        .find(|e| e.error_type == "linux.kernel.panic")
        .unwrap_or_else(|| panic!("no panic among {:#?}", result.errors));
    assert!(
        panic.error_summary.contains("No working init found"),
        "{}",
        panic.error_summary
    );
    let expected_line = example::SAMPLE_LOG
        .lines()
        .position(|l| l.contains("Kernel panic - not syncing"))
        .unwrap() as u64
        + 1;
    assert_eq!(panic.line, Some(expected_line));
    assert!(!panic.signature.is_empty());

    let report = example::report(&result);
    assert!(
        report.starts_with(&format!(
            "{} error(s) found by generic_linux_boot\n",
            result.errors.len()
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "line {expected_line}: linux.kernel.panic: {} [{}]",
            panic.error_summary, panic.signature
        )),
        "{report}"
    );
    // The kernel started but never reached a prompt.
    assert_eq!(result.state("linux.boot.prompt"), Some(false), "{report}");
    assert!(report.contains("linux.boot.prompt: false"), "{report}");
}

#[test]
fn a_clean_build_log_has_no_findings() {
    let log = "make -j2 ARCH=x86_64 bzImage\n  CC      init/main.o\n  LD      vmlinux\nKernel: arch/x86/boot/bzImage is ready  (#1)\n";
    let result = example::parse(log.as_bytes(), Parser::Kbuild);
    assert!(!result.has_errors(), "{:#?}", result.errors);
    assert!(example::report(&result).starts_with("0 error(s) found by kbuild\n"));
}

#[test]
fn a_build_error_is_found_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("build.log");
    std::fs::write(
        &path,
        "  CC      drivers/foo.o\ndrivers/foo.c:12:5: error: 'bar' undeclared (first use in this function)\nmake[2]: *** [scripts/Makefile.build:250: drivers/foo.o] Error 1\n",
    )
    .unwrap();
    let result = example::parse(&std::fs::read(&path).unwrap(), Parser::Kbuild);
    assert!(result.has_errors());
    let report = example::report(&result);
    assert!(report.contains("'bar' undeclared"), "{report}");
}
