//! The detectors beyond upstream, on console output written the way the kernel prints it.
//! Each sample checks the finding, that a line number points at it, and that turning the
//! detectors on never changes upstream's output.

use kernelci_logspec::{
    Finding, Options, ParseResult, Parser, Severity, parse_str, parse_str_with,
};

fn with_extra(log: &str, parser: Parser) -> ParseResult {
    let result = parse_str_with(
        log,
        parser,
        &Options {
            extra: true,
            ..Options::default()
        },
    );
    let compat = parse_str(log, parser);
    assert_eq!(
        result.output_full(),
        compat.output_full(),
        "extra detectors changed the compat output"
    );
    assert!(compat.extra.is_empty());
    result
}

fn only<'a>(result: &'a ParseResult, finding_type: &str) -> &'a Finding {
    let found: Vec<&Finding> = result
        .extra
        .iter()
        .filter(|f| f.finding_type == finding_type)
        .collect();
    assert_eq!(found.len(), 1, "one {finding_type} in {:#?}", result.extra);
    found[0]
}

const BOOT: &str = "U-Boot 2024.01-rc4 (Dec 12 2023 - 10:00:00 +0000)\n\
Starting kernel ...\n\
\n\
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]\n\
[    0.000000] Linux version 6.6.0 (kernelci@build-j2) (aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT\n";

#[test]
fn kasan_report() {
    let log = format!(
        "{BOOT}[   25.101543] ==================================================================\n\
[   25.102437] BUG: KASAN: slab-use-after-free in kmalloc_uaf+0x1b8/0x1c0 [kasan_test]\n\
[   25.103410] Read of size 1 at addr ffff888104b4c7c8 by task kunit_try_catch/171\n\
[   25.104370]\n\
[   25.104624] CPU: 0 PID: 171 Comm: kunit_try_catch Tainted: G    B            N 6.6.0 #1\n\
[   25.105634] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014\n\
[   25.106812] Call Trace:\n\
[   25.107161]  <TASK>\n\
[   25.107464]  dump_stack_lvl+0x48/0x70\n\
[   25.107963]  print_report+0xd2/0x660\n\
[   25.108446]  kasan_report+0xd4/0x110\n\
[   25.110372]  kmalloc_uaf+0x1b8/0x1c0 [kasan_test]\n\
[   25.121000]  </TASK>\n\
[   25.135000] ==================================================================\n\
/ # "
    );
    let result = with_extra(&log, Parser::GenericLinuxBoot);
    let kasan = only(&result, "linux.kernel.kasan");
    assert_eq!(kasan.summary, "KASAN: slab-use-after-free in kmalloc_uaf");
    assert_eq!(kasan.severity, Severity::Error);
    assert_eq!(kasan.line, Some(7));
    assert!(kasan.text.contains("BUG: KASAN: slab-use-after-free"));
    assert_eq!(kasan.signature.len(), 40);
    // Upstream sees the same report only as a generic BUG.
    assert_eq!(result.errors[0].error_type, "linux.kernel.bug");
}

#[test]
fn arm64_and_x86_oops() {
    let log = format!(
        "{BOOT}[   12.345678] Unable to handle kernel paging request at virtual address dead000000000108\n\
[   12.346000] Mem abort info:\n\
[   12.346100]   ESR = 0x0000000096000044\n\
[   12.346200]   EC = 0x25: DABT (current EL), IL = 32 bits\n\
[   12.350000] Internal error: Oops: 0000000096000044 [#1] PREEMPT SMP\n\
[   12.351000] Modules linked in: crct10dif_ce fuse\n\
[   12.352000] CPU: 2 PID: 1 Comm: swapper/0 Not tainted 6.6.0 #1\n\
[   12.353000] Hardware name: Radxa ROCK Pi 4B (DT)\n\
[   30.100000] Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#2] PREEMPT SMP KASAN NOPTI\n"
    );
    let result = with_extra(&log, Parser::GenericLinuxBoot);
    let oopses: Vec<&Finding> = result
        .extra
        .iter()
        .filter(|f| f.finding_type == "linux.kernel.oops")
        .collect();
    assert_eq!(oopses.len(), 2);
    assert_eq!(oopses[0].summary, "Oops: 0000000096000044");
    assert_eq!(oopses[0].line, Some(10));
    assert_eq!(
        oopses[1].summary,
        "Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000"
    );
    // Upstream has no Oops detector (it is commented out there).
    assert!(result.errors.is_empty());
}

