//! Notifications: a report per checkout, once its results settle, to every subscription of
//! its tree and branch, by e-mail (SMTP, or `.eml` files in a directory) or webhook
//! (generic JSON or Discord).
//!
//! * **Subscriptions** (`notify_subscriptions`, managed through [`api`]): a tree name and
//!   a branch (each `*` for any), an optional origin, and an e-mail address or a webhook
//!   URL with its format. Only checkouts received after the subscription was made are
//!   reported (no flood of history).
//! * **Settling**: a checkout is reported when none of its objects (the checkout, its
//!   builds, their tests, incidents on them) was written for [`NotifyConfig::settle`]
//!   (`_timestamp` columns), the regression tracker has seen them all (its cursor is past
//!   them; [`NotifyConfig::after_tracker`]), and it was received within
//!   [`NotifyConfig::lookback`].
//! * **Once**: each (subscription, checkout) delivered is recorded in `notify_sent`, so a
//!   report is sent once, across restarts too. A failed delivery is not recorded and is
//!   tried again next round.
//! * **Content** ([`report`]): counts per status, new, still failing and fixed regressions
//!   of this checkout (the tracker's, with the bisection culprit), issues first seen in
//!   it, results with status MISS, dashboard links (with a base URL).

pub mod api;
pub mod report;
pub mod send;
pub mod store;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use kernelci_kcidb::db::KcidbDb;
use lettre::message::Mailbox;
use serde::Serialize;

pub use report::Report;
pub use send::MailSink;
pub use store::{Subscription, Target, WebhookFormat};

/// A notifier error.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The database.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A read of the KCIDB data.
    #[error("{0}")]
    Query(#[from] kernelci_kcidb::query::QueryError),
    /// A setting that cannot be used.
    #[error("{0}")]
    Config(String),
    /// An e-mail that could not be built or sent.
    #[error("mail: {0}")]
    Mail(String),
    /// A webhook that failed.
    #[error("webhook {0}")]
    Webhook(String),
    /// Writing a mail file.
    #[error("mail file: {0}")]
    Io(#[from] std::io::Error),
}

/// How the notifier runs.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// How long a checkout's objects must stay unchanged before it is reported.
    pub settle: Duration,
    /// Checkouts received longer ago than this are never reported.
    pub lookback: Duration,
    /// The dashboard's base URL for links (no links without it).
    pub base_url: Option<String>,
    /// Where e-mail goes.
    pub mail: MailSink,
    /// The sender of e-mail.
    pub from: Mailbox,
    /// Report a checkout only once the regression tracker has seen all of its results
    /// (its cursor is past them), so its regressions are in the report. Off when no
    /// tracker runs.
    pub after_tracker: bool,
}

/// The default sender.
pub const DEFAULT_FROM: &str = "KernelCI <kernelci@localhost>";

impl NotifyConfig {
    /// Defaults (interval 60 s, settle 600 s, lookback 14 days, no links, after the
    /// tracker) with e-mail
    /// into `mail` from `from`.
    pub fn new(mail: MailSink, from: Mailbox) -> NotifyConfig {
        NotifyConfig {
            interval: Duration::from_secs(60),
            settle: Duration::from_secs(600),
            lookback: Duration::from_secs(14 * 86_400),
            base_url: None,
            mail,
            from,
            after_tracker: true,
        }
    }
}

/// A sender address (`Name <user@host>` or `user@host`), or an error naming the flag.
pub fn parse_from(from: &str) -> Result<Mailbox, NotifyError> {
    from.parse()
        .map_err(|e| NotifyError::Config(format!("--notify-from {from:?}: {e}")))
}

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Round {
    /// Settled checkouts with something to send.
    pub checkouts: usize,
    /// Reports delivered (and recorded).
    pub sent: usize,
    /// Deliveries that failed (tried again next round).
    pub failed: usize,
}

/// The notifier over a KCIDB database.
#[derive(Debug, Clone)]
pub struct Notifier {
    db: KcidbDb,
    config: NotifyConfig,
    http: reqwest::Client,
}

