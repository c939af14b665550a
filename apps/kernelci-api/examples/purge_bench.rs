//! Retention benchmark: events purged per second on a fresh SQLite store (or the database
//! given as the first argument), in batches, while a writer keeps publishing; prints the
//! purge rate and the writer's worst latency during the purge.
//!
//! `cargo run --release -p kernelci-api --example purge_bench -- [URL] [EVENTS] [BATCH]`
//! (defaults: a temporary SQLite file, 100000 events, batches of 1000, 50 ms pauses).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelci_api::retention::{self, Kind, Retention};
use kernelci_model::{CloudEvent, time};
use kernelci_store::{EventDraft, Store};

fn draft(i: u64) -> EventDraft {
    EventDraft {
        channel: "bench".into(),
        owner: None,
        cloud_event: CloudEvent {
            id: format!("bench-{i}"),
            source: "bench".into(),
            event_type: "bench".into(),
            time: time::now(),
            data: serde_json::json!({ "i": i }),
            attributes: serde_json::Map::new(),
            sequence_id: None,
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let temp = std::env::temp_dir().join(format!("kernelci-purge-bench-{}", std::process::id()));
    let url = match args.next().filter(|a| a != "-") {
        Some(url) => url,
        None => {
            std::fs::create_dir_all(&temp)?;
            format!("sqlite://{}", temp.join("bench.db").display())
        }
    };
    let events: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let batch: u32 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let store: Arc<dyn Store> = kernelci_store::open(&url).await?;

    let started = Instant::now();
    for i in 0..events {
        store.publish(&draft(i)).await?;
    }
    eprintln!(
        "{events} events published in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A subscriber from now on: the writer's events come after its cursor, so they stay.
    store
        .subscribe(&kernelci_store::SubscribeRequest {
            channel: "bench".into(),
            username: "bench".into(),
            promiscuous: true,
            subscriber_id: None,
            now: time::now(),
        })
        .await?;
    // Every event published so far is "old" for a clock a week and a day ahead.
    let later = time::now() + chrono::TimeDelta::days(8);
    let r = Retention {
        batch,
        pause: Duration::from_millis(50),
        ..Retention::default()
    };
    let writer_store = store.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer_stop = stop.clone();
    let writer = tokio::spawn(async move {
        let (mut worst, mut n) = (Duration::ZERO, 0u64);
        while !writer_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            if writer_store.publish(&draft(events + n)).await.is_err() {
                break;
            }
            worst = worst.max(t.elapsed());
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (worst, n)
    });
    let t = Instant::now();
    let done = retention::purge(&*store, Kind::Events, &r, later, false).await?;
    let elapsed = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, writes) = writer.await?;
    let paused = r.pause * u32::try_from(done.batches).unwrap_or(u32::MAX);
    let working = elapsed.saturating_sub(paused);
    println!(
        "{} backend: {} events purged in {} batches of {batch}: {:.2} s wall ({:.0} rows/s), \
         {:.2} s without the pauses ({:.0} rows/s); a concurrent writer's worst publish: \
         {:.1} ms over {writes} publishes",
        store.backend(),
        done.removed,
        done.batches,
        elapsed.as_secs_f64(),
        done.removed as f64 / elapsed.as_secs_f64(),
        working.as_secs_f64(),
        done.removed as f64 / working.as_secs_f64().max(1e-9),
        worst.as_secs_f64() * 1000.0,
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&temp);
    Ok(())
}