#[test]
fn soft_lockup_hung_task_and_rcu_stall() {
    let log = format!(
        "{BOOT}[   56.012345] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kworker/1:2:123]\n\
[   56.013000] Modules linked in: snd_soc_hdmi_codec\n\
[   60.123456] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n\
[   60.124000] rcu:     1-...!: (0 ticks this GP) idle=2c4c/1/0x4000000000000000 softirq=4017/4017 fqs=0\n\
[   61.000000] rcu: INFO: rcu_sched self-detected stall on CPU\n\
[  245.123456] INFO: task kworker/u8:2:97 blocked for more than 120 seconds.\n\
[  245.124000]       Not tainted 6.6.0 #1\n\
[  245.125000] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n"
    );
    let result = with_extra(&log, Parser::GenericLinuxBoot);
    assert_eq!(
        only(&result, "linux.kernel.soft_lockup").summary,
        "soft lockup in kworker/1:2"
    );
    assert_eq!(only(&result, "linux.kernel.soft_lockup").line, Some(6));
    assert_eq!(
        only(&result, "linux.kernel.hung_task").summary,
        "task kworker/u8:2 blocked for more than 120 seconds"
    );
    let stalls: Vec<&str> = result
        .extra
        .iter()
        .filter(|f| f.finding_type == "linux.kernel.rcu_stall")
        .map(|f| f.summary.as_str())
        .collect();
    assert_eq!(
        stalls,
        [
            "rcu_preempt detected stalls on CPUs/tasks",
            "rcu_sched self-detected stall on CPU"
        ]
    );
    // Upstream misses all three: `watchdog: BUG:` does not start right after the timestamp.
    assert!(result.errors.is_empty());
}

#[test]
fn login_prompt_reached() {
    let log = format!(
        "{BOOT}[    4.500000] Run /sbin/init as init process\n\
\n\
Debian GNU/Linux 12 debian-bookworm-arm64 ttyS2\n\
\n\
debian-bookworm-arm64 login: "
    );
    let result = with_extra(&log, Parser::GenericLinuxBoot);
    let login = only(&result, "linux.boot.login_prompt");
    assert_eq!(login.severity, Severity::Info);
    assert_eq!(login.line, Some(10));
    // Upstream only knows the `/ #` prompt.
    assert_eq!(result.state("linux.boot.prompt"), Some(false));
    assert_eq!(result.state("linux.boot.kernel_started"), Some(true));
}

#[test]
fn kernel_never_started() {
    let bootloader_only = "U-Boot SPL 2024.01\nTrying to boot from MMC1\nU-Boot 2024.01\n\
Hit any key to stop autoboot:  0\n## Loading kernel from FIT Image\nStarting kernel ...\n\
\nresetting ...\nU-Boot SPL 2024.01\n";
    let result = with_extra(bootloader_only, Parser::GenericLinuxBoot);
    assert_eq!(result.state("linux.boot.kernel_started"), Some(false));
    let finding = only(&result, "linux.boot.kernel_not_started");
    assert_eq!(
        finding.summary,
        "kernel never started after the bootloader handover"
    );
    assert_eq!(finding.line, None);

    let no_handover =
        "U-Boot 2024.01\nWrong Image Format for bootm command\nERROR: can't get kernel image!\n=> ";
    let result = with_extra(no_handover, Parser::GenericLinuxBoot);
    assert_eq!(result.state("bootloader.done"), Some(false));
    assert_eq!(
        only(&result, "linux.boot.kernel_not_started").summary,
        "kernel never started: no bootloader handover found"
    );

    // A kernel that printed anything is not "never started".
    let result = with_extra(&format!("{BOOT}/ # "), Parser::GenericLinuxBoot);
    assert!(result.extra.is_empty(), "{:#?}", result.extra);
}

#[test]
fn kbuild_logs_have_no_extra_findings() {
    let log = "  CC      kernel/fork.o\n[    1.0] BUG: KASAN: x in y\nmake[1]: *** [Makefile:1: all] Error 2\n";
    let result = with_extra(log, Parser::Kbuild);
    assert!(result.extra.is_empty());
}
