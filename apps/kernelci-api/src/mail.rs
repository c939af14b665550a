//! Outgoing e-mail (invites, password resets) behind a trait. The default writes each
//! message to a directory and logs where; an SMTP mailer can implement the same trait.

use std::path::PathBuf;

use async_trait::async_trait;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Deliver one message.
    async fn send(&self, mail: &Mail) -> Result<(), String>;
}

/// Writes each message as a `.eml` file into a directory (the embedded default).
pub struct FileMailer {
    dir: PathBuf,
}

impl FileMailer {
    /// Messages go to `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileMailer { dir: dir.into() }
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| e.to_string())?;
        let name = format!("{}.eml", kernelci_model::ObjectId::generate());
        let path = self.dir.join(name);
        let text = format!(
            "To: {}\nSubject: {}\n\n{}\n",
            mail.to, mail.subject, mail.body
        );
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!("mail to {} written to {}", mail.to, path.display());
        Ok(())
    }
}

/// A mailer that refuses to send (the API reports `email_sent: false`).
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    async fn send(&self, _mail: &Mail) -> Result<(), String> {
        Err("no mailer configured".into())
    }
}
