//! The few git operations the trigger, tarball and patchset roles need, through the `git`
//! command (any URL git understands, including a local path).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use regex::Regex;
use serde_json::{Map, Value, json};
use tokio::process::Command;

/// A git command that failed.
#[derive(Debug, thiserror::Error)]
#[error("git {args}: {reason}")]
pub struct GitError {
    /// The arguments.
    pub args: String,
    /// stderr or the spawn error.
    pub reason: String,
}

/// Run `git <args>` in `dir` (or the current directory); trimmed stdout.
pub async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    // Never prompt for credentials: an unreachable or private tree is an error, not a hang.
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = cmd.output().await.map_err(|e| GitError {
        args: redact(&args.join(" ")),
        reason: format!("cannot run git: {e}"),
    })?;
    if !out.status.success() {
        return Err(GitError {
            args: redact(&args.join(" ")),
            reason: redact(String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `text` with the credentials of URLs (`https://user:token@host`) replaced by `***`: git
/// errors end up in node data and logs.
pub fn redact(text: &str) -> String {
    match Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@") {
        Ok(re) => re.replace_all(text, "${1}***@").into_owned(),
        Err(_) => text.to_string(),
    }
}

/// The commit at the head of `branch` of the repository at `url` (`git ls-remote`).
pub async fn remote_head(url: &str, branch: &str) -> Result<Option<String>, GitError> {
    let refname = format!("refs/heads/{branch}");
    let out = git(None, &["ls-remote", "--", url, &refname]).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, r)| *r == refname)
        .map(|(sha, _)| sha.to_string()))
}

/// `true` when `s` looks like a commit id (7 to 64 hex digits), as upstream checks before
/// passing it to git.
pub fn is_commit_id(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A bare mirror of one tree under the work directory, fetched on demand.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// Its directory.
    pub dir: PathBuf,
}

impl Mirror {
    /// The mirror of `tree` under `root` (created on first fetch).
    pub fn new(root: &Path, tree: &str) -> Mirror {
        let safe: String = tree
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Mirror {
            dir: root.join(format!("{safe}.git")),
        }
    }

    /// Fetch `branch` of `url` (and its tags) into `refs/remotes/origin/<branch>`.
    pub async fn fetch(&self, url: &str, branch: &str) -> Result<(), GitError> {
        if !self.dir.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| GitError {
                    args: "init".into(),
                    reason: format!("{}: {e}", self.dir.display()),
                })?;
            git(Some(&self.dir), &["init", "--bare", "-q"]).await?;
        }
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        git(
            Some(&self.dir),
            &["fetch", "-q", "--force", "--tags", "--", url, &refspec],
        )
        .await?;
        Ok(())
    }

    /// Resolve `commit` to a full commit id, if the mirror has it.
    pub async fn verify(&self, commit: &str) -> Result<String, GitError> {
        git(
            Some(&self.dir),
            &[
                "rev-parse",
                "--verify",
                "-q",
                &format!("{commit}^{{commit}}"),
            ],
        )
        .await
    }

    /// The revision metadata the tarball role adds to `data.kernel_revision`.
    pub async fn revision_info(
        &self,
        tree: &str,
        branch: &str,
        commit: &str,
    ) -> Result<Map<String, Value>, GitError> {
        let mut describe_args = vec!["describe", "--always", "--tags"];
        if tree == "soc" {
            describe_args.push("--match=v*");
        }
        describe_args.push(commit);
        let describe = git(Some(&self.dir), &describe_args)
            .await?
            .replace('/', "_");
        let version_describe = git(
            Some(&self.dir),
            &["describe", "--always", "--tags", "--match=v[1-9]*", commit],
        )
        .await?;
        let tags = git(Some(&self.dir), &["tag", "--points-at", commit]).await?;
        let message = git(Some(&self.dir), &["show", "-s", "--format=%B", commit]).await?;
        let tip = git(
            Some(&self.dir),
            &["rev-parse", &format!("refs/remotes/origin/{branch}")],
        )
        .await
        .map(|t| t == commit)
        .unwrap_or(false);
        let mut info = Map::new();
        info.insert("describe".into(), describe.into());
        if let Some(v) = parse_version(&version_describe) {
            info.insert("version".into(), v);
        }
        info.insert(
            "commit_tags".into(),
            tags.lines()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .into(),
        );
        info.insert("commit_message".into(), message.into());
        info.insert("tip_of_branch".into(), tip.into());
        Ok(info)
    }

    /// `git archive` of `commit` as `<out>` (`.tar.gz`), every path under `<prefix>/`.
    pub async fn archive(&self, commit: &str, prefix: &str, out: &Path) -> Result<(), GitError> {
        let out_s = out.display().to_string();
        git(
            Some(&self.dir),
            &[
                "archive",
                "--format=tar.gz",
                &format!("--prefix={prefix}/"),
                "-o",
                &out_s,
                commit,
            ],
        )
        .await?;
        Ok(())
    }
}

/// `v6.1-rc3-12-gabc` -> `{version: 6, patchlevel: 1, extra: "-rc3-12-gabc"}` (upstream's
/// `^v(\d+)\.(\d+)(\.(\d+))?(.*)?`); `None` without a version tag.
pub fn parse_version(describe: &str) -> Option<Value> {
    let re = Regex::new(r"^v(\d+)\.(\d+)(\.(\d+))?(.*)?$").ok()?;
    let c = re.captures(describe)?;
    let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<i64>().ok());
    let mut v = json!({"version": num(1)?, "patchlevel": num(2)?});
    if let Some(s) = num(4) {
        v["sublevel"] = s.into();
    }
    if let Some(extra) = c.get(5).map(|m| m.as_str()).filter(|s| !s.is_empty()) {
        v["extra"] = extra.into();
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_upstream() {
        assert_eq!(
            parse_version("v6.1.192-3-gabcdef").unwrap(),
            json!({"version": 6, "patchlevel": 1, "sublevel": 192, "extra": "-3-gabcdef"})
        );
        assert_eq!(
            parse_version("v6.12").unwrap(),
            json!({"version": 6, "patchlevel": 12})
        );
        assert!(parse_version("abcdef0").is_none());
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("fatal: unable to access 'https://bot:s3cr3t@git.example.org/linux.git/'"),
            "fatal: unable to access 'https://***@git.example.org/linux.git/'"
        );
        assert_eq!(redact("no url here"), "no url here");
    }

    #[test]
    fn commit_ids() {
        assert!(is_commit_id("abcdef0"));
        assert!(!is_commit_id("abc"));
        assert!(!is_commit_id("HEAD~1; rm"));
    }
}
