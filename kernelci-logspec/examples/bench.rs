//! Throughput and memory of kernelci-logspec.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/logspec-target cargo run --release -p kernelci-logspec \
//!     --example bench -- [FIXTURES_DIR] [--synthetic-mib N] [--seconds S]
//! ```
//!
//! 1. Streams a synthetic boot log of N MiB (default 1024) through `parse_reader`, generated
//!    on the fly (nothing is written to disk), and reports MB/s and the peak RSS (VmHWM),
//!    which stays flat whatever N is.
//! 2. Parses every fixture log (`FIXTURES_DIR/logspec/*/*.log`, default
//!    `../shared/fixtures`) again and again in one process for S seconds (default 3),
//!    parse only (logs already in memory), and reports MB/s for `parse_str` (compat), with
//!    the beyond-upstream detectors, and through the streaming reader; then the peak RSS.

use kernelci_logspec::{Options, Parser, parse_reader, parse_str, parse_str_with};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let mut fixtures = None;
    let mut synthetic_mib: u64 = 1024;
    let mut seconds = 3.0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--synthetic-mib" => {
                synthetic_mib = args.next().and_then(|v| v.parse().ok()).unwrap_or(1024)
            }
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(3.0),
            other => fixtures = Some(PathBuf::from(other)),
        }
    }
    let fixtures = fixtures
        .or_else(|| std::env::var_os("KERNELCI_FIXTURES").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));

    println!("peak RSS at start: {} MiB", vm_hwm_mib());
    synthetic(synthetic_mib);
    fixture_throughput(&fixtures.join("logspec"), Duration::from_secs_f64(seconds));
}

fn synthetic(mib: u64) {
    let total = mib << 20;
    let reader = SyntheticBoot::new(total);
    let start = Instant::now();
    let result = parse_reader(
        reader,
        Parser::GenericLinuxBoot,
        &Options {
            extra: true,
            ..Options::default()
        },
    )
    .expect("synthetic log");
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "synthetic boot log: {:.0} MiB streamed in {elapsed:.2} s = {:.0} MB/s (with extra detectors); \
         {} errors, {} extra findings, prompt {:?}; peak RSS {} MiB",
        total as f64 / (1 << 20) as f64,
        total as f64 / 1e6 / elapsed,
        result.errors.len(),
        result.extra.len(),
        result.state("linux.boot.prompt"),
        vm_hwm_mib()
    );
}

