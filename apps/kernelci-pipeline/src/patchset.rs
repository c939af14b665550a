//! The patchset role (specs/pipeline.md §1.7): a `patchset` node (made by
//! `POST /pipeline/api/patchset`) names a checkout and patches (`artifacts.patch0..N`,
//! URLs; an mbox from `git format-patch` works as well as a plain diff). Once the checkout
//! has its tarball, the patches are checked, applied with `patch -p1` on the unpacked
//! source, and the result is packed and stored as the patchset's tarball; the node then
//! becomes `available` like a checkout, so the scheduler builds it.
//!
//! Patch checks (upstream's hardening, 2026-07): size limit, no NUL, no binary patches, no
//! symlink or submodule modes, no absolute paths, `..` or `.git` in file names, at least one
//! file header. Downloads only from the storage host and the allowed domains.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Ctx, iso_in};

/// Largest patch accepted.
pub const MAX_PATCH_BYTES: usize = 10 << 20;

/// Poll for running patchset nodes until the task is dropped.
pub async fn run(ctx: Ctx) {
    loop {
        if let Err(e) = pass(&ctx).await {
            tracing::warn!("patchset: {e:#}");
        }
        tokio::time::sleep(ctx.settings.patchset_poll).await;
    }
}

/// One pass: process every running patchset whose checkout is ready.
pub async fn pass(ctx: &Ctx) -> anyhow::Result<usize> {
    let mut done = 0;
    for node in ctx
        .api
        .find(&[("name", "patchset".into()), ("state", "running".into())])
        .await?
    {
        let id = node["id"].as_str().unwrap_or_default().to_string();
        match process(ctx, node).await {
            Ok(true) => done += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!("patchset {id}: {e:#}"),
        }
    }
    Ok(done)
}

/// Process one patchset node; `false` when its checkout is not ready yet.
async fn process(ctx: &Ctx, mut node: Value) -> anyhow::Result<bool> {
    let parent = match node["parent"].as_str() {
        Some(p) => ctx.api.node(p).await?,
        None => None,
    };
    let Some(checkout) = parent else {
        fail(ctx, &mut node, "the patchset has no checkout").await?;
        return Ok(true);
    };
    if checkout["state"] == "running" {
        return Ok(false);
    }
    let Some(tarball) = checkout["artifacts"]["tarball"].as_str().map(String::from) else {
        fail(ctx, &mut node, "the checkout has no tarball").await?;
        return Ok(true);
    };
    if !allowed(ctx, &tarball) {
        // Never read local files or internal hosts on behalf of an API user.
        let why = format!("the checkout's tarball {tarball} is not on an allowed host");
        fail(ctx, &mut node, &why).await?;
        return Ok(true);
    }
    match apply(ctx, &node, &tarball).await {
        Ok((url, hash)) => {
            node["data"]["kernel_revision"]["patchset"] = hash.into();
            node["artifacts"]["tarball"] = url.into();
            node["state"] = "available".into();
            node["result"] = "pass".into();
            node["holdoff"] = iso_in(ctx.settings.holdoff).into();
            ctx.api.update(&node).await?;
        }
        Err(e) => fail(ctx, &mut node, &format!("{e:#}")).await?,
    }
    Ok(true)
}

async fn fail(ctx: &Ctx, node: &mut Value, why: &str) -> anyhow::Result<()> {
    tracing::warn!("patchset {}: {why}", node["id"]);
    node["state"] = "done".into();
    node["result"] = "fail".into();
    node["data"]["error_msg"] = why.chars().take(1000).collect::<String>().into();
    ctx.api.update(node).await?;
    Ok(())
}

