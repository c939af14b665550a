//! Synthetic but realistic nodes: a checkout every 200 nodes, ten kbuilds under it, three
//! jobs (`baseline-arm64`, `kselftest-*`...) under each kbuild and tests under the jobs,
//! spread over 20 trees and the last 60 days, with varied states and results.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use kernelci_model::{Kind, Node, NodeResult, ObjectId, State, Timestamp, time};
use serde_json::{Value, json};

/// Nodes per checkout tree.
pub const GROUP: u64 = 200;
/// Nodes per kbuild block inside a group (the kbuild, its jobs and their tests).
const BLOCK: u64 = 20;
/// Offsets of the jobs inside a kbuild block.
const JOB_OFFSETS: [u64; 3] = [1, 7, 13];

/// The trees (`data.kernel_revision.tree`).
pub const TREES: [&str; 20] = [
    "mainline",
    "next",
    "stable",
    "stable-rc",
    "android",
    "chromiumos",
    "kernelci",
    "broonie-misc",
    "broonie-sound",
    "broonie-spi",
    "linusw",
    "media",
    "net-next",
    "netdev",
    "rdma",
    "renesas",
    "tip",
    "arm64",
    "riscv",
    "amlogic",
];

/// Job names; `baseline-arm64` is the one the queries look for.
const JOBS: [&str; 10] = [
    "baseline-arm64",
    "baseline-x86",
    "baseline-arm",
    "kselftest-dt",
    "kselftest-cpufreq",
    "kselftest-rtc",
    "kunit-x86_64",
    "ltp-timers",
    "tast-ui",
    "sleep-x86",
];

const ARCHES: [(&str, &str); 5] = [
    ("arm64", "defconfig"),
    ("x86_64", "x86_64_defconfig"),
    ("arm", "multi_v7_defconfig"),
    ("riscv", "defconfig"),
    ("i386", "i386_defconfig"),
];

const PLATFORMS: [&str; 6] = [
    "bcm2711-rpi-4-b",
    "qemu-x86",
    "imx8mp-evk",
    "sun50i-h6-pine-h64",
    "hp-x360-12b-ca0010nr-n4020-octopus",
    "meson-g12b-a311d-khadas-vim3",
];

/// A small deterministic PRNG (SplitMix64); no crate needed for benchmark data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` random lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(n);
        s
    }
}

/// Values of existing nodes, for realistic query parameters.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Tree ids of sampled checkouts.
    pub treeids: Vec<String>,
    /// Commits of sampled checkouts.
    pub commits: Vec<String>,
    /// Ids of sampled kbuilds and jobs (nodes with children).
    pub parents: Vec<String>,
    /// A creation time after which about a quarter of the nodes were created.
    pub recent: Option<Timestamp>,
}

/// The revision shared by every node of one checkout tree.
#[derive(Debug, Clone)]
struct Revision {
    tree: &'static str,
    commit: String,
    treeid: String,
    value: Value,
}

/// The current kbuild or job: what its children copy.
#[derive(Debug, Clone)]
struct Parent {
    id: ObjectId,
    name: &'static str,
    path: Vec<String>,
    data: Value,
}

/// Generates `total` nodes in tree order (parents before children).
pub struct Generator {
    rng: Rng,
    total: u64,
    next: u64,
    start: Timestamp,
    step_us: i64,
    rev: Option<Revision>,
    checkout: Option<ObjectId>,
    kbuild: Option<Parent>,
    job: Option<Parent>,
    sample_every: u64,
    /// What was sampled so far.
    pub samples: Samples,
}

impl Generator {
    /// `total` nodes created over the 60 days before `now`.
    pub fn new(total: u64, seed: u64, now: Timestamp) -> Generator {
        let span_us = TimeDelta::days(60).num_microseconds().unwrap_or(i64::MAX);
        let groups = total.div_ceil(GROUP).max(1);
        Generator {
            rng: Rng::new(seed),
            total,
            next: 0,
            start: now - TimeDelta::days(60),
            step_us: span_us / total.max(1) as i64,
            rev: None,
            checkout: None,
            kbuild: None,
            job: None,
            sample_every: groups.div_ceil(1000).max(1),
            samples: Samples::default(),
        }
    }

