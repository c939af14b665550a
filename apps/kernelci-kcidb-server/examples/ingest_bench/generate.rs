//! A spool of realistic KCIDB v5.3 submissions, in the shape of the fixtures'
//! `gen_submissions.py`: per file one checkout, its builds (a failed build carries a log
//! excerpt), their tests (boot, baseline, kselftest, kunit, ltp, rt-tests with a number;
//! platforms with compatibles, LAVA job URLs, `misc`), and logspec-style issues with their
//! incidents. Deterministic (SplitMix64), every object id unique, exactly the number of
//! objects asked for per file.

use std::path::Path;

use serde_json::{Value, json};

/// SplitMix64 (the generator `gen_submissions.py` uses).
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0x632B_E59B_D9B4_E019))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(len);
        s
    }

    fn seconds(&mut self, lo: u64, hi: u64) -> f64 {
        (lo * 1000 + self.next() % ((hi - lo) * 1000)) as f64 / 1000.0
    }
}

const TREES: [(&str, &str, &str); 5] = [
    (
        "mainline",
        "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
        "master",
    ),
    (
        "next",
        "https://git.kernel.org/pub/scm/linux/kernel/git/next/linux-next.git",
        "master",
    ),
    (
        "stable-rc",
        "https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux-stable-rc.git",
        "linux-6.12.y",
    ),
    (
        "android",
        "https://android.googlesource.com/kernel/common",
        "android-mainline",
    ),
    (
        "net-next",
        "https://git.kernel.org/pub/scm/linux/kernel/git/netdev/net-next.git",
        "main",
    ),
];

/// (architecture, configs, cross compiler prefix, image)
const ARCHES: [(&str, &[&str], &str, &str); 4] = [
    (
        "x86_64",
        &[
            "x86_64_defconfig",
            "x86_64_defconfig+kselftest",
            "allmodconfig",
        ],
        "",
        "bzImage",
    ),
    (
        "arm64",
        &[
            "defconfig",
            "defconfig+arm64-chromebook",
            "defconfig+kselftest",
        ],
        "aarch64-linux-gnu-",
        "Image",
    ),
    (
        "arm",
        &["multi_v7_defconfig", "imx_v6_v7_defconfig"],
        "arm-linux-gnueabihf-",
        "zImage",
    ),
    (
        "riscv",
        &["defconfig", "defconfig+kselftest"],
        "riscv64-linux-gnu-",
        "Image",
    ),
];

const COMPILERS: [&str; 4] = ["gcc-12", "gcc-14", "clang-17", "clang-21"];

/// (platform, compatibles) per architecture index of [`ARCHES`].
const PLATFORMS: [&[(&str, &[&str])]; 4] = [
    &[
        ("qemu-x86_64", &[]),
        ("asus-C436FA-Flip-hatch", &[]),
        ("hp-x360-14-G1-sona", &[]),
    ],
    &[
        (
            "mt8183-kukui-jacuzzi-juniper-sku16",
            &["google,juniper-sku16", "google,juniper", "mediatek,mt8183"],
        ),
        (
            "rk3399-gru-kevin",
            &[
                "google,kevin-rev15",
                "google,kevin",
                "google,gru",
                "rockchip,rk3399",
            ],
        ),
        (
            "bcm2711-rpi-4-b",
            &["raspberrypi,4-model-b", "brcm,bcm2711"],
        ),
    ],
    &[
        (
            "beaglebone-black",
            &["ti,am335x-bone-black", "ti,am335x-bone", "ti,am33xx"],
        ),
        ("imx6q-sabrelite", &["fsl,imx6q-sabrelite", "fsl,imx6q"]),
    ],
    &[
        (
            "sun20i-d1-nezha",
            &["allwinner,d1-nezha", "allwinner,sun20i-d1"],
        ),
        ("qemu-riscv64", &[]),
    ],
];