/// The patch URLs of a node, `patch0`, `patch1`, ... in numeric order.
pub fn patch_urls(node: &Value) -> Vec<String> {
    let mut patches: Vec<(u64, String)> = node["artifacts"]
        .as_object()
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| {
                    let n = k.strip_prefix("patch")?.parse::<u64>().ok()?;
                    Some((n, v.as_str()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    patches.sort();
    patches.into_iter().map(|(_, u)| u).collect()
}

/// Why a patch is refused, or `Ok` with its hash (sha256 over its mode and `+`/`-` lines).
pub fn check_patch(text: &[u8]) -> Result<String, String> {
    if text.len() > MAX_PATCH_BYTES {
        return Err(format!("larger than {MAX_PATCH_BYTES} bytes"));
    }
    if text.contains(&0) {
        return Err("contains a NUL byte".into());
    }
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_string())?;
    let mut headers = 0;
    let mut hashed = Vec::new();
    for line in text.lines() {
        if line.starts_with("GIT binary patch") || line.starts_with("Binary files ") {
            return Err("binary patches are refused".into());
        }
        for prefix in [
            "new mode ",
            "old mode ",
            "new file mode ",
            "deleted file mode ",
        ] {
            if let Some(mode) = line.strip_prefix(prefix)
                && (mode.starts_with("12") || mode.starts_with("16"))
            {
                return Err(format!("symlink or submodule mode refused: {line}"));
            }
        }
        if let Some(path) = line
            .strip_prefix("--- ")
            .or_else(|| line.strip_prefix("+++ "))
        {
            let path = path.split('\t').next().unwrap_or_default().trim();
            if path != "/dev/null" {
                check_path(path)?;
                headers += 1;
            }
        }
        if line.starts_with("old mode")
            || line.starts_with("new mode")
            || line.starts_with('-')
            || line.starts_with('+')
        {
            hashed.push(line);
        }
    }
    if headers == 0 {
        return Err("no file header (--- a/... +++ b/...) found".into());
    }
    Ok(format!(
        "{:x}",
        Sha256::digest(hashed.join("\n").as_bytes())
    ))
}

fn check_path(path: &str) -> Result<(), String> {
    if path.starts_with('"') {
        return Err(format!("quoted file name refused: {path}"));
    }
    // `patch -p1` strips the first component (a/, b/).
    let stripped = path.split_once('/').map(|(_, rest)| rest).unwrap_or(path);
    if path.starts_with('/')
        || stripped.starts_with('/')
        || stripped.split('/').any(|c| c == ".." || c == ".git")
    {
        return Err(format!("file name refused: {path}"));
    }
    Ok(())
}

fn allowed(ctx: &Ctx, url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let storage = url::Url::parse(&ctx.settings.storage_base_url)
        .ok()
        .and_then(|s| s.host_str().map(String::from));
    let host = u.host_str().map(String::from);
    matches!(u.scheme(), "http" | "https")
        && (host == storage
            || host
                .as_deref()
                .is_some_and(|h| ctx.settings.patch_domains.iter().any(|d| d == h)))
}

async fn apply(ctx: &Ctx, node: &Value, tarball: &str) -> anyhow::Result<(String, String)> {
    let urls = patch_urls(node);
    if urls.is_empty() {
        anyhow::bail!("the patchset has no patches (artifacts patch0..N)");
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()?;
    let mut patches = Vec::new();
    let mut digests = String::new();
    for (i, url) in urls.iter().enumerate() {
        if !allowed(ctx, url) {
            anyhow::bail!("patch{i}: {url} is not on an allowed domain");
        }
        let bytes = download(&http, url, MAX_PATCH_BYTES + 1).await?;
        let hash = check_patch(&bytes).map_err(|e| anyhow::anyhow!("patch{i}: {e}"))?;
        digests.push_str(&hash);
        patches.push(bytes);
    }
    let hash = format!("{:x}", Sha256::digest(digests.as_bytes()));
    let work = tempfile::tempdir_in(&ctx.settings.work_dir)?;
    let archive = work.path().join("checkout.tar.gz");
    download_to(&http, tarball, &archive).await?;
    let tarball_name = tarball
        .rsplit('/')
        .next()
        .unwrap_or("linux.tar.gz")
        .trim_end_matches(".tar.gz")
        .to_string();
    let src = work.path().join("src");
    tokio::fs::create_dir_all(&src).await?;
    run_cmd(
        "tar",
        &[
            "-xzf",
            path_str(&archive)?,
            "-C",
            path_str(&src)?,
            "--strip-components=1",
        ],
        None,
    )
    .await?;
    for (i, p) in patches.iter().enumerate() {
        let file = work.path().join(format!("{i}.patch"));
        tokio::fs::write(&file, p).await?;
        run_cmd(
            "patch",
            &[
                "-p1",
                "--unified",
                "--force",
                "--no-backup-if-mismatch",
                "--batch",
                "-i",
                path_str(&file)?,
            ],
            Some(&src),
        )
        .await
        .map_err(|e| anyhow::anyhow!("patch{i} does not apply: {e}"))?;
    }
    let id = node["id"].as_str().unwrap_or_default();
    let short: String = hash
        .chars()
        .take(ctx.settings.patchset_short_hash_len)
        .collect();
    let tail: String = {
        let chars: Vec<char> = id.chars().collect();
        chars[chars.len().saturating_sub(12)..].iter().collect()
    };
    let name = format!("{tarball_name}-{short}-{tail}");
    let out = work.path().join(format!("{name}.tar.gz"));
    run_cmd(
        "tar",
        &[
            "--create",
            "--gzip",
            "--file",
            path_str(&out)?,
            &format!("--transform=s|^\\.|{name}|"),
            "-C",
            path_str(&src)?,
            ".",
        ],
        None,
    )
    .await?;
    let url = ctx.storage.upload(&out, &format!("{name}.tar.gz")).await?;
    Ok((url, hash))
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow::anyhow!("non UTF-8 path {}", p.display()))
}

/// Download `url` (http or https only) into memory, refusing more than `limit` bytes
/// without reading past it.
async fn download(http: &reqwest::Client, url: &str, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut resp = get(http, url).await?;
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            anyhow::bail!("{url} is larger than {limit} bytes");
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Download `url` into the file `to`, chunk by chunk (kernel tarballs are hundreds of MB).
async fn download_to(http: &reqwest::Client, url: &str, to: &Path) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut resp = get(http, url).await?;
    let mut file = tokio::fs::File::create(to).await?;
    while let Some(chunk) = resp.chunk().await? {
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(())
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<reqwest::Response> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        anyhow::bail!("{url}: only http(s) URLs are fetched");
    }
    let resp = http.get(url).send().await?;
    if !resp.status().is_success() {
        anyhow::bail!("GET {url}: {}", resp.status());
    }
    Ok(resp)
}

async fn run_cmd(cmd: &str, args: &[&str], dir: Option<&Path>) -> anyhow::Result<()> {
    let mut c = tokio::process::Command::new(cmd);
    c.args(args).kill_on_drop(true);
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = c
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run {cmd}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd} failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GOOD: &str = "From abc Mon Sep 17 00:00:00 2001\nSubject: [PATCH] fix\n\n---\n\
        diff --git a/init/main.c b/init/main.c\n--- a/init/main.c\n+++ b/init/main.c\n\
        @@ -1 +1 @@\n-old\n+new\n";

    #[test]
    fn patches_are_checked() {
        assert!(check_patch(GOOD.as_bytes()).is_ok());
        assert_eq!(
            check_patch(GOOD.as_bytes()).unwrap(),
            check_patch(
                GOOD.replace("Subject: [PATCH] fix", "Subject: other")
                    .as_bytes()
            )
            .unwrap(),
            "the hash covers the change, not the mail headers"
        );
        for (bad, why) in [
            (
                GOOD.replace("a/init/main.c", "a/../etc/passwd"),
                "file name",
            ),
            (
                GOOD.replace("+++ b/init/main.c", "+++ /etc/passwd"),
                "file name",
            ),
            (
                GOOD.replace("b/init/main.c\n@@", "b/.git/config\n@@"),
                "file name",
            ),
            (format!("{GOOD}new mode 120000\n"), "symlink"),
            (format!("{GOOD}GIT binary patch\n"), "binary"),
            ("just text\n".to_string(), "no file header"),
        ] {
            let e = check_patch(bad.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(check_patch(b"a\0b").unwrap_err().contains("NUL"));
    }

    #[test]
    fn patch_urls_are_in_numeric_order() {
        let n = json!({"artifacts": {"patch10": "u10", "patch2": "u2", "tarball": "t", "patch0": "u0"}});
        assert_eq!(patch_urls(&n), ["u0", "u2", "u10"]);
    }
}
