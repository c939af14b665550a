//! Options shared by the subcommands: where the data lives and how tokens are signed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use kernelci_api::JwtKeys;
use kernelci_store::Store;

/// Where the data lives.
#[derive(Args, Clone, Debug)]
pub struct StoreOptions {
    /// Data directory (SQLite database, admin token, outgoing mail).
    #[arg(
        long,
        env = "KERNELCI_DATA_DIR",
        default_value = "./kernelci-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Use this database instead of SQLite in the data directory (postgres://user@host/db).
    #[arg(long, env = "KERNELCI_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// JWT signing secret (default: generated once and kept in the database).
    #[arg(
        long,
        env = "KERNELCI_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secret_key: Option<String>,
    /// A second secret accepted when verifying tokens (upstream's UNIFIED_SECRET).
    #[arg(
        long,
        env = "KERNELCI_UNIFIED_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub unified_secret: Option<String>,
}

impl StoreOptions {
    /// The database URL in effect.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("kernelci.db").display()),
        }
    }

    /// Create the data directory and open (and migrate) the database.
    pub async fn open(&self) -> Result<Arc<dyn Store>> {
        ensure_dir(&self.data_dir)?;
        let url = self.url();
        kernelci_store::open(&url)
            .await
            .map_err(anyhow::Error::from)
    }

    /// The token keys: the configured secret, or the one kept in the database.
    pub async fn keys(&self, store: &dyn Store) -> Result<JwtKeys> {
        let secret = match self.secret_key.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => s.to_string(),
            None => {
                let candidate = kernelci_api::auth::random_password();
                store
                    .meta_init("secret_key", &candidate)
                    .await
                    .context("reading the signing secret")?
            }
        };
        Ok(JwtKeys::new(&secret, self.unified_secret.as_deref()))
    }
}

/// Create a directory (and parents), with a clear message on failure.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}