fn fixture_throughput(dir: &Path, budget: Duration) {
    let logs = load_fixtures(dir);
    if logs.is_empty() {
        println!("no fixture logs under {}", dir.display());
        return;
    }
    let bytes: usize = logs.iter().map(|(_, text)| text.len()).sum();
    println!(
        "fixtures: {} logs, {:.1} MB, from {}",
        logs.len(),
        bytes as f64 / 1e6,
        dir.display()
    );
    let extra = Options {
        extra: true,
        ..Options::default()
    };
    let runs: [(&str, &ParseFn<'_>); 3] = [
        ("parse_str (compat)", &|p, t| drop(parse_str(t, p))),
        ("parse_str + extra detectors", &|p, t| {
            drop(parse_str_with(t, p, &extra))
        }),
        ("parse_reader (streaming)", &|p, t| {
            drop(parse_reader(t.as_bytes(), p, &Options::default()));
        }),
    ];
    for (name, run) in runs {
        let start = Instant::now();
        let mut rounds = 0u64;
        while rounds == 0 || start.elapsed() < budget {
            for (parser, text) in &logs {
                run(*parser, text);
            }
            rounds += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "  {name:<30} {rounds:>4} rounds in {elapsed:.2} s: {:>6.0} MB/s, {:.2} ms per round",
            (bytes as f64 * rounds as f64) / 1e6 / elapsed,
            elapsed * 1e3 / rounds as f64
        );
    }
    println!("peak RSS after the fixtures: {} MiB", vm_hwm_mib());
}

/// One way of parsing a log, timed by the benchmark.
type ParseFn<'a> = dyn Fn(Parser, &str) + 'a;

fn load_fixtures(dir: &Path) -> Vec<(Parser, String)> {
    let mut logs = Vec::new();
    let Ok(folders) = std::fs::read_dir(dir) else {
        return logs;
    };
    let mut paths: Vec<PathBuf> = folders
        .filter_map(|e| e.ok().map(|e| e.path()))
        .flat_map(|folder| std::fs::read_dir(folder).into_iter().flatten())
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    for path in paths {
        let expected =
            std::fs::read_to_string(path.with_extension("expected.json")).unwrap_or_default();
        let parser = serde_json::from_str::<serde_json::Value>(&expected)
            .ok()
            .and_then(|v| v["parser"].as_str().and_then(|p| Parser::from_name(p).ok()));
        if let (Some(parser), Ok(bytes)) = (parser, std::fs::read(&path)) {
            logs.push((parser, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    logs
}

/// Peak resident set size (VmHWM) of this process, in MiB.
fn vm_hwm_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}

/// A boot log generated on the fly: a bootloader, the hand-over, then blocks of kernel
/// console output (with an error return code every 16 blocks and a WARNING report every 256
/// blocks) until `total` bytes, then the shell prompt. The blocks are made once and cycled.
struct SyntheticBoot {
    total: u64,
    produced: u64,
    /// The header, 256 blocks, then the prompt.
    pieces: Vec<Vec<u8>>,
    piece: usize,
    pos: usize,
}

impl SyntheticBoot {
    fn new(total: u64) -> Self {
        let header = "U-Boot 2024.01 (Jan 08 2024 - 12:00:00 +0000)\nDRAM:  4 GiB\n\
                      Starting kernel ...\n\n[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]\n\
                      [    0.000000] Linux version 6.8.0 (kernelci@build) (gcc 12.2.0) #1 SMP PREEMPT\n";
        let mut pieces = vec![header.as_bytes().to_vec()];
        pieces.extend((1..=256).map(make_block));
        pieces.push(b"/ # \n".to_vec());
        SyntheticBoot {
            total,
            produced: 0,
            pieces,
            piece: 0,
            pos: 0,
        }
    }
}

fn make_block(n: usize) -> Vec<u8> {
    let t = n as f64 * 0.001;
    let mut s = String::with_capacity(8192);
    for i in 0..40 {
        s.push_str(&format!(
            "[{t:>12.6}] usb 1-1.{i}: new high-speed USB device number {i} using dwc2\n\
             [{t:>12.6}] mmc0: new HS200 MMC card at address 0001, bus width 8, clock 200000000\n"
        ));
    }
    if n.is_multiple_of(16) {
        s.push_str(&format!(
            "[{t:>12.6}] platform regulatory.0: Direct firmware load for regulatory.db failed with error -2\n"
        ));
    }
    if n.is_multiple_of(256) {
        s.push_str(&format!(
            "[{t:>12.6}] ------------[ cut here ]------------\n\
             [{t:>12.6}] WARNING: CPU: 1 PID: 42 at drivers/gpu/drm/drm_vblank.c:728 drm_crtc_vblank_helper+0x48/0x80\n\
             [{t:>12.6}] Modules linked in: snd_soc_hdmi_codec panfrost\n\
             [{t:>12.6}] Hardware name: Radxa ROCK Pi 4B (DT)\n\
             [{t:>12.6}] Call trace:\n\
             [{t:>12.6}]  drm_crtc_vblank_helper+0x48/0x80\n\
             [{t:>12.6}]  drm_vblank_work+0x20/0x40\n\
             [{t:>12.6}] ---[ end trace 0000000000000000 ]---\n"
        ));
    }
    s.into_bytes()
}

impl Read for SyntheticBoot {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.produced >= self.total {
            return Ok(0);
        }
        let prompt = self.pieces.len() - 1;
        if self.pos >= self.pieces[self.piece].len() {
            self.pos = 0;
            if self.total - self.produced < 16384 {
                self.piece = prompt;
                self.total = self.produced + self.pieces[prompt].len() as u64;
            } else {
                self.piece = self.piece % 256 + 1;
            }
        }
        let piece = &self.pieces[self.piece];
        let n = buf.len().min(piece.len() - self.pos);
        buf[..n].copy_from_slice(&piece[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}
