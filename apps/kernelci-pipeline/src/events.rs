//! A durable event subscription: subscribe with a `subscriber_id` (the API keeps the cursor,
//! so a restarted role resumes where it stopped and misses nothing), listen in a loop, and
//! resubscribe after errors with a bounded back-off instead of exiting.

use std::time::Duration;

use serde_json::Value;

use crate::client::{ApiClient, ApiError};

/// One durable subscription.
pub struct EventStream {
    api: ApiClient,
    channel: String,
    subscriber_id: String,
    sub: Option<i64>,
}

impl EventStream {
    /// A stream on `channel` (promiscuous: every owner's events) named `subscriber_id`.
    pub fn new(api: ApiClient, channel: &str, subscriber_id: &str) -> EventStream {
        EventStream {
            api,
            channel: channel.to_string(),
            subscriber_id: subscriber_id.to_string(),
            sub: None,
        }
    }

    /// A stream already subscribed (retrying until the API answers), so that events
    /// published from now on are kept for it even before it first listens.
    pub async fn opened(api: ApiClient, channel: &str, subscriber_id: &str) -> EventStream {
        let mut s = EventStream::new(api, channel, subscriber_id);
        let mut failures = 0;
        while let Err(e) = s.open().await {
            failures += 1;
            tracing::warn!(channel = %s.channel, "subscribe failed: {e}");
            tokio::time::sleep(backoff(failures)).await;
        }
        s
    }

    /// Subscribe now (so that events published from now on are kept for us).
    pub async fn open(&mut self) -> Result<(), ApiError> {
        let id = self
            .api
            .subscribe(&self.channel, &self.subscriber_id, true)
            .await?;
        self.sub = Some(id);
        Ok(())
    }

    /// The next event payload (`None` on a keep-alive). Errors are retried here: the call
    /// returns only with an event or a keep-alive.
    pub async fn next(&mut self) -> Option<Value> {
        let mut failures = 0u32;
        loop {
            let sub = match self.sub {
                Some(s) => s,
                None => match self.open().await {
                    Ok(()) => continue,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(channel = %self.channel, "subscribe failed: {e}");
                        tokio::time::sleep(backoff(failures)).await;
                        continue;
                    }
                },
            };
            match self.api.listen(sub).await {
                Ok(ev) => return ev,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(channel = %self.channel, "listen failed: {e}");
                    // The subscription may be gone (server restart with a plain one, or
                    // expiry): the durable subscriber id brings the cursor back.
                    self.sub = None;
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(6)))
}
