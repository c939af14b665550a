//! Delivery: e-mail through SMTP (lettre, rustls) or into a directory as `.eml` files, and
//! webhooks (reqwest, 10 s timeout).

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::NotifyError;

/// How long a webhook may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where e-mail goes.
#[derive(Clone)]
pub enum MailSink {
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// A directory: each message written as `<time>-<random>.eml`.
    Dir(PathBuf),
}

impl std::fmt::Debug for MailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailSink::Smtp(_) => f.write_str("MailSink::Smtp"),
            MailSink::Dir(d) => write!(f, "MailSink::Dir({})", d.display()),
        }
    }
}

impl MailSink {
    /// An SMTP sink from `smtp://user:pass@host:port` (add `?tls=required` for STARTTLS)
    /// or `smtps://...` (TLS from the start).
    pub fn smtp(url: &str) -> Result<MailSink, NotifyError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| NotifyError::Config(format!("--smtp-url: {e}")))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        Ok(MailSink::Smtp(transport))
    }

    /// Sends a plain-text message.
    pub async fn send(
        &self,
        from: &Mailbox,
        to: &str,
        subject: &str,
        body: String,
    ) -> Result<(), NotifyError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| NotifyError::Mail(format!("recipient {to:?}: {e}")))?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| NotifyError::Mail(e.to_string()))?;
        match self {
            MailSink::Smtp(transport) => {
                transport
                    .send(message)
                    .await
                    .map_err(|e| NotifyError::Mail(e.to_string()))?;
            }
            MailSink::Dir(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                let mut random = [0u8; 4];
                getrandom::fill(&mut random).map_err(|e| NotifyError::Mail(e.to_string()))?;
                let name = format!(
                    "{}-{:08x}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f"),
                    u32::from_be_bytes(random)
                );
                let temp = dir.join(format!(".{name}.temp"));
                tokio::fs::write(&temp, message.formatted()).await?;
                tokio::fs::rename(&temp, dir.join(&name)).await?;
                tracing::info!("notify: mail to {} written to {}", to_text(&message), name);
            }
        }
        Ok(())
    }
}

fn to_text(message: &Message) -> String {
    message
        .envelope()
        .to()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// POSTs `body` as JSON to `url`; a reply other than 2xx is an error.
pub async fn webhook(client: &reqwest::Client, url: &str, body: &Value) -> Result<(), NotifyError> {
    let reply = client
        .post(url)
        .timeout(WEBHOOK_TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| NotifyError::Webhook(format!("{url}: {e}")))?;
    let status = reply.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = reply.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(NotifyError::Webhook(format!(
            "{url}: HTTP {status}: {text}"
        )))
    }
}