    fn revision(&mut self, group: u64) -> Revision {
        let tree = TREES[(group % TREES.len() as u64) as usize];
        let commit = self.rng.hex(40);
        let treeid = self.rng.hex(64);
        let patchlevel = 6 + self.rng.below(12);
        let rc = 1 + self.rng.below(8);
        let value = json!({
            "tree": tree,
            "url": format!("https://git.kernel.org/pub/scm/linux/kernel/git/{tree}/linux.git"),
            "branch": if tree == "mainline" { "master" } else { "for-next" },
            "commit": commit,
            "describe": format!("v6.{patchlevel}-rc{rc}-{}-g{}", self.rng.below(900), &commit[..12]),
            "version": {"version": 6, "patchlevel": patchlevel, "sublevel": null,
                        "extra": format!("-rc{rc}"), "name": null},
        });
        Revision {
            tree,
            commit,
            treeid,
            value,
        }
    }

    fn outcome(&mut self, idx: u64, kind: Kind) -> (State, Option<NodeResult>) {
        // The newest 1% of nodes are still in flight.
        if idx * 100 >= self.total * 99 {
            let state = if kind == Kind::Checkout {
                State::Available
            } else {
                State::Running
            };
            return (state, None);
        }
        let roll = self.rng.below(100);
        let result = match kind {
            Kind::Checkout => NodeResult::Pass,
            Kind::Kbuild if roll < 85 => NodeResult::Pass,
            Kind::Kbuild if roll < 95 => NodeResult::Fail,
            Kind::Kbuild => NodeResult::Incomplete,
            _ if roll < 70 => NodeResult::Pass,
            _ if roll < 85 => NodeResult::Fail,
            _ if roll < 95 => NodeResult::Skip,
            _ => NodeResult::Incomplete,
        };
        (State::Done, Some(result))
    }

    /// The next node, or None after `total`.
    pub fn next_node(&mut self) -> Option<Node> {
        if self.next >= self.total {
            return None;
        }
        let idx = self.next;
        self.next += 1;
        let group = idx / GROUP;
        let offset = idx % GROUP;
        let created = time::from_micros(time::to_micros(&self.start) + idx as i64 * self.step_us);
        if self.samples.recent.is_none() && idx * 4 >= self.total * 3 {
            self.samples.recent = Some(created);
        }
        let sample = group.is_multiple_of(self.sample_every);
        if offset == 0 || self.rev.is_none() {
            let rev = self.revision(group);
            let node = self.checkout_node(idx, &rev, created);
            if sample {
                self.samples.treeids.push(rev.treeid.clone());
                self.samples.commits.push(rev.commit.clone());
            }
            self.checkout = Some(node.id);
            self.rev = Some(rev);
            self.kbuild = None;
            self.job = None;
            return Some(node);
        }
        let block_offset = (offset - 1) % BLOCK;
        let node = if block_offset == 0 || self.kbuild.is_none() {
            let node = self.kbuild_node(idx, created);
            if sample {
                self.samples.parents.push(node.id.to_string());
            }
            node
        } else if JOB_OFFSETS.contains(&block_offset) || self.job.is_none() {
            let node = self.job_node(idx, created);
            if sample && block_offset == JOB_OFFSETS[0] {
                self.samples.parents.push(node.id.to_string());
            }
            node
        } else {
            self.test_node(idx, created)
        };
        Some(node)
    }

    fn base(&mut self, idx: u64, kind: Kind, name: String, created: Timestamp) -> Node {
        let (state, result) = self.outcome(idx, kind);
        let rev = self.rev.as_ref();
        Node {
            id: ObjectId::generate(),
            kind,
            name,
            path: Vec::new(),
            group: None,
            parent: None,
            state,
            result,
            artifacts: None,
            data: None,
            debug: Some(json!({})),
            jobfilter: None,
            platform_filter: Some(Vec::new()),
            created,
            updated: created + TimeDelta::minutes(5 + self.rng.below(90) as i64),
            timeout: created + TimeDelta::hours(6),
            holdoff: None,
            owner: Some("production".into()),
            submitter: Some("service:pipeline".into()),
            treeid: rev.map(|r| r.treeid.clone()),
            user_groups: Vec::new(),
            processed_by_kcidb_bridge: state == State::Done,
            retry_counter: 0,
        }
    }

