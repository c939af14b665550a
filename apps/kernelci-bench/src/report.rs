//! The results of a run, as a text table and as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Creates, QueryRun};
use crate::listen::PubSub;
use crate::stats::{ms, round3};

/// Start-up of one server process.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// From spawn to the "listening on" line (ms).
    pub ms: f64,
    /// What the server itself reports ("started in N ms").
    pub reported_ms: Option<u64>,
    /// RSS shortly after start-up (KiB).
    pub idle_rss_kib: u64,
}

impl Startup {
    fn to_json(self) -> Value {
        json!({"startup_ms": round3(self.ms), "server_reported_ms": self.reported_ms,
               "idle_rss_kib": self.idle_rss_kib})
    }
}

/// A bulk load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Nodes inserted.
    pub nodes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Everything measured on one backend.
#[derive(Debug, Clone, Default)]
pub struct BackendResult {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// Start-up on a fresh database.
    pub fresh: Option<Startup>,
    /// Node creates.
    pub creates: Option<Creates>,
    /// Publish-to-listen.
    pub pubsub: Option<PubSub>,
    /// The bulk load.
    pub load: Option<Load>,
    /// Start-up on the loaded database.
    pub loaded: Option<Startup>,
    /// `/nodes` latency.
    pub nodes: Option<QueryRun>,
    /// `/nodes/fast` latency.
    pub fast: Option<QueryRun>,
    /// RSS after the queries (KiB).
    pub rss_after_queries_kib: Option<u64>,
    /// What failed.
    pub errors: Vec<String>,
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The table: one row per figure, one column per backend.
pub fn table(title: &str, results: &[BackendResult]) -> String {
    type Cell = fn(&BackendResult) -> Option<String>;
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |label: String, f: &dyn Fn(&BackendResult) -> Option<String>| {
        let cells = results
            .iter()
            .map(|r| f(r).unwrap_or_else(|| "-".into()))
            .collect();
        rows.push((label, cells));
    };
    let fixed: [(&str, Cell); 4] = [
        ("start-up, fresh DB (ms)", |r| r.fresh.map(|s| ms(s.ms))),
        ("  server-reported (ms)", |r| {
            r.fresh.and_then(|s| s.reported_ms).map(|v| v.to_string())
        }),
        ("idle RSS after start-up (MiB)", |r| {
            r.fresh.map(|s| mib(s.idle_rss_kib))
        }),
        ("node creates/s", |r| {
            r.creates.as_ref().map(|c| format!("{:.0}", c.per_sec()))
        }),
    ];
    for (label, f) in fixed {
        add(label.into(), &f);
    }
    let c = results.iter().find_map(|r| r.creates.as_ref());
    if let Some(c) = c {
        add(
            format!(
                "  create p50 / p99 (ms) [{} @ {}]",
                c.requests, c.concurrency
            ),
            &|r| r.creates.as_ref().map(|c| c.latency.pair()),
        );
    }
    add("  create errors".into(), &|r| {
        r.creates.as_ref().map(|c| c.errors.to_string())
    });
    let p = results.iter().find_map(|r| r.pubsub.as_ref());
    let shape = p.map_or(String::new(), |p| {
        format!(" [{} listeners x {} events]", p.listeners, p.events)
    });
    add(format!("publish->listen p50 / p99 (ms){shape}"), &|r| {
        r.pubsub.as_ref().map(|p| p.latency.pair())
    });
    let more: [(&str, Cell); 6] = [
        ("  publish request p50 / p99 (ms)", |r| {
            r.pubsub.as_ref().map(|p| p.publish.pair())
        }),
        ("  receipts / missing / duplicates", |r| {
            r.pubsub
                .as_ref()
                .map(|p| format!("{} / {} / {}", p.received, p.missing, p.duplicates))
        }),
        ("  wall / server CPU / bench CPU (s)", |r| {
            r.pubsub.as_ref().map(|p| {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    p.wall_s, p.server_cpu_s, p.bench_cpu_s
                )
            })
        }),
        ("RSS max during pub/sub (MiB)", |r| {
            r.pubsub.as_ref().map(|p| mib(p.rss_max_kib))
        }),
        ("RSS after pub/sub (MiB)", |r| {
            r.pubsub.as_ref().map(|p| mib(p.rss_after_kib))
        }),
        ("bulk load (s)", |r| {
            r.load.map(|l| format!("{:.1}", l.elapsed.as_secs_f64()))
        }),
    ];
    for (label, f) in more {
        add(label.into(), &f);
    }
    let nodes = results.iter().find_map(|r| r.load).map_or(0, |l| l.nodes);
    let more: [(&str, Cell); 4] = [
        ("  load rate (nodes/s)", |r| {
            r.load
                .map(|l| format!("{:.0}", l.nodes as f64 / l.elapsed.as_secs_f64().max(1e-9)))
        }),
        ("start-up, loaded DB (ms)", |r| r.loaded.map(|s| ms(s.ms))),
        ("idle RSS, loaded DB (MiB)", |r| {
            r.loaded.map(|s| mib(s.idle_rss_kib))
        }),
        ("RSS after queries (MiB)", |r| {
            r.rss_after_queries_kib.map(mib)
        }),
    ];
    for (label, f) in more {
        add(label.into(), &f);
    }
    for (i, endpoint) in ["/nodes", "/nodes/fast"].into_iter().enumerate() {
        let pick = move |r: &BackendResult| -> Option<QueryRun> {
            if i == 0 {
                r.nodes.clone()
            } else {
                r.fast.clone()
            }
        };
        add(format!("{endpoint} p50 / p99 (ms) [{nodes} nodes]"), &|r| {
            pick(r).map(|q| q.all.pair())
        });
        add("  queries timed".into(), &|r| {
            pick(r).map(|q| {
                let cut = if q.cut_short { " (budget)" } else { "" };
                format!("{}/{}{cut}", q.all.count, q.planned)
            })
        });
        let shapes: Vec<&'static str> = results
            .iter()
            .find_map(|r| r.nodes.as_ref())
            .map(|q| q.shapes.iter().map(|s| s.0).collect())
            .unwrap_or_default();
        for (k, shape) in shapes.into_iter().enumerate() {
            add(format!("  {shape} p50 / p99 (items)"), &|r| {
                pick(r).and_then(|q| {
                    q.shapes
                        .get(k)
                        .map(|(_, s, items)| format!("{} ({items:.0})", s.pair()))
                })
            });
        }
    }
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(10) + 2;
    let col = rows
        .iter()
        .flat_map(|(_, c)| c.iter().map(String::len))
        .chain(results.iter().map(|r| r.name.len()))
        .max()
        .unwrap_or(8)
        + 2;
    let mut out = format!("{title}\n{:width$}", "metric");
    for r in results {
        out.push_str(&format!("{:>col$}", r.name));
    }
    out.push('\n');
    out.push_str(&"-".repeat(width + col * results.len()));
    out.push('\n');
    for (label, cells) in rows {
        out.push_str(&format!("{label:width$}"));
        for c in cells {
            out.push_str(&format!("{c:>col$}"));
        }
        out.push('\n');
    }
    for r in results {
        for e in &r.errors {
            out.push_str(&format!("{} error: {e}\n", r.name));
        }
    }
    out
}

/// One backend as JSON.
pub fn backend_json(r: &BackendResult) -> Value {
    json!({
        "fresh": r.fresh.map(Startup::to_json),
        "creates": r.creates.as_ref().map(Creates::to_json),
        "pubsub": r.pubsub.as_ref().map(PubSub::to_json),
        "load": r.load.map(|l| json!({
            "nodes": l.nodes, "elapsed_s": round3(l.elapsed.as_secs_f64()),
            "nodes_per_sec": (l.nodes as f64 / l.elapsed.as_secs_f64().max(1e-9)).round(),
        })),
        "loaded": r.loaded.map(Startup::to_json),
        "nodes_query": r.nodes.as_ref().map(QueryRun::to_json),
        "nodes_fast_query": r.fast.as_ref().map(QueryRun::to_json),
        "rss_after_queries_kib": r.rss_after_queries_kib,
        "errors": r.errors,
    })
}