const LABS: [(&str, &str); 3] = [
    (
        "lava-collabora",
        "https://lava.collabora.dev/scheduler/job/",
    ),
    ("lava-baylibre", "https://lava.baylibre.com/scheduler/job/"),
    ("lava-cip", "https://lava.ciplatform.org/scheduler/job/"),
];

const TEST_PATHS: [&str; 16] = [
    "boot",
    "baseline.login",
    "baseline.dmesg.emerg",
    "baseline.dmesg.crit",
    "kselftest.timers.nanosleep",
    "kselftest.net.fib_tests_sh",
    "kselftest.exec.execveat",
    "kselftest.mm.compaction_test",
    "kselftest.seccomp.seccomp_bpf",
    "kunit.list-kunit-test.list_test_list_add",
    "kunit.drm_buddy.drm_test_buddy_alloc_range",
    "ltp.syscalls.open01",
    "ltp.syscalls.fork13",
    "ltp.mm.mtest01",
    "rt-tests.cyclictest.t0-max-latency",
    "rt-tests.signaltest.max-latency",
];

const TEST_STATUSES: [&str; 10] = [
    "PASS", "PASS", "PASS", "PASS", "PASS", "PASS", "FAIL", "SKIP", "ERROR", "MISS",
];

const BUILD_EXCERPT: &str = "In file included from ./include/linux/atomic.h:7,\n                 \
    from kernel/bounds.c:13:\n./arch/arm/include/asm/cmpxchg.h: In function ‘__cmpxchg’:\n\
    ./arch/arm/include/asm/cmpxchg.h:167:12: error: implicit declaration of function \
    ‘cmpxchg_emu_u8’ [-Werror=implicit-function-declaration]\n  167 |   oldval = \
    cmpxchg_emu_u8((volatile u8 *)ptr, old, new);\n      |            ^~~~~~~~~~~~~~\n\
    cc1: some warnings being treated as errors\n\
    make[2]: *** [scripts/Makefile.build:117: kernel/bounds.s] Error 1\n";

const TEST_EXCERPT: &str = "# selftests: timers: nanosleep\n# TAP version 13\n# 1..4\n\
    # ok 1 setup\n# not ok 2 nanosleep: unexpected result (got -22, want 0)\n\
    # ok 3 teardown\nnot ok 7 selftests: timers: nanosleep # exit=1\n";

/// How many objects of each kind a file of `n` objects holds (checkouts, builds, tests,
/// issues = incidents).
fn layout(n: usize) -> (usize, usize, usize, usize) {
    if n < 3 {
        return (1, n.saturating_sub(1), 0, 0);
    }
    let builds = (n / 32).max(1);
    let issues = if n >= 40 { n / 85 } else { 0 };
    let tests = n - 1 - builds - 2 * issues;
    (1, builds, tests, issues)
}

