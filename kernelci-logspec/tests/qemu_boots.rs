//! Real serial consoles of QEMU (TCG) booting Debian's linux-source-6.1 built as x86_64
//! tinyconfig plus the console options (the pipeline's example configuration), recorded on
//! the development machine (see `tests/data/qemu/README.md`): a boot that reaches the
//! init's marker line, one that reaches a busybox shell prompt, and one without an init
//! that panics. They check what the pipeline relies on: QEMU's firmware hands over to the
//! kernel (`Booting from ROM..` followed by escape codes), the kernel start, the prompt, the
//! panic with its signature fields, and that the extra detectors agree.

use kernelci_logspec::{Options, ParseResult, Parser, parse_bytes};

fn parse(name: &str, extra: bool) -> ParseResult {
    let path = format!("{}/tests/data/qemu/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse_bytes(
        &bytes,
        Parser::GenericLinuxBoot,
        &Options {
            extra,
            ..Options::default()
        },
    )
}

#[test]
fn a_boot_to_the_init_marker_starts_the_kernel_without_errors() {
    let r = parse("marker-reboot.log", true);
    assert_eq!(r.state("bootloader.done"), Some(true));
    assert_eq!(r.state("linux.boot.kernel_started"), Some(true));
    assert_eq!(r.state("linux.boot.prompt"), Some(false));
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert!(
        r.extra
            .iter()
            .all(|f| f.finding_type != "linux.boot.kernel_not_started"),
        "{:#?}",
        r.extra
    );
}

#[test]
fn a_boot_to_a_shell_reaches_the_prompt() {
    let r = parse("shell-prompt.log", true);
    assert_eq!(r.state("bootloader.done"), Some(true));
    assert_eq!(r.state("linux.boot.prompt"), Some(true));
    assert_eq!(r.state("linux.boot.kernel_started"), Some(true));
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
}

#[test]
fn a_boot_without_init_is_a_kernel_panic() {
    let r = parse("no-init-panic.log", true);
    assert_eq!(r.state("linux.boot.kernel_started"), Some(true));
    assert_eq!(r.state("linux.boot.prompt"), Some(false));
    let panics: Vec<_> = r
        .errors
        .iter()
        .filter(|e| e.error_type == "linux.kernel.panic")
        .collect();
    assert_eq!(panics.len(), 1, "{:#?}", r.errors);
    assert!(
        panics[0]
            .error_summary
            .starts_with("No working init found."),
        "{}",
        panics[0].error_summary
    );
    assert_eq!(panics[0].signature.len(), 40);
    // The same log without the extra detectors gives the same upstream output.
    assert_eq!(
        parse("no-init-panic.log", false).output_full(),
        r.output_full()
    );
}

fn extra_types(r: &ParseResult) -> Vec<&str> {
    r.extra.iter().map(|f| f.finding_type.as_str()).collect()
}

/// Each beyond-upstream detector on a real crash: the LKDTM kernel (the same tinyconfig
/// plus PROC_FS, SYSFS, DEBUG_FS, LKDTM, the lockup detectors) provoked from its shell, and
/// the rcutorture kernel (SMP, RCU_TORTURE_TEST) stalling a CPU on its own.
#[test]
fn real_crashes_are_found_by_the_extra_detectors() {
    for (log, finding, summary) in [
        (
            "lkdtm-exception-oops.log",
            "linux.kernel.oops",
            "Oops: 0002",
        ),
        ("lkdtm-softlockup.log", "linux.kernel.soft_lockup", "sh"),
        ("lkdtm-hung-task.log", "linux.kernel.hung_task", "sh"),
        (
            "lkdtm-kasan-slab-out-of-bounds.log",
            "linux.kernel.kasan",
            "slab-out-of-bounds",
        ),
        (
            "rcutorture-rcu-stall.log",
            "linux.kernel.rcu_stall",
            "self-detected stall on CPU",
        ),
    ] {
        let r = parse(log, true);
        assert_eq!(r.state("linux.boot.kernel_started"), Some(true), "{log}");
        let found: Vec<_> = r
            .extra
            .iter()
            .filter(|f| f.finding_type == finding)
            .collect();
        assert!(
            !found.is_empty(),
            "{log}: no {finding} in {:?}",
            extra_types(&r)
        );
        assert!(
            found[0].summary.contains(summary),
            "{log}: {finding} summary {:?}",
            found[0].summary
        );
        assert!(
            found[0].line.is_some_and(|l| l > 90),
            "{log}: {:?}",
            found[0].line
        );
        // The same log without the detectors: upstream's output, untouched.
        let compat = parse(log, false);
        assert_eq!(compat.output_full(), r.output_full(), "{log}");
        assert!(compat.extra.is_empty());
    }
    // Upstream's boot parser stops at the shell prompt, before these crashes: only the
    // extra detectors (which read the whole log) report them.
    assert!(parse("lkdtm-exception-oops.log", false).errors.is_empty());
}

