//! `kernelci admin ...`: create users and print tokens, against the same database the
//! server uses; back up and restore that database; import an upstream deployment.

use crate::backup;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kernelci_model::{ObjectId, User};
use kernelci_store::{Store, StoreError};

use crate::options::StoreOptions;

/// Admin subcommands.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print a login token for a user.
    Token {
        /// Username.
        name: String,
        /// Token lifetime in seconds (default: upstream's 10 years).
        #[arg(long, default_value_t = 315_360_000)]
        ttl: i64,
    },
    /// Back up the databases into DEST (works while the server runs).
    ///
    /// SQLite (the default): a consistent copy of DATA_DIR/kernelci.db and DATA_DIR/kcidb.db
    /// made with `VACUUM INTO`. PostgreSQL (--database-url): `pg_dump --format=custom` into
    /// DEST/kernelci.pgdump. DEST/backup.json records per-table row counts.
    ///
    /// Only databases are copied: artifacts/, kcidb-spool/, admin.token, kcidb.secret and
    /// mail/ are files in the data directory; copy them separately (e.g. rsync -a).
    Backup(backup::BackupArgs),
    /// Restore a backup made by `admin backup` into empty databases.
    ///
    /// SQLite: copies the database files into --data-dir, refusing if any exists (stop the
    /// server and move the old files away first). PostgreSQL: `pg_restore` into
    /// --database-url, refusing if it has any table in schema public. Row counts are then
    /// checked against backup.json. Files (artifacts, spool, tokens) are not restored.
    Restore(backup::RestoreArgs),
    /// Run one retention round now, with the same --retain-* settings as the server:
    /// nodes, events, telemetry, KCIDB spool files and regression results older than their
    /// age, in batches. Prints what was removed per kind.
    Purge(crate::purge::PurgeArgs),
    /// Import nodes, users (with their password hashes) and groups from `mongoexport`
    /// files of an upstream Maestro database, ids kept. Idempotent and resumable.
    ImportMaestro(crate::import::maestro::ImportMaestroArgs),
    /// Import an upstream KCIDB PostgreSQL database (--from-postgres) or KCIDB JSON files
    /// into our KCIDB database, then compare counts (exit 1 on a mismatch). Idempotent.
    ImportKcidb(crate::import::kcidb::ImportKcidbArgs),
}

/// `admin user ...`.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a verified user.
    Add {
        /// Username.
        name: String,
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Password (default: a random one; use tokens from `admin token`).
        #[arg(long, env = "KERNELCI_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run an admin command.
pub async fn run(opts: StoreOptions, cmd: AdminCommand) -> Result<()> {
    // Backup and restore work on the files/database as they are: opening the store would
    // create (and migrate) the very databases a restore must find absent.
    match &cmd {
        AdminCommand::Backup(args) => return backup::backup(&opts, args).await,
        AdminCommand::Restore(args) => return backup::restore(&opts, args).await,
        AdminCommand::Purge(args) => return crate::purge::run(&opts, args).await,
        _ => {}
    }
    let store = opts.open().await?;
    match cmd {
        AdminCommand::User {
            command:
                UserCommand::Add {
                    name,
                    email,
                    admin,
                    password,
                    json,
                },
        } => {
            let user = create_user(&*store, &name, &email, admin, password.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&user.read())?);
            } else {
                println!(
                    "created user {} ({}){}",
                    user.username,
                    user.id,
                    if admin { " as admin" } else { "" }
                );
            }
            Ok(())
        }
        AdminCommand::Token { name, ttl } => {
            let keys = opts.keys(&*store).await?;
            let Some(user) = store.get_user_by_username(&name).await? else {
                bail!("no user named {name:?}");
            };
            println!("{}", keys.issue_access(&user.id, Some(ttl)));
            Ok(())
        }
        AdminCommand::ImportMaestro(args) => crate::import::maestro::run(&*store, args).await,
        AdminCommand::ImportKcidb(args) => crate::import::kcidb::run(&opts, &*store, args).await,
        AdminCommand::Backup(_) | AdminCommand::Restore(_) | AdminCommand::Purge(_) => Ok(()),
    }
}

/// Create a verified user with an argon2id password hash.
pub async fn create_user(
    store: &dyn Store,
    name: &str,
    email: &str,
    admin: bool,
    password: Option<&str>,
) -> Result<User> {
    if name.trim().is_empty() {
        bail!("the username must not be empty");
    }
    if email.split('@').count() != 2 || email.starts_with('@') || email.ends_with('@') {
        bail!("{email:?} is not an e-mail address");
    }
    let password = password
        .map(str::to_string)
        .unwrap_or_else(kernelci_api::auth::random_password);
    let hashed = tokio::task::spawn_blocking(move || kernelci_api::auth::hash_password(&password))
        .await
        .context("hashing the password")?
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    let user = User {
        id: ObjectId::generate(),
        email: email.to_string(),
        hashed_password: hashed,
        is_active: true,
        is_superuser: admin,
        is_verified: true,
        username: name.to_string(),
        groups: Vec::new(),
    };
    match store.insert_user(&user).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict(field)) => bail!("a user with this {field} already exists"),
        Err(e) => Err(e.into()),
    }
}

/// Whether any administrator exists.
pub async fn has_admin(store: &dyn Store) -> Result<bool> {
    Ok(store.list_users().await?.iter().any(|u| u.is_superuser))
}
