//! Results of a finished job: upload what a local job (shell, docker) left in `artifacts/`
//! (a job of a runtime without a job directory uploaded them itself:
//! [`crate::remote_artifacts`]), read its exit status and logs, and write the node (and, for
//! boot jobs, its test tree).
//!
//! kbuild (specs/pipeline.md §4.8-9): exit 0 pass, 1 fail, 2 (or no kernel image, or the
//! job timed out / got lost) `incomplete` with `kbuild_internal_error`. A passing build goes
//! `available` with a holdoff so tests get scheduled; the others go `done`.
//!
//! boot/baseline jobs: the console log is read with kernelci-logspec (`generic_linux_boot`
//! plus our extra detectors) and becomes a tree like a LAVA baseline job's:
//! `<job> -> baseline (job) -> login, dmesg.emerg, dmesg.alert, dmesg.crit (tests)`.
//! Console logs carry no log levels, so the dmesg tests are derived from logspec findings
//! (emerg: kernel panics; alert: Oops/BUG; crit: WARNING, KASAN, lockups, stalls); documented
//! here because upstream reads `dmesg --level` inside the booted system instead.

use std::path::{Path, PathBuf};

use kernelci_sched::runtime::JobStatus;
use serde_json::{Map, Value, json};

use crate::{Ctx, iso_in};

/// Where a finished job's artifacts are.
pub enum Artifacts<'a> {
    /// A local `artifacts/` directory (shell, docker): each file is uploaded to storage;
    /// `None` when the job left none.
    Local(Option<PathBuf>),
    /// Uploaded by the job itself ([`crate::remote_artifacts`]): artifact key -> URL, and a
    /// directory holding the files read here (`metadata.json`, `console.log`).
    Uploaded {
        /// Artifact key -> storage URL.
        urls: Map<String, Value>,
        /// The downloaded files.
        dir: &'a Path,
    },
}

/// Collect the results of node `id`, a job of `kind` that ended with `status`, from its
/// local job directory `workdir`.
pub async fn collect(
    ctx: &Ctx,
    id: &str,
    kind: &str,
    status: &JobStatus,
    workdir: Option<&Path>,
    runtime_log: &[u8],
) -> anyhow::Result<()> {
    let source = Artifacts::Local(workdir.map(|w| w.join("artifacts")));
    collect_from(ctx, id, kind, status, source, runtime_log).await
}

