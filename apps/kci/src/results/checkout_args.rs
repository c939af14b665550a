//! Which checkout a command is about: `--giturl`, `--branch`, `--commit` (a tag or short
//! hash is resolved with git), `--latest` (the branch head on the dashboard) or
//! `--git-folder` (the URL of `origin`, the current branch and HEAD of a local repository,
//! as kci-dev does; the current directory when nothing is given).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::client::{Dash, Fail, enc, q};

/// The options common to the checkout commands (kci-dev's `common_options`).
#[derive(Debug, Clone, clap::Args)]
pub struct CheckoutArgs {
    /// KCIDB origin.
    #[arg(long, default_value = "maestro")]
    pub origin: String,
    /// Git URL of the kernel tree (default: the `origin` remote of the git folder).
    #[arg(long)]
    pub giturl: Option<String>,
    /// Branch (default: the git folder's current branch).
    #[arg(long)]
    pub branch: Option<String>,
    /// Path of a git repository to take the URL, branch and commit from.
    #[arg(long)]
    pub git_folder: Option<PathBuf>,
    /// Commit or tag (default: the git folder's HEAD).
    #[arg(long)]
    pub commit: Option<String>,
    /// The branch's latest checkout on the dashboard.
    #[arg(long)]
    pub latest: bool,
    /// Only this architecture.
    #[arg(long)]
    pub arch: Option<String>,
    /// Tree name (a filter; with --latest, the tree whose branch head to use).
    #[arg(long)]
    pub tree: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// A resolved checkout.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// KCIDB origin.
    pub origin: String,
    /// Repository URL.
    pub giturl: String,
    /// Branch.
    pub branch: String,
    /// Full commit hash (or what the user gave when it could not be resolved).
    pub commit: String,
}

impl Checkout {
    /// `tree/{commit}/{what}` with `origin`, `git_url`, `git_branch`.
    pub fn path(&self, what: &str) -> String {
        format!("tree/{}/{what}", enc(&self.commit))
    }