#[test]
fn firmware_without_kernel_output_is_a_kernel_that_never_started() {
    let r = parse("kernel-not-started.log", true);
    assert_ne!(r.state("linux.boot.kernel_started"), Some(true));
    assert!(
        extra_types(&r).contains(&"linux.boot.kernel_not_started"),
        "{:?}",
        extra_types(&r)
    );
    // A boot that got going is not reported as never started.
    let ok = parse("marker-reboot.log", true);
    assert!(!extra_types(&ok).contains(&"linux.boot.kernel_not_started"));
}

#[test]
fn a_getty_login_prompt_is_reached() {
    let r = parse("getty-login-prompt.log", true);
    let login: Vec<_> = r
        .extra
        .iter()
        .filter(|f| f.finding_type == "linux.boot.login_prompt")
        .collect();
    assert_eq!(login.len(), 1, "{:?}", extra_types(&r));
    assert!(login[0].text.contains("qemu login:"), "{:?}", login[0].text);
    assert_eq!(
        parse("getty-login-prompt.log", false).output_full(),
        r.output_full()
    );
}

/// A real RCU CPU stall: rcutorture (built in, `stall_cpu=15`) spins with preemption
/// disabled on CPU 0 of two; with a 3 s stall timeout the kernel prints the self-detected
/// stall of CPU 0 and, a few milliseconds later, the expedited grace period's stall report
/// from CPU 1 (with an NMI backtrace of CPU 0).
#[test]
fn a_real_rcutorture_cpu_stall_is_an_rcu_stall() {
    let log = "rcutorture-rcu-stall.log";
    let r = parse(log, true);
    assert_eq!(r.state("bootloader.done"), Some(true));
    assert_eq!(r.state("linux.boot.kernel_started"), Some(true));
    assert_eq!(r.state("linux.boot.prompt"), Some(true));
    // Both reports, and nothing else: the register dumps, `Call Trace:` and the
    // `NMI backtrace` around them are not Oopses nor lockups.
    assert_eq!(
        extra_types(&r),
        ["linux.kernel.rcu_stall", "linux.kernel.rcu_stall"],
        "{:#?}",
        r.extra
    );
    // Lines count as upstream counts them (universal newlines: the lone CR of iPXE's banner
    // ends a line too), one more than `grep -n` says.
    let fields: Vec<_> = r
        .extra
        .iter()
        .map(|f| (f.summary.as_str(), f.line, f.text.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "rcu_sched self-detected stall on CPU",
                Some(157),
                "[    8.660507] rcu: INFO: rcu_sched self-detected stall on CPU",
            ),
            (
                "rcu_sched detected expedited stalls on CPUs/tasks",
                Some(178),
                "[    8.676508] rcu: INFO: rcu_sched detected expedited stalls on CPUs/tasks: \
                 { 0-.... } 757 jiffies s: 25 root: 0x1/.",
            ),
        ]
    );
    for f in &r.extra {
        assert_eq!(f.severity, kernelci_logspec::Severity::Error);
        assert_eq!(f.signature.len(), 40);
    }
    // The signature depends on the summary only, not on times, jiffies or the CPU: the same
    // stall elsewhere (here a one-line sample with another time) gives the same signature.
    let sample = parse_bytes(
        b"[   61.000000] rcu: INFO: rcu_sched self-detected stall on CPU\n",
        Parser::GenericLinuxBoot,
        &Options {
            extra: true,
            ..Options::default()
        },
    );
    assert_eq!(sample.extra.len(), 1, "{:#?}", sample.extra);
    assert_eq!(sample.extra[0].signature, r.extra[0].signature);
    assert_ne!(r.extra[0].signature, r.extra[1].signature);
    // Upstream's boot parser stops at the shell prompt, before the stall: no error, and the
    // same output with or without the extra detectors.
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    let compat = parse(log, false);
    assert!(compat.extra.is_empty());
    assert_eq!(compat.output_full(), r.output_full());
}