/// Collect the results of node `id`, a job of `kind` that ended with `status`, from `source`.
pub async fn collect_from(
    ctx: &Ctx,
    id: &str,
    kind: &str,
    status: &JobStatus,
    source: Artifacts<'_>,
    runtime_log: &[u8],
) -> anyhow::Result<()> {
    let Some(mut node) = ctx.api.node(id).await? else {
        anyhow::bail!("node {id} is gone");
    };
    let already_done = node["state"] == "done";
    if already_done {
        // Timed out meanwhile: a late result still wins (as upstream callbacks do), but the
        // node stays `done` (done is terminal).
        tracing::info!("collect: {id} was already done; writing the job's late result");
    }
    let dest = format!(
        "{}-{}",
        node["name"].as_str().unwrap_or("job"),
        node["id"].as_str().unwrap_or_default()
    );
    let (artifacts_dir, mut artifacts) = match source {
        Artifacts::Local(dir) => {
            let mut artifacts = Map::new();
            if let Some(dir) = &dir {
                let walk = dir.clone();
                let files = tokio::task::spawn_blocking(move || list_files(&walk))
                    .await
                    .unwrap_or_default();
                for (rel, path) in files {
                    match ctx.storage.upload(&path, &format!("{dest}/{rel}")).await {
                        Ok(url) => {
                            artifacts.insert(artifact_key(&rel), url.into());
                        }
                        Err(e) => tracing::warn!("collect: {id}: {rel}: {e}"),
                    }
                }
            }
            (dir, artifacts)
        }
        Artifacts::Uploaded { urls, dir } => (Some(dir.to_path_buf()), urls),
    };
    // The job's own output, always kept (the build log of a job that died before writing
    // one, or the runtime's view of a boot).
    if !runtime_log.is_empty() {
        let tmp = tempfile::NamedTempFile::new()?;
        tokio::fs::write(tmp.path(), runtime_log).await?;
        if let Ok(url) = ctx
            .storage
            .upload(tmp.path(), &format!("{dest}/job.log"))
            .await
        {
            artifacts.entry("job_log").or_insert(url.into());
        }
    }
    let exit = match status {
        JobStatus::Finished { exit_code } => Some(*exit_code),
        _ => None,
    };
    let why_not = match status {
        JobStatus::TimedOut => Some("the job exceeded its time limit"),
        JobStatus::Lost => Some("the job was lost (process gone without a status)"),
        JobStatus::Cancelled => Some("the job was cancelled"),
        _ => None,
    };
    if let Some(obj) = node["artifacts"].as_object_mut() {
        obj.extend(artifacts.clone());
    } else {
        node["artifacts"] = Value::Object(artifacts.clone());
    }
    node["processed_by_kcidb_bridge"] = false.into();
    if kind == "kbuild" {
        collect_kbuild(ctx, &mut node, exit, why_not, artifacts_dir.as_deref()).await?;
        if already_done {
            node["state"] = "done".into();
            node["holdoff"] = Value::Null;
        }
        if node["result"] != "incomplete"
            && node["data"]["error_code"] == "node_timeout"
            && let Some(d) = node["data"].as_object_mut()
        {
            d.remove("error_code");
            d.remove("error_msg");
        }
        ctx.api.update(&node).await?;
        crate::telemetry::emit(ctx, vec![crate::telemetry::event("job_result", &node)]);
        return Ok(());
    }
    let console = match &artifacts_dir {
        Some(d) => tokio::fs::read(d.join("console.log")).await.ok(),
        None => None,
    };
    match (exit, console) {
        (Some(0), Some(console)) => {
            let marker = ctx.settings.boot_marker.clone();
            let hierarchy = boot_hierarchy(&mut node, &console, &marker);
            ctx.api.update_hierarchy(id, &hierarchy).await?;
            let mut events = vec![crate::telemetry::event("job_result", &node)];
            events.extend(crate::telemetry::test_results(&node, &hierarchy));
            crate::telemetry::emit(ctx, events);
            return Ok(());
        }
        (Some(code), _) => {
            set_done(&mut node, "incomplete");
            node["data"]["error_code"] = "Infrastructure".into();
            node["data"]["error_msg"] =
                format!("boot job exited with {code} (infrastructure)").into();
            ctx.api.update(&node).await?;
        }
        (None, _) => {
            set_done(&mut node, "incomplete");
            node["data"]["error_code"] = "Infrastructure".into();
            node["data"]["error_msg"] = why_not.unwrap_or("no result").into();
            ctx.api.update(&node).await?;
        }
    }
    crate::telemetry::emit(ctx, vec![crate::telemetry::event("job_result", &node)]);
    Ok(())
}

fn set_done(node: &mut Value, result: &str) {
    node["state"] = "done".into();
    node["result"] = result.into();
}

async fn collect_kbuild(
    ctx: &Ctx,
    node: &mut Value,
    exit: Option<i32>,
    why_not: Option<&str>,
    dir: Option<&Path>,
) -> anyhow::Result<()> {
    // Build metadata the job wrote (arch, compiler, defconfig, fragments, config_full).
    if let Some(d) = dir
        && let Ok(text) = tokio::fs::read_to_string(d.join("metadata.json")).await
        && let Ok(meta) = serde_json::from_str::<Value>(&text)
        && let Some(build) = meta.get("build").and_then(Value::as_object)
    {
        for key in ["arch", "compiler", "config_full"] {
            if let Some(v) = build.get(key).filter(|v| v.is_string()) {
                node["data"][key] = v.clone();
            }
        }
        match build.get("defconfig") {
            Some(Value::String(s)) => node["data"]["defconfig"] = s.clone().into(),
            Some(Value::Array(a)) => {
                let joined: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                node["data"]["defconfig"] = joined.join("+").into();
            }
            _ => {}
        }
        if let Some(f) = build.get("fragments").filter(|v| v.is_array()) {
            node["data"]["fragments"] = f.clone();
        }
    }
    let kernel = kernel_image(node);
    if let Some((_, file)) = &kernel {
        node["data"]["kernel_type"] = file.to_lowercase().into();
    }
    match exit {
        Some(0) if kernel.is_some() => {
            node["result"] = "pass".into();
            node["state"] = "available".into();
            node["holdoff"] = iso_in(ctx.settings.holdoff).into();
        }
        Some(0) => internal(node, "Kernel image not found in artifacts"),
        Some(1) => set_done(node, "fail"),
        Some(code) => internal(node, &format!("Infrastructure failure (exit {code})")),
        None => internal(node, why_not.unwrap_or("no result")),
    }
    Ok(())
}