impl Notifier {
    /// A notifier; creates its tables if missing.
    pub async fn new(db: KcidbDb, config: NotifyConfig) -> Result<Notifier, NotifyError> {
        store::migrate(&db).await?;
        let http = reqwest::Client::builder()
            .timeout(send::WEBHOOK_TIMEOUT)
            .user_agent(concat!("kernelci-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Config(format!("HTTP client: {e}")))?;
        Ok(Notifier { db, config, http })
    }

    /// One round: reports every settled checkout not yet sent to a matching subscription.
    pub async fn round(&self) -> Result<Round, NotifyError> {
        let mut round = Round::default();
        let subs = store::subscriptions(&self.db).await?;
        let Some(oldest) = subs.iter().map(|s| s.created.as_str()).min() else {
            return Ok(round);
        };
        let now = Utc::now();
        let mut cutoff = now - chrono::Duration::from_std(self.config.settle).unwrap_or_default();
        if self.config.after_tracker {
            match store::tracker_cursor(&self.db).await? {
                Some(cursor) => cutoff = cutoff.min(cursor),
                None => return Ok(round),
            }
        }
        let lookback = now - chrono::Duration::from_std(self.config.lookback).unwrap_or_default();
        let since = chrono::DateTime::parse_from_rfc3339(oldest)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(lookback)
            .max(lookback);
        let candidates = store::candidates(&self.db, &since, &cutoff).await?;
        if candidates.is_empty() {
            return Ok(round);
        }
        let busy = store::busy(&self.db, &cutoff).await?;
        let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
        let sent = store::sent(&self.db, &ids).await?;
        let base = self
            .config
            .base_url
            .as_deref()
            .map(|b| b.trim_end_matches('/'));
        let mut reports: HashMap<String, Option<Report>> = HashMap::new();
        for checkout in candidates.iter().filter(|c| !busy.contains(&c.id)) {
            let due: Vec<&Subscription> = subs
                .iter()
                .filter(|s| s.matches(checkout))
                .filter(|s| !sent.contains(&(s.id.clone(), checkout.id.clone())))
                .collect();
            if due.is_empty() {
                continue;
            }
            round.checkouts += 1;
            if !reports.contains_key(&checkout.id) {
                let report = report::gather(&self.db, &checkout.id, base).await?;
                reports.insert(checkout.id.clone(), report);
            }
            let Some(Some(report)) = reports.get(&checkout.id) else {
                continue;
            };
            for sub in due {
                match self.deliver(sub, report).await {
                    Ok(()) => {
                        store::mark_sent(&self.db, &sub.id, &checkout.id).await?;
                        round.sent += 1;
                    }
                    Err(e) => {
                        round.failed += 1;
                        tracing::warn!(
                            "notify: report of {} to subscription {} failed (retried next \
                             round): {e}",
                            checkout.id,
                            sub.id
                        );
                    }
                }
            }
        }
        Ok(round)
    }

    /// Sends one report to one subscription.
    pub async fn deliver(&self, sub: &Subscription, report: &Report) -> Result<(), NotifyError> {
        match &sub.target {
            Target::Email { address } => {
                let mut body = report.text();
                body.push_str(&format!(
                    "\n-- \nkernelci-rs notification for subscription {} (tree {}, branch {}).\n",
                    sub.id, sub.tree_name, sub.branch
                ));
                self.config
                    .mail
                    .send(&self.config.from, address, &report.subject(), body)
                    .await
            }
            Target::Webhook { url, format } => {
                let body = match format {
                    WebhookFormat::Json => report.json(),
                    WebhookFormat::Discord => report.discord(),
                };
                send::webhook(&self.http, url, &body).await
            }
        }
    }

    /// Runs a round every [`NotifyConfig::interval`] (the first after one interval).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(self.config.interval).await;
                match self.round().await {
                    Ok(r) if r.sent + r.failed > 0 => tracing::info!(
                        "notify: {} report(s) sent, {} failed, {} checkout(s)",
                        r.sent,
                        r.failed,
                        r.checkouts
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!("notify: round failed: {e}"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
