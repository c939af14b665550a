//! A git tree whose Makefile imitates kbuild, a QEMU stand-in that prints a boot log, and
//! a pipeline configuration using them: the fast end-to-end tests' fake kernel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

pub const MAKEFILE: &str = r##"# A stand-in for kbuild: just enough targets for the kbuild job template.
tinyconfig defconfig:
	@echo "# fake config" > .config
	@echo "CONFIG_64BIT=y" >> .config
olddefconfig:
	@true
bzImage:
	@echo "  CC      init/main.o"
	@if [ -f BREAK ]; then \
	  echo "drivers/fake/broken.c:12:9: error: 'undeclared_thing' undeclared (first use in this function)"; \
	  echo "make[2]: *** [scripts/Makefile.build:250: drivers/fake/broken.o] Error 1"; \
	  exit 2; fi
	@mkdir -p arch/x86/boot
	@echo "fake kernel image" > arch/x86/boot/bzImage
	@echo "  Kernel: arch/x86/boot/bzImage is ready  (#1)"
.PHONY: tinyconfig defconfig olddefconfig bzImage
"##;

pub const FAKE_QEMU: &str = r#"#!/bin/sh
# Prints what a tinyconfig kernel prints on the serial console, then exits like
# `qemu -no-reboot` after the guest reboots.
echo "Booting from ROM.."
echo "[    0.000000] Linux version 6.1.0-fake (ci@example) (gcc 12.2.0) #1 SMP"
echo "[    0.051967] Kernel command line: console=ttyS0"
echo "[    0.605670] Run /init as init process"
echo "BOOT-MARKER: init reached, kernel 6.1.0-fake x86_64, uptime ?"
echo "[    1.030994] reboot: Restarting system"
exit 0
"#;

pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn config(tree: &Path, qemu: &Path, ramdisk: &Path) -> String {
    format!(
        r#"
trees:
  fake:
    url: "{tree}"
build_configs:
  fake-master:
    tree: fake
    branch: master
fragments:
  qemu-console:
    path: kernel/configs/qemu-console.config
    configs: ["CONFIG_SERIAL_8250=y", "CONFIG_PRINTK_TIME=y"]
runtimes:
  shell:
    lab_type: shell
platforms:
  qemu-x86_64:
    arch: x86_64
    boot_method: qemu
    mach: qemu
    params:
      qemu_bin: "{qemu}"
      ramdisk: "{ramdisk}"
jobs:
  kbuild-gcc-x86_64:
    template: kbuild.jinja2
    kind: kbuild
    params: {{arch: x86_64, compiler: gcc, defconfig: tinyconfig, fragments: [qemu-console], jobs: 1}}
  baseline-x86_64:
    template: baseline.jinja2
    kind: job
    kcidb_test_suite: boot
    params: {{boot_timeout: 20}}
scheduler:
  - job: kbuild-gcc-x86_64
    event: {{channel: node, kind: checkout, state: available}}
    runtime: {{name: shell}}
  - job: baseline-x86_64
    event: {{channel: node, kind: kbuild, state: available, name: kbuild-gcc-x86_64}}
    runtime: {{name: shell}}
    platforms: [qemu-x86_64]
"#,
        tree = tree.display(),
        qemu = qemu.display(),
        ramdisk = ramdisk.display()
    )
}

/// Makes the fake tree (`DIR/linux`, branch master, tag v6.1), the QEMU stand-in and the
/// pipeline configuration (`DIR/pipeline.yaml`) in `dir`; returns the tree and the config.
pub fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let tree = dir.join("linux");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("Makefile"), MAKEFILE).unwrap();
    git(&tree, &["init", "-q", "-b", "master"]);
    git(&tree, &["add", "-A"]);
    git(&tree, &["commit", "-q", "-m", "v6.1 fake"]);
    git(&tree, &["tag", "v6.1"]);
    let qemu = dir.join("fake-qemu");
    std::fs::write(&qemu, FAKE_QEMU).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&qemu)
        .status()
        .unwrap();
    let ramdisk = dir.join("initramfs.cpio.gz");
    std::fs::write(&ramdisk, b"not really an initramfs").unwrap();
    let cfg = dir.join("pipeline.yaml");
    std::fs::write(&cfg, config(&tree, &qemu, &ramdisk)).unwrap();
    (tree, cfg)
}