    fn checkout_node(&mut self, idx: u64, rev: &Revision, created: Timestamp) -> Node {
        let mut n = self.base(idx, Kind::Checkout, "checkout".into(), created);
        n.treeid = Some(rev.treeid.clone());
        n.path = vec!["checkout".into()];
        n.holdoff = Some(created + TimeDelta::minutes(10));
        n.artifacts = Some(BTreeMap::from([(
            "tarball".to_string(),
            format!(
                "https://files.kernelci.org/{}/linux-{}.tar.gz",
                rev.tree,
                &rev.commit[..12]
            ),
        )]));
        n.data = Some(json!({"kernel_revision": rev.value}));
        n
    }

    fn kbuild_node(&mut self, idx: u64, created: Timestamp) -> Node {
        let (arch, defconfig) = *self.rng.pick(&ARCHES);
        let compiler = if self.rng.below(4) == 0 {
            "clang-17"
        } else {
            "gcc-12"
        };
        let name = format!("kbuild-{compiler}-{arch}");
        let mut n = self.base(idx, Kind::Kbuild, name.clone(), created);
        n.path = vec!["checkout".into(), name];
        let path = n.path.clone();
        n.parent = self.checkout;
        n.holdoff = Some(created + TimeDelta::minutes(10));
        let rev = self.rev.as_ref().map(|r| r.value.clone());
        let data = json!({
            "kernel_revision": rev,
            "arch": arch, "defconfig": defconfig, "compiler": compiler,
            "fragments": ["lab-setup", "kselftest"], "config_full": format!("{defconfig}+lab-setup+kselftest"),
            "platform": "kubernetes", "runtime": "k8s-gke-eu-west4",
            "job_id": format!("kci-{}", self.rng.hex(16)), "kernel_type": "image",
            "error_code": if n.result == Some(NodeResult::Fail) { json!("Test") } else { Value::Null },
        });
        n.artifacts = Some(BTreeMap::from([
            (
                "kernel".to_string(),
                format!("https://files.kernelci.org/{}/Image", n.id),
            ),
            (
                "log".to_string(),
                format!("https://files.kernelci.org/{}/build.log", n.id),
            ),
        ]));
        n.data = Some(data.clone());
        self.kbuild = Some(Parent {
            id: n.id,
            name: "kbuild",
            path,
            data,
        });
        self.job = None;
        n
    }

    fn job_node(&mut self, idx: u64, created: Timestamp) -> Node {
        let job = *self.rng.pick(&JOBS);
        let (parent, mut path, kbuild_data) = match &self.kbuild {
            Some(k) => (Some(k.id), k.path.clone(), k.data.clone()),
            None => (None, Vec::new(), json!({})),
        };
        path.push(job.into());
        let mut n = self.base(idx, Kind::Job, job.into(), created);
        n.path = path.clone();
        n.parent = parent;
        n.group = Some(job.into());
        let data = json!({
            "kernel_revision": kbuild_data["kernel_revision"],
            "arch": kbuild_data["arch"], "defconfig": kbuild_data["defconfig"],
            "compiler": kbuild_data["compiler"],
            "platform": self.rng.pick(&PLATFORMS), "runtime": "lava-collabora",
            "job_id": format!("{}", 10_000_000 + self.rng.below(9_000_000)),
            "kernel_type": "image",
        });
        n.artifacts = Some(BTreeMap::from([(
            "lava_log".to_string(),
            format!("https://files.kernelci.org/{}/log.txt.gz", n.id),
        )]));
        n.data = Some(data.clone());
        self.job = Some(Parent {
            id: n.id,
            name: job,
            path,
            data,
        });
        n
    }

