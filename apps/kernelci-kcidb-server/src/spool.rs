//! The spool directory, upstream's contract (specs/kcidb.md §1.5):
//!
//! `submission-<id>.json.temp` (being received) → `submission-<id>.json` (ready) →
//! `archive/submission-<id>.json` (its batch committed) or `failed/submission-<id>.json`
//! with `failed/submission-<id>.json.reason` beside it (could not be loaded).
//!
//! Every move is a `rename` on one filesystem, after an `fsync` of the file; the directory
//! is synced after the rename so the new name survives a crash.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The sub-directory of files whose batch committed.
pub const ARCHIVE: &str = "archive";
/// The sub-directory of files that could not be loaded.
pub const FAILED: &str = "failed";

/// Where a submission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Still being received.
    InProgress,
    /// Waiting for the ingester.
    Ready,
    /// Loaded into the database (its batch committed).
    Processed,
    /// Could not be loaded (reason beside it).
    Failed,
    /// Unknown id.
    NotFound,
}

impl FileState {
    /// The `/status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::InProgress => "inprogress",
            FileState::Ready => "ready",
            FileState::Processed => "processed",
            FileState::Failed => "failed",
            FileState::NotFound => "notfound",
        }
    }

    /// The `/status` message (upstream's wording).
    pub fn message(self) -> &'static str {
        match self {
            FileState::InProgress => "File still in progress",
            FileState::Ready => "File waiting for processing",
            FileState::Processed => "File archived",
            FileState::Failed => "File failed to pass validation",
            FileState::NotFound => "File not found",
        }
    }
}

/// A spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// A new submission id: 32 characters of `[A-Za-z0-9]`.
pub fn new_id() -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    // 256 % 62 bias is irrelevant for an identifier.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// Whether `id` may name a submission (ASCII alphanumeric, 1 to 64 characters).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `fsync` a directory (so a rename into it is durable).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