fn internal(node: &mut Value, msg: &str) {
    set_done(node, "incomplete");
    node["data"]["error_code"] = "kbuild_internal_error".into();
    node["data"]["error_msg"] = msg.into();
}

/// The kernel image among the node's artifacts: renames its key to `kernel` and returns
/// (key, file name).
fn kernel_image(node: &mut Value) -> Option<(String, String)> {
    const IMAGES: [&str; 11] = [
        "bzImage",
        "Image",
        "zImage",
        "Image.gz",
        "uImage",
        "uImage.gz",
        "vmlinuz.efi",
        "vmlinux.bin",
        "xipImage",
        "linux",
        "vmlinuz",
    ];
    let arts = node["artifacts"].as_object_mut()?;
    let found = IMAGES.iter().find_map(|img| {
        let key = artifact_key(img);
        arts.get(&key)
            .cloned()
            .map(|url| (key, url, img.to_string()))
    })?;
    arts.remove(&found.0);
    arts.insert("kernel".into(), found.1);
    Some(("kernel".into(), found.2))
}

/// Upstream artifact key naming (§4.8): well-known files by name, else dots to underscores.
pub fn artifact_key(rel: &str) -> String {
    match rel {
        "build.log" => "build_log".into(),
        "metadata.json" => "metadata".into(),
        "console.log" => "test_log".into(),
        "modules.tar.xz" | "modules.tar.gz" => "modules".into(),
        _ => rel.replace('.', "_"),
    }
}

/// Regular files under `dir`, as (relative path, full path), sorted.
fn list_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd.flatten() {
            let p = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(rel) = p.strip_prefix(dir)
            {
                out.push((rel.to_string_lossy().into_owned(), p));
            }
        }
    }
    out.sort();
    out
}

/// The hierarchy PUT body for a boot job whose console log is `console`.
pub fn boot_hierarchy(node: &mut Value, console: &[u8], marker: &str) -> Value {
    let options = kernelci_logspec::Options {
        extra: true,
        ..Default::default()
    };
    let text = String::from_utf8_lossy(console);
    let mut parsed = kernelci_logspec::parse_str_with(
        &text,
        kernelci_logspec::Parser::GenericLinuxBoot,
        &options,
    );
    if parsed.state("bootloader.done") == Some(false) && text.contains("Linux version") {
        // QEMU's -kernel boots (and some firmwares) print no bootloader hand-over line that
        // upstream's parser knows: the kernel's own banner is the hand-over.
        let with_handover = format!("Starting kernel ...\n{text}");
        parsed = kernelci_logspec::parse_str_with(
            &with_handover,
            kernelci_logspec::Parser::GenericLinuxBoot,
            &options,
        );
    }
    let started =
        parsed.state("linux.boot.kernel_started") == Some(true) || text.contains("Linux version");
    let login = parsed.state("linux.boot.prompt") == Some(true)
        || (!marker.is_empty() && text.contains(marker));
    let kinds: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| e.error_type.clone())
        .chain(parsed.extra.iter().map(|f| f.finding_type.clone()))
        .collect();
    let has = |pats: &[&str]| kinds.iter().any(|k| pats.iter().any(|p| k.contains(p)));
    let pf = |ok: bool| if ok { "pass" } else { "fail" };
    let emerg = !has(&["panic"]);
    let alert = !has(&["oops", "bug"]);
    let crit = !has(&["warning", "kasan", "lockup", "hung_task", "rcu_stall"]);
    let result = if !started {
        "fail"
    } else if login && emerg {
        "pass"
    } else {
        "fail"
    };
    set_done(node, result);
    if !started {
        node["data"]["error_msg"] = "the kernel did not start".into();
    } else if !login {
        node["data"]["error_msg"] = "the boot did not reach the login prompt or marker".into();
    }
    let tests = [
        ("login", pf(login)),
        ("dmesg.emerg", pf(emerg)),
        ("dmesg.alert", pf(alert)),
        ("dmesg.crit", pf(crit)),
    ];
    let children: Vec<Value> = tests
        .iter()
        .filter(|(name, _)| started || *name == "login")
        .map(|(name, r)| child(node, &["baseline", name], "test", r))
        .collect();
    let baseline_result = if children.iter().any(|c| c["node"]["result"] == "fail") {
        "fail"
    } else {
        "pass"
    };
    let mut baseline = child(node, &["baseline"], "job", baseline_result);
    baseline["child_nodes"] = children.into();
    json!({"node": node.clone(), "child_nodes": [baseline]})
}