    /// The query identifying the checkout.
    pub fn query(&self) -> Vec<(String, String)> {
        q(&[
            ("origin", &self.origin),
            ("git_url", &self.giturl),
            ("git_branch", &self.branch),
        ])
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// kci-dev's `repository_url_cleaner`: https, no credentials (SCP-style `host:path` too).
pub fn clean_url(url: &str) -> String {
    let url = if url.contains("://") {
        url.to_string()
    } else {
        match url.split_once(':') {
            Some((host, path)) if !host.contains('/') => {
                let host = host.rsplit('@').next().unwrap_or(host);
                format!("ssh://{host}/{}", path.trim_start_matches('/'))
            }
            _ => url.to_string(),
        }
    };
    match reqwest::Url::parse(&url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let query = u.query().map(|q| format!("?{q}")).unwrap_or_default();
            format!("https://{host}{port}{}{query}", u.path())
        }
        Err(_) => url,
    }
}

fn is_full_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A tag, branch or short hash as a full hash: locally, then with `git ls-remote`.
fn resolve_ref(dir: &Path, giturl: &str, reference: &str) -> Option<String> {
    if let Some(h) = git(
        dir,
        &["rev-parse", "--verify", &format!("{reference}^{{commit}}")],
    ) {
        return Some(h);
    }
    let short_hash = reference.bytes().all(|b| b.is_ascii_hexdigit());
    if short_hash {
        return None;
    }
    let out = Command::new("git")
        .args(["ls-remote", giturl, reference, &format!("{reference}^{{}}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = None;
    for line in text.lines() {
        let (hash, name) = line.split_once('\t')?;
        // A dereferenced tag (`^{}`) names the commit itself.
        if name.ends_with("^{}") || found.is_none() {
            found = Some(hash.to_string());
        }
    }
    found
}

/// The newest checkout of `giturl`/`branch` on the dashboard.
pub fn latest_commit(
    dash: &Dash,
    origin: &str,
    giturl: &str,
    branch: &str,
    tree: Option<&str>,
) -> Result<String, Fail> {
    if let Some(tree) = tree {
        let head = dash.get(
            &format!("tree/{}/{}", enc(tree), enc(branch)),
            &q(&[("origin", origin)]),
        )?;
        return head
            .get("git_commit_hash")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| {
                Fail::input(format!("no checkout of {tree}/{branch} on the dashboard"))
            });
    }
    for days in ["7", "36500"] {
        let trees = dash.get(
            "tree",
            &q(&[("origin", origin), ("interval_in_days", days)]),
        )?;
        let found = super::client::list(&trees, "trees").iter().find(|t| {
            t["git_repository_url"].as_str() == Some(giturl)
                && t["git_repository_branch"].as_str() == Some(branch)
        });
        if let Some(hash) = found.and_then(|t| t["git_commit_hash"].as_str()) {
            return Ok(hash.to_string());
        }
    }
    Err(Fail::input(format!(
        "no checkout of {giturl} branch {branch} (origin {origin}) on the dashboard; \
         `kci results trees` lists the ones it has"
    )))
}

impl CheckoutArgs {
    /// The checkout, as kci-dev's `set_giturl_branch_commit` finds it.
    pub fn resolve(&self, dash: &Dash) -> Result<Checkout, Fail> {
        self.resolve_with(dash, self.latest)
    }

    /// The same, forcing `--latest` when `latest`.
    pub fn resolve_with(&self, dash: &Dash, latest: bool) -> Result<Checkout, Fail> {
        let dir = self
            .git_folder
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        if let Some(f) = &self.git_folder
            && !f.is_dir()
        {
            return Err(Fail::input(format!(
                "--git-folder {} is not a directory",
                f.display()
            )));
        }
        let shown = dir.display().to_string();
        let giturl = match &self.giturl {
            Some(u) => u.clone(),
            None => git(&dir, &["remote", "get-url", "origin"])
                .map(|u| clean_url(&u))
                .ok_or_else(|| {
                    Fail::input(format!(
                        "no --giturl, and {shown} is not a git repository with an `origin` remote"
                    ))
                })?,
        };
        let branch = match &self.branch {
            Some(b) => b.clone(),
            None => git(&dir, &["branch", "--show-current"]).ok_or_else(|| {
                Fail::input(format!(
                    "no --branch, and {shown} is not a git repository on a branch"
                ))
            })?,
        };
        let commit = if latest {
            latest_commit(dash, &self.origin, &giturl, &branch, self.tree.as_deref())?
        } else {
            match &self.commit {
                Some(c) if is_full_hash(c) => c.to_ascii_lowercase(),
                Some(c) => resolve_ref(&dir, &giturl, c).unwrap_or_else(|| c.clone()),
                None => git(&dir, &["rev-parse", "HEAD"]).ok_or_else(|| {
                    Fail::input(format!(
                        "no --commit or --latest, and {shown} is not a git repository"
                    ))
                })?,
            }
        };
        Ok(Checkout {
            origin: self.origin.clone(),
            giturl,
            branch,
            commit,
        })
    }

    /// `filter_architecture` and `filter_tree_name` for the given options.
    pub fn filters(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(a) = &self.arch {
            out.push(("filter_architecture".into(), a.clone()));
        }
        if let Some(t) = &self.tree {
            out.push(("filter_tree_name".into(), t.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_urls_like_kci_dev() {
        assert_eq!(
            clean_url("git@github.com:torvalds/linux.git"),
            "https://github.com/torvalds/linux.git"
        );
        assert_eq!(
            clean_url("https://user:pw@git.kernel.org/pub/scm/x.git"),
            "https://git.kernel.org/pub/scm/x.git"
        );
        assert_eq!(clean_url("ssh://h:2222/a"), "https://h:2222/a");
        assert!(is_full_hash("0942d69eac9b7e86768c709d7e303dc4cde6f180"));
        assert!(!is_full_hash("v6.13"));
    }
}