impl Spool {
    /// Opens (creating it and its `archive/` and `failed/`) a spool directory.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Spool> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join(ARCHIVE))?;
        std::fs::create_dir_all(dir.join(FAILED))?;
        Ok(Spool { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/submission-<id>.json.temp`.
    pub fn temp_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("submission-{id}.json.temp"))
    }

    /// `<dir>/submission-<id>.json`.
    pub fn ready_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("submission-{id}.json"))
    }

    /// Where a ready file goes after its batch committed.
    pub fn archive_path(&self, name: &str) -> PathBuf {
        self.dir.join(ARCHIVE).join(name)
    }

    /// Where a ready file goes when it cannot be loaded.
    pub fn failed_path(&self, name: &str) -> PathBuf {
        self.dir.join(FAILED).join(name)
    }

    /// The state of submission `id` (probed in upstream's order).
    pub fn state(&self, id: &str) -> FileState {
        let name = format!("submission-{id}.json");
        if self.temp_path(id).exists() {
            FileState::InProgress
        } else if self.ready_path(id).exists() {
            FileState::Ready
        } else if self.archive_path(&name).exists() {
            FileState::Processed
        } else if self.failed_path(&name).exists() {
            FileState::Failed
        } else {
            FileState::NotFound
        }
    }

    /// The reason a failed submission failed, if recorded.
    pub fn failure_reason(&self, id: &str) -> Option<String> {
        std::fs::read_to_string(self.failed_path(&format!("submission-{id}.json.reason"))).ok()
    }

    /// The ready files (`*.json` in the top directory), oldest first (by modification time,
    /// then name).
    pub fn ready_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.ends_with(".json") {
                continue;
            }
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            files.push((modified, name.to_string(), entry.path()));
        }
        files.sort();
        Ok(files.into_iter().map(|(_, _, p)| p).collect())
    }

    /// The number of ready files (the queue depth).
    pub fn queue_depth(&self) -> usize {
        self.ready_files().map(|f| f.len()).unwrap_or(0)
    }

    /// Moves a ready file into `archive/` (durably).
    pub fn archive(&self, path: &Path) -> std::io::Result<()> {
        let name = file_name(path)?;
        std::fs::rename(path, self.archive_path(&name))?;
        sync_dir(&self.dir.join(ARCHIVE))
    }

    /// Moves a ready file into `failed/`, with `<name>.reason` beside it.
    pub fn fail(&self, path: &Path, reason: &str) -> std::io::Result<()> {
        let name = file_name(path)?;
        let reason_path = self.failed_path(&format!("{name}.reason"));
        let mut f = std::fs::File::create(&reason_path)?;
        f.write_all(reason.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(path, self.failed_path(&name))?;
        sync_dir(&self.dir.join(FAILED))
    }

    /// Retention: the files in `archive/` and `failed/` (a failed file's `.reason` too) last
    /// modified before `before`, oldest first. Files that vanish meanwhile are skipped.
    pub fn expired(&self, before: std::time::SystemTime) -> std::io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for sub in [ARCHIVE, FAILED] {
            let entries = match std::fs::read_dir(self.dir.join(sub)) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if !meta.is_file() {
                    continue;
                }
                let modified = meta.modified()?;
                if modified < before {
                    files.push((modified, entry.path()));
                }
            }
        }
        files.sort();
        Ok(files.into_iter().map(|(_, p)| p).collect())
    }

    /// Removes files listed by [`Spool::expired`]; returns how many were removed (one
    /// already gone is not counted). A path outside `archive/` and `failed/` is refused.
    pub fn remove_expired(&self, paths: &[PathBuf]) -> std::io::Result<u64> {
        let (archive, failed) = (self.dir.join(ARCHIVE), self.dir.join(FAILED));
        let mut removed = 0;
        for path in paths {
            if path.parent() != Some(archive.as_path()) && path.parent() != Some(failed.as_path()) {
                return Err(std::io::Error::other(format!(
                    "not an archived or failed spool file: {}",
                    path.display()
                )));
            }
            match std::fs::remove_file(path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

fn file_name(path: &Path) -> std::io::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| std::io::Error::other(format!("not a file name: {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).expect("open");
        let id = new_id().expect("id");
        assert!(valid_id(&id) && id.len() == 32);
        assert_eq!(spool.state(&id), FileState::NotFound);
        std::fs::write(spool.temp_path(&id), b"{}").expect("write");
        assert_eq!(spool.state(&id), FileState::InProgress);
        std::fs::rename(spool.temp_path(&id), spool.ready_path(&id)).expect("rename");
        assert_eq!(spool.state(&id), FileState::Ready);
        assert_eq!(spool.ready_files().expect("list").len(), 1);
        spool.fail(&spool.ready_path(&id), "bad").expect("fail");
        assert_eq!(spool.state(&id), FileState::Failed);
        assert_eq!(spool.failure_reason(&id).as_deref(), Some("bad\n"));
        assert_eq!(spool.queue_depth(), 0);
        assert!(!valid_id("a-b") && !valid_id(""));
    }

    #[test]
    fn expired_files_by_mtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).expect("open");
        let now = std::time::SystemTime::now();
        let day = std::time::Duration::from_secs(86_400);
        let mut old = Vec::new();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            std::fs::write(spool.ready_path(id), b"{}").expect("write");
            let path = spool.ready_path(id);
            if i == 2 {
                spool.fail(&path, "bad").expect("fail");
            } else {
                spool.archive(&path).expect("archive");
            }
        }
        // a: 40 days old, c (failed, with its reason): 31 days old, b: new.
        for (name, age) in [
            (spool.archive_path("submission-a.json"), 40),
            (spool.failed_path("submission-c.json"), 31),
            (spool.failed_path("submission-c.json.reason"), 31),
        ] {
            let f = std::fs::File::options()
                .write(true)
                .open(&name)
                .expect("open");
            f.set_modified(now - day * age).expect("mtime");
            old.push(name);
        }
        // A ready file is never retention's business, however old.
        std::fs::write(spool.ready_path("d"), b"{}").expect("write");
        let f = std::fs::File::options()
            .write(true)
            .open(spool.ready_path("d"))
            .expect("open");
        f.set_modified(now - day * 90).expect("mtime");
        let expired = spool.expired(now - day * 30).expect("list");
        assert_eq!(expired.len(), 3);
        assert_eq!(expired[0], old[0], "oldest first");
        assert_eq!(spool.remove_expired(&expired).expect("remove"), 3);
        assert_eq!(spool.remove_expired(&expired).expect("again"), 0);
        assert_eq!(spool.state("a"), FileState::NotFound);
        assert_eq!(spool.state("b"), FileState::Processed);
        assert_eq!(spool.state("c"), FileState::NotFound);
        assert_eq!(spool.state("d"), FileState::Ready);
        assert!(spool.remove_expired(&[spool.ready_path("d")]).is_err());
    }
}