/// A child of the job node (upstream `submit_results`: inherits revision and build data).
fn child(root: &Value, rel_path: &[&str], kind: &str, result: &str) -> Value {
    let mut path: Vec<Value> = root["path"].as_array().cloned().unwrap_or_default();
    path.extend(rel_path.iter().map(|s| Value::from(*s)));
    let mut data = Map::new();
    for key in [
        "kernel_revision",
        "kernel_type",
        "arch",
        "defconfig",
        "config_full",
        "compiler",
        "platform",
        "runtime",
    ] {
        if let Some(v) = root["data"].get(key).filter(|v| !v.is_null()) {
            data.insert(key.into(), v.clone());
        }
    }
    json!({
        "node": {
            "name": rel_path.last().copied().unwrap_or_default(),
            "kind": kind,
            "state": "done",
            "result": result,
            "path": path,
            "group": root["name"],
            "data": data,
        },
        "child_nodes": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_keys_follow_upstream() {
        assert_eq!(artifact_key("build.log"), "build_log");
        assert_eq!(artifact_key(".config"), "_config");
        assert_eq!(artifact_key("modules.tar.xz"), "modules");
        assert_eq!(artifact_key("fragments/0.config"), "fragments/0_config");
        assert_eq!(artifact_key("bzImage"), "bzImage");
    }

    #[test]
    fn a_clean_boot_passes_and_a_panic_fails() {
        let mut node = json!({"id": "n1", "name": "baseline-x86", "path": ["checkout", "k", "baseline-x86"],
                              "data": {"arch": "x86_64"}});
        let log = b"[    0.000000] Linux version 6.1.0 (gcc)\n[    0.6] Run /init as init process\nBOOT-MARKER: init reached\n";
        let h = boot_hierarchy(&mut node, log, "BOOT-MARKER: init reached");
        assert_eq!(h["node"]["result"], "pass");
        let tests = &h["child_nodes"][0]["child_nodes"];
        assert_eq!(tests.as_array().unwrap().len(), 4);
        assert_eq!(
            tests[0]["node"]["path"],
            json!(["checkout", "k", "baseline-x86", "baseline", "login"])
        );
        assert_eq!(tests[0]["node"]["data"]["arch"], "x86_64");

        let mut node = json!({"id": "n1", "name": "baseline-x86", "path": ["checkout", "baseline-x86"], "data": {}});
        let log = b"[    0.000000] Linux version 6.1.0 (gcc)\n\
            [    0.700000] Kernel panic - not syncing: No working init found.\n\
            [    0.700100] CPU: 0 PID: 1 Comm: swapper Not tainted 6.1.0 #1\n\
            [    0.700200] ---[ end Kernel panic - not syncing: No working init found. ]---\n";
        let h = boot_hierarchy(&mut node, log, "BOOT-MARKER: init reached");
        assert_eq!(h["node"]["result"], "fail");
        let tests = &h["child_nodes"][0]["child_nodes"];
        assert_eq!(tests[0]["node"]["result"], "fail"); // login
        assert_eq!(tests[1]["node"]["result"], "fail"); // dmesg.emerg
    }
}