fn time(base: i64, seconds: f64) -> String {
    let t = chrono::DateTime::from_timestamp(base, 0).unwrap_or_default()
        + chrono::Duration::microseconds((seconds * 1e6) as i64);
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

fn checkout(rng: &mut Rng, base: i64) -> Value {
    let (tree, url, branch) = *rng.pick(&TREES);
    let commit = rng.hex(40);
    let id = format!("maestro:{}", rng.hex(24));
    json!({
        "id": id, "origin": "maestro", "tree_name": tree,
        "git_repository_url": url, "git_repository_branch": branch,
        "git_commit_hash": commit,
        "git_commit_name": format!("v6.15-rc{}-{}-g{}", 1 + rng.below(7), rng.below(4000), &commit[..12]),
        "patchset_hash": "", "start_time": time(base, 0.0),
        "git_commit_tags": [], "git_commit_message": format!(
            "Merge tag 'for-linus' of git://git.kernel.org/pub/scm/linux/kernel/git/{tree}\n\n\
             Pull fixes from the maintainer:\n\n - fix a use-after-free in the ‘probe’ error path\n"),
        "git_repository_branch_tip": rng.chance(80), "valid": true,
        "misc": {"submitted_by": "kernelci-pipeline"},
        "origin_builds_finish_time": time(base, rng.seconds(3600, 7200)),
    })
}

/// A build and the index of its architecture in [`ARCHES`].
fn build(rng: &mut Rng, base: i64, checkout: &Value) -> (Value, usize) {
    let arch_index = rng.below(ARCHES.len());
    let (arch, configs, cross, image) = ARCHES[arch_index];
    let config = *rng.pick(configs);
    let compiler = *rng.pick(&COMPILERS);
    let local = rng.hex(24);
    let tree = checkout["tree_name"].as_str().unwrap_or_default();
    let branch = checkout["git_repository_branch"]
        .as_str()
        .unwrap_or_default();
    let storage = format!("https://storage.kernelci.org/{tree}/{branch}/{local}");
    let failed = rng.chance(10);
    let mut b = json!({
        "id": format!("maestro:{local}"), "origin": "maestro",
        "checkout_id": checkout["id"], "comment": checkout["git_commit_name"],
        "start_time": time(base, rng.seconds(60, 1800)), "architecture": arch,
        "compiler": compiler, "config_name": config,
        "config_url": format!("{storage}/config"), "log_url": format!("{storage}/build.log.gz"),
        "command": format!("make -j16 ARCH={arch} CROSS_COMPILE={cross} {image} modules"),
        "status": if failed { "FAIL" } else { "PASS" },
        "duration": rng.seconds(300, 3000),
        "output_files": [
            {"name": image, "url": format!("{storage}/{image}")},
            {"name": "modules.tar.xz", "url": format!("{storage}/modules.tar.xz")},
            {"name": "metadata.json", "url": format!("{storage}/metadata.json")},
        ],
        "misc": {"platform": "kubernetes", "runtime": "k8s-gke-eu-west4", "lab": null,
                 "job_id": format!("kbuild-{compiler}-{arch}-{}", &local[..8]),
                 "kernel_type": image.to_lowercase(),
                 "maestro_viewer": format!("https://api.kernelci.org/viewer?node_id={local}")},
    });
    if failed {
        b["log_excerpt"] = json!(BUILD_EXCERPT);
    }
    (b, arch_index)
}

fn test(rng: &mut Rng, base: i64, build: &Value, arch_index: usize) -> Value {
    let (platform, compatible) = *rng.pick(PLATFORMS[arch_index]);
    let (lab, jobs) = *rng.pick(&LABS);
    let job = 10_000_000 + rng.below(9_000_000);
    let local = rng.hex(24);
    let path = *rng.pick(&TEST_PATHS);
    let logs = format!("https://storage.kernelci.org/maestro/{platform}/{lab}-{job}");
    let mut status = *rng.pick(&TEST_STATUSES);
    if path.starts_with("rt-tests") && status == "PASS" {
        status = "DONE";
    }
    let mut t = json!({
        "id": format!("maestro:{local}"), "origin": "maestro", "build_id": build["id"],
        "path": path, "comment": format!("{path} on {platform} in {lab}"),
        "start_time": time(base, rng.seconds(1800, 7200)),
        "environment": {"comment": format!("Runtime: {lab}"),
                        "misc": {"platform": platform, "job_url": format!("{jobs}{job}"),
                                 "job_id": job.to_string()}},
        "misc": {"runtime": lab, "lab": lab, "arch": build["architecture"],
                 "compiler": build["compiler"], "kernel_type": build["misc"]["kernel_type"],
                 "maestro_viewer": format!("https://api.kernelci.org/viewer?node_id={local}")},
        "status": status, "duration": rng.seconds(5, 600),
        "log_url": format!("{logs}/lava_log.txt.gz"),
    });
    if !compatible.is_empty() {
        t["environment"]["compatible"] = json!(compatible);
    }
    if path == "boot" {
        t["output_files"] = json!([{"name": "dmesg.txt", "url": format!("{logs}/dmesg.txt")}]);
    }
    if status == "DONE" {
        t["number"] = json!({"value": rng.seconds(20, 500), "unit": "us", "prefix": "metric"});
    }
    if status == "FAIL" && path.starts_with("kselftest") {
        t["log_excerpt"] = json!(TEST_EXCERPT);
    }
    t
}

fn issue(rng: &mut Rng) -> Value {
    let signature = rng.hex(40);
    json!({
        "id": format!("maestro:{signature}"), "version": 1, "origin": "maestro",
        "report_url": format!("https://lore.kernel.org/all/{}@kernel.org/", &signature[..16]),
        "report_subject": "[REGRESSION] implicit declaration of function ‘cmpxchg_emu_u8’",
        "comment": "kbuild.compiler.error: implicit declaration of function ‘cmpxchg_emu_u8’",
        "culprit": {"code": true, "tool": false, "harness": false},
        "misc": {"logspec": {"error_type": "kbuild.compiler.error", "version": "1.0.0"}},
    })
}

fn incident(rng: &mut Rng, issue: &Value, target: &Value, is_build: bool) -> Value {
    let mut x = json!({
        "id": format!("maestro:{}", rng.hex(40)), "origin": "maestro",
        "issue_id": issue["id"], "issue_version": 1, "present": true,
        "comment": "matched by logspec",
    });
    let key = if is_build { "build_id" } else { "test_id" };
    x[key] = target["id"].clone();
    x
}

/// File `index` of the spool: exactly `objects` objects.
pub fn submission(rng: &mut Rng, index: usize, objects: usize) -> String {
    let (_, n_builds, n_tests, n_issues) = layout(objects);
    // One checkout every six hours, from 2025-03-03.
    let base = 1_740_981_600 + index as i64 * 6 * 3600;
    let checkout = checkout(rng, base);
    let builds: Vec<(Value, usize)> = (0..n_builds).map(|_| build(rng, base, &checkout)).collect();
    let tests: Vec<Value> = (0..n_tests)
        .map(|i| {
            let (b, arch) = &builds[i % builds.len().max(1)];
            test(rng, base, b, *arch)
        })
        .collect();
    let issues: Vec<Value> = (0..n_issues).map(|_| issue(rng)).collect();
    let incidents: Vec<Value> = issues
        .iter()
        .enumerate()
        .map(|(i, is)| match i % 2 {
            0 => incident(rng, is, &builds[i % builds.len()].0, true),
            _ => incident(rng, is, &tests[i % tests.len().max(1)], false),
        })
        .collect();
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [checkout],
        "builds": builds.into_iter().map(|(b, _)| b).collect::<Vec<_>>(),
        "tests": tests, "issues": issues, "incidents": incidents,
    })
    .to_string()
}

/// What was written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpoolStats {
    /// Files.
    pub files: usize,
    /// Objects (all distinct).
    pub objects: usize,
    /// Bytes.
    pub bytes: u64,
}

/// Writes ready spool files `submission-NNNNNNN.json` into `dir` (in arrival order) until
/// `files` files or `max_bytes` bytes, whichever comes first.
pub fn write_spool(
    dir: &Path,
    seed: u64,
    files: usize,
    objects_per_file: usize,
    max_bytes: u64,
) -> std::io::Result<SpoolStats> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng::new(seed);
    let mut stats = SpoolStats::default();
    while stats.files < files && stats.bytes < max_bytes {
        let text = submission(&mut rng, stats.files, objects_per_file);
        std::fs::write(
            dir.join(format!("submission-{:07}.json", stats.files)),
            &text,
        )?;
        stats.files += 1;
        stats.objects += objects_per_file;
        stats.bytes += text.len() as u64;
    }
    Ok(stats)
}