    fn test_node(&mut self, idx: u64, created: Timestamp) -> Node {
        let (parent, job, mut path, data) = match &self.job {
            Some(j) => (Some(j.id), j.name, j.path.clone(), j.data.clone()),
            None => (None, "baseline-arm64", Vec::new(), json!({})),
        };
        let suite = job.split('-').next().unwrap_or(job);
        let case = match suite {
            "baseline" => [
                "login",
                "dmesg.emerg",
                "dmesg.alert",
                "dmesg.crit",
                "dmesg.err",
            ][self.rng.below(5) as usize]
                .to_string(),
            _ => format!("{job}.test_{}", self.rng.below(40)),
        };
        path.push(case.clone());
        let mut n = self.base(idx, Kind::Test, case, created);
        n.path = path;
        n.parent = parent;
        n.group = Some(job.into());
        n.data = Some(data);
        n
    }
}

impl Iterator for Generator {
    type Item = Node;

    fn next(&mut self) -> Option<Node> {
        self.next_node()
    }
}

/// A POST /node body for the create benchmark: a test under `checkout`, in its tree.
pub fn create_body(rng: &mut Rng, i: usize, checkout: &Node) -> Value {
    let job = *rng.pick(&JOBS);
    let kernel_revision = checkout
        .data
        .as_ref()
        .and_then(|d| d.get("kernel_revision"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "kind": if i.is_multiple_of(20) { "job" } else { "test" },
        "name": format!("{job}.test_{}", i % 40),
        "path": ["checkout", "kbuild-gcc-12-arm64", job, format!("test_{}", i % 40)],
        "group": job,
        "parent": checkout.id.to_string(),
        "state": "done",
        "result": *rng.pick(&["pass", "pass", "pass", "fail", "skip"]),
        "treeid": checkout.treeid,
        "submitter": "service:pipeline",
        "data": {
            "kernel_revision": kernel_revision,
            "arch": "arm64", "defconfig": "defconfig", "compiler": "gcc-12",
            "platform": *rng.pick(&PLATFORMS), "runtime": "lava-collabora",
            "job_id": format!("{}", 10_000_000 + i),
        },
        "artifacts": {"lava_log": format!("https://files.kernelci.org/bench/{i}/log.txt.gz")},
    })
}

/// The POST /node body of the checkout the create benchmark hangs its nodes under.
pub fn checkout_body(rng: &mut Rng) -> Value {
    let mut g = Generator::new(1, rng.next_u64(), time::now());
    let mut body = match g.next_node().and_then(|n| serde_json::to_value(n).ok()) {
        Some(v) => v,
        None => json!({"kind": "checkout", "name": "checkout", "path": ["checkout"]}),
    };
    if let Some(obj) = body.as_object_mut() {
        for key in ["id", "owner", "created", "updated", "timeout", "holdoff"] {
            obj.remove(key);
        }
        obj.insert("state".into(), json!("available"));
        obj.insert("result".into(), Value::Null);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_shape_and_validity() {
        let now = time::now();
        let nodes: Vec<Node> = Generator::new(1000, 7, now).collect();
        assert_eq!(nodes.len(), 1000);
        let checkouts = nodes.iter().filter(|n| n.kind == Kind::Checkout).count();
        assert_eq!(checkouts, 5);
        let ids: std::collections::HashSet<_> = nodes.iter().map(|n| n.id).collect();
        for n in &nodes {
            if let Some(p) = n.parent {
                assert!(ids.contains(&p), "parent of {} missing", n.name);
            }
            assert!(kernelci_model::data::validate_node_data(n).is_ok(), "{n:?}");
            let tree = n
                .data
                .as_ref()
                .and_then(|d| d["kernel_revision"]["tree"].as_str());
            assert!(tree.is_some(), "{n:?}");
        }
        assert!(nodes.iter().any(|n| n.name == "baseline-arm64"));
        let g = {
            let mut g = Generator::new(1000, 7, now);
            for _ in g.by_ref() {}
            g
        };
        assert!(!g.samples.treeids.is_empty());
        assert!(!g.samples.parents.is_empty());
        assert!(g.samples.recent.is_some());
    }
}
