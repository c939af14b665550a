//! `kernelci images`: build environments (container images for kbuild and kselftest jobs)
//! made from Debian packages, without a registry.
//!
//! The definitions are data: `deploy/images/images.toml` (embedded in the binary; `--file`
//! reads another). `images build NAME` makes `kernelci/NAME` in the local engine:
//!
//! 1. `debootstrap --variant=minbase SUITE ROOTFS MIRROR` into a temporary directory;
//! 2. `chroot ROOTFS apt-get install --no-install-recommends` of the image's packages (with
//!    dpkg told to skip man pages, info and locales, a `policy-rc.d` that starts nothing);
//! 3. apt caches and lists, logs, docs (but the copyright files) removed, the host's
//!    `resolv.conf`/`hostname` replaced, `sources.list` set to the definition's mirror;
//! 4. `tar -C ROOTFS -c . | docker import -` with the image's `ENV`/`CMD` and the labels
//!    `kernelci.image`, `kernelci.definition` (a hash of suite, packages, env and cmd),
//!    `kernelci.suite`, `kernelci.packages`, `kernelci.built`; then its `aliases` tagged.
//!
//! `build` does nothing when the engine has the image with the same definition hash (unless
//! `--rebuild`), and only tags when another defined image with the same hash is present (the
//! clang images per architecture); a rebuilt image's predecessor is removed when nothing
//! else uses it. Packages come from the suite as the mirror has it (no `-security` or
//! `-updates` suites): `--rebuild` picks up a new point release.
//!
//! The engine is driven through the `docker` CLI (Debian's `docker.io`, or any CLI that
//! speaks to the engine at `DOCKER_HOST`), not bollard: the root filesystem goes from `tar`
//! straight into `docker import` through a pipe (no copy in this process, no async runtime),
//! and the same commands work by hand when something has to be checked. Images are never
//! pulled or pushed. debootstrap and chroot need root.
//!
//! Exit codes: 0 done, 1 a build step failed, 2 bad NAME or definitions file, 3 the engine
//! (or its CLI) is unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The definitions shipped with the binary.
const BUILTIN: &str = include_str!("../../../deploy/images/images.toml");
const BUILTIN_NAME: &str = "deploy/images/images.toml (built in)";
/// Every image is `PREFIX + name`.
pub const PREFIX: &str = "kernelci/";
/// Part of the definition hash: bump when the build procedure changes what an image holds.
const FORMAT: u32 = 1;
/// PATH of an image that does not set one.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often a long step says it is still running.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// `kernelci images ...`
#[derive(Subcommand)]
pub enum ImagesCommand {
    /// The image definitions and whether each image is in the engine (`kernelci/NAME`).
    List {
        #[command(flatten)]
        common: Common,
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Build `kernelci/NAME` from Debian packages (debootstrap, apt, docker import).
    Build {
        /// The image name, e.g. `gcc-12:x86` (see `kernelci images list`).
        name: String,
        #[command(flatten)]
        common: Common,
        /// Debian mirror used for the build (default: the definitions' `mirror`); the image's
        /// sources.list keeps the definitions' mirror.
        #[arg(long)]
        mirror: Option<String>,
        /// Build even when the engine has a current image.
        #[arg(long)]
        rebuild: bool,
        /// Where the temporary root filesystem is made (default: the temp directory).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Keep the .debs debootstrap downloads in this directory and reuse them (saves the
        /// download of minbase on the next build).
        #[arg(long, env = "KERNELCI_IMAGES_CACHE")]
        cache_dir: Option<PathBuf>,
        /// Print the result as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Options of every `images` subcommand.
#[derive(Args)]
pub struct Common {
    /// Image definitions (TOML); default: the built-in `deploy/images/images.toml`.
    #[arg(long, env = "KERNELCI_IMAGES_FILE")]
    file: Option<PathBuf>,
    /// The container engine.
    #[arg(long, value_enum, default_value_t = Engine::Docker)]
    engine: Engine,
    /// The engine's address (given to the docker CLI as DOCKER_HOST); default: the CLI's
    /// (unix:///var/run/docker.sock).
    #[arg(long, env = "DOCKER_HOST")]
    docker_host: Option<String>,
}

/// Container engines images are imported into.
#[derive(Clone, Copy, ValueEnum)]
pub enum Engine {
    /// Docker Engine (or a Docker-compatible API) through the `docker` CLI.
    Docker,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// The definitions file cannot be read or is invalid.
    #[error("{file}: {message}")]
    Definitions {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// NAME is not defined.
    #[error("unknown image {name:?}; the images are: {names}")]
    UnknownImage {
        /// The name given.
        name: String,
        /// The defined names.
        names: String,
    },
    /// The engine does not answer.
    #[error("container engine unreachable at {host}: {detail}")]
    Engine {
        /// The DOCKER_HOST tried.
        host: String,
        /// The CLI's answer.
        detail: String,
    },
    /// A tool needed for building is missing.
    #[error("{tool} not found in PATH: {hint}")]
    MissingTool {
        /// The tool.
        tool: String,
        /// How to get it.
        hint: String,
    },
    /// A build step failed.
    #[error("{step} failed ({status}){log}")]
    Step {
        /// The step.
        step: String,
        /// Exit status.
        status: String,
        /// The end of its output, with the log file.
        log: String,
    },
    /// File system or process error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ImagesError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ImagesError::Definitions { .. } | ImagesError::UnknownImage { .. } => 2,
            ImagesError::Engine { .. } => 3,
            _ => 1,
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImagesError {
    let context = context.into();
    move |source| ImagesError::Io { context, source }
}

// ---------------------------------------------------------------------------------------
// Definitions

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    suite: String,
    mirror: String,
    #[serde(default)]
    sets: BTreeMap<String, Vec<String>>,
    images: BTreeMap<String, ImageDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageDef {
    #[serde(default)]
    description: String,
    #[serde(default)]
    suite: Option<String>,
    #[serde(default)]
    sets: Vec<String>,
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    aliases: Vec<String>,
}

/// One image, resolved from its definition.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// Name, e.g. `gcc-12:x86`.
    pub name: String,
    /// Engine tag: `kernelci/<name>`.
    pub tag: String,
    /// What it is for.
    pub description: String,
    /// Debian suite.
    pub suite: String,
    /// Mirror written into the image's sources.list (and used to build by default).
    pub mirror: String,
    /// Packages installed on top of minbase (sets first, in order, no duplicates).
    pub packages: Vec<String>,
    /// `KEY=VALUE` environment of the image.
    pub env: Vec<String>,
    /// The image's default command.
    pub cmd: Vec<String>,
    /// Extra tags (`kernelci/<alias>`).
    pub aliases: Vec<String>,
    /// Hash of what the image holds (the `kernelci.definition` label).
    pub definition: String,
}

/// The definitions: from `file`, or the built-in ones.
pub fn load(file: Option<&Path>) -> Result<Vec<Image>, ImagesError> {
    let (name, text) = match file {
        Some(p) => (
            p.display().to_string(),
            fs::read_to_string(p).map_err(io(format!("reading {}", p.display())))?,
        ),
        None => (BUILTIN_NAME.to_string(), BUILTIN.to_string()),
    };
    parse(&name, &text)
}

fn valid_name(s: &str) -> bool {
    // A docker reference without registry: repository path component, optional tag.
    let (repo, tag) = match s.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (s, None),
    };
    let repo_ok = !repo.is_empty()
        && repo.len() <= 100
        && repo.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && repo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    });
    repo_ok && tag_ok
}

fn valid_package(s: &str) -> bool {
    // Debian package name, optionally `:arch`.
    let (pkg, arch) = match s.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (s, None),
    };
    pkg.len() >= 2
        && pkg.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && pkg
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
        && arch.is_none_or(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn valid_word(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('-') && !s.chars().any(|c| c.is_whitespace() || c == '"')
}

fn parse(file: &str, text: &str) -> Result<Vec<Image>, ImagesError> {
    let bad = |message: String| ImagesError::Definitions {
        file: file.to_string(),
        message,
    };
    let def: FileDef = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    if !valid_word(&def.suite) {
        return Err(bad(format!("suite: invalid {:?}", def.suite)));
    }
    if !def.mirror.starts_with("http://") && !def.mirror.starts_with("https://") {
        return Err(bad(format!("mirror: not an http(s) URL: {:?}", def.mirror)));
    }
    for (set, pkgs) in &def.sets {
        if let Some(p) = pkgs.iter().find(|p| !valid_package(p)) {
            return Err(bad(format!("sets.{set}: invalid package name {p:?}")));
        }
    }
    let mut out = Vec::new();
    for (name, d) in def.images {
        let at = format!("images.{name:?}");
        if !valid_name(&name) {
            return Err(bad(format!(
                "{at}: not a valid image name (lower-case repository, optional :tag)"
            )));
        }
        let suite = d.suite.unwrap_or_else(|| def.suite.clone());
        if !valid_word(&suite) {
            return Err(bad(format!("{at}.suite: invalid {suite:?}")));
        }
        let mut packages: Vec<String> = Vec::new();
        for set in &d.sets {
            let pkgs = def
                .sets
                .get(set)
                .ok_or_else(|| bad(format!("{at}.sets: no set {set:?}")))?;
            packages.extend(pkgs.iter().cloned());
        }
        if let Some(p) = d.packages.iter().find(|p| !valid_package(p)) {
            return Err(bad(format!("{at}.packages: invalid package name {p:?}")));
        }
        packages.extend(d.packages);
        let mut seen = BTreeSet::new();
        packages.retain(|p| seen.insert(p.clone()));
        for e in &d.env {
            let ok = e.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) && !e.contains(['\n', '\r']);
            if !ok {
                return Err(bad(format!("{at}.env: not KEY=VALUE: {e:?}")));
            }
        }
        let mut env = d.env;
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        let cmd = d.cmd.unwrap_or_else(|| vec!["/bin/bash".to_string()]);
        if cmd.is_empty() || cmd.iter().any(|c| c.contains(['\n', '\r'])) {
            return Err(bad(format!("{at}.cmd: empty, or a line break in it")));
        }
        if let Some(a) = d.aliases.iter().find(|a| !valid_name(a)) {
            return Err(bad(format!("{at}.aliases: not a valid image name {a:?}")));
        }
        if d.description.contains(['\n', '\r']) {
            return Err(bad(format!("{at}.description: a line break in it")));
        }
        let mut sorted = packages.clone();
        sorted.sort();
        let identity =
            json!({"format": FORMAT, "suite": suite, "packages": sorted, "env": env, "cmd": cmd});
        let digest = Sha256::digest(identity.to_string().as_bytes());
        let mut definition = String::with_capacity(64);
        for b in digest {
            let _ = write!(definition, "{b:02x}");
        }
        out.push(Image {
            tag: format!("{PREFIX}{name}"),
            name,
            description: d.description,
            suite,
            mirror: def.mirror.clone(),
            packages,
            env,
            cmd,
            aliases: d.aliases,
            definition,
        });
    }
    if out.is_empty() {
        return Err(bad("no [images.NAME] defined".to_string()));
    }
    Ok(out)
}

fn find<'a>(images: &'a [Image], name: &str) -> Result<&'a Image, ImagesError> {
    let name = name.strip_prefix(PREFIX).unwrap_or(name);
    images
        .iter()
        .find(|i| i.name == name || i.aliases.iter().any(|a| a == name))
        .ok_or_else(|| ImagesError::UnknownImage {
            name: name.to_string(),
            names: images
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

// ---------------------------------------------------------------------------------------
// The engine, through its CLI

/// What the engine says about one image.
#[derive(Debug, Clone, Default)]
struct Present {
    id: String,
    created: String,
    size: u64,
    labels: BTreeMap<String, String>,
}

struct Docker {
    bin: &'static str,
    host: Option<String>,
}

impl Docker {
    fn new(common: &Common) -> Self {
        let bin = match common.engine {
            Engine::Docker => "docker",
        };
        Docker {
            bin,
            host: common.docker_host.clone().filter(|h| !h.is_empty()),
        }
    }

    fn host(&self) -> String {
        match &self.host {
            Some(h) => format!("DOCKER_HOST={h}"),
            None => "unix:///var/run/docker.sock (DOCKER_HOST is not set)".to_string(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(self.bin);
        if let Some(h) = &self.host {
            c.env("DOCKER_HOST", h);
        }
        c.stdin(Stdio::null());
        c
    }

    fn unreachable(&self, detail: impl Into<String>) -> ImagesError {
        ImagesError::Engine {
            host: self.host(),
            detail: detail.into(),
        }
    }

    /// Run the CLI; stdout on success, else `Err(stderr)`.
    fn run(&self, args: &[&str]) -> Result<Result<String, String>, ImagesError> {
        let out = self.command().args(args).output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                self.unreachable(format!(
                    "the {} CLI is not installed (apt-get install docker.io)",
                    self.bin
                ))
            } else {
                self.unreachable(format!("cannot run {}: {e}", self.bin))
            }
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Ok(if out.status.success() {
            Ok(stdout)
        } else {
            Err(stderr)
        })
    }

    /// The server version, or [`ImagesError::Engine`].
    fn ping(&self) -> Result<String, ImagesError> {
        self.run(&["version", "--format", "{{.Server.Version}}"])?
            .map_err(|e| self.unreachable(e))
    }

    fn inspect(&self, tag: &str) -> Result<Option<Present>, ImagesError> {
        match self.run(&["image", "inspect", "--format", "{{json .}}", tag])? {
            Ok(out) => {
                let v: Value = serde_json::from_str(&out).map_err(|e| {
                    self.unreachable(format!("unexpected answer to image inspect {tag}: {e}"))
                })?;
                let labels = v["Config"]["Labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Some(Present {
                    id: v["Id"].as_str().unwrap_or_default().to_string(),
                    created: v["Created"].as_str().unwrap_or_default().to_string(),
                    size: v["Size"].as_u64().unwrap_or_default(),
                    labels,
                }))
            }
            Err(e) if e.contains("No such image") || e.contains("image not known") => Ok(None),
            Err(e) => Err(self.unreachable(e)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// list

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn list(common: &Common, json_out: bool) -> Result<(), ImagesError> {
    let images = load(common.file.as_deref())?;
    let docker = Docker::new(common);
    docker.ping()?;
    let mut rows = Vec::new();
    for img in &images {
        let present = docker.inspect(&img.tag)?;
        let current = present
            .as_ref()
            .map(|p| p.labels.get("kernelci.definition") == Some(&img.definition));
        rows.push((img, present, current));
    }
    if json_out {
        let out: Vec<Value> = rows
            .iter()
            .map(|(img, p, current)| {
                json!({
                    "name": img.name,
                    "tag": img.tag,
                    "description": img.description,
                    "suite": img.suite,
                    "packages": img.packages,
                    "aliases": img.aliases,
                    "definition": img.definition,
                    "present": p.is_some(),
                    "current": current,
                    "id": p.as_ref().map(|p| &p.id),
                    "size": p.as_ref().map(|p| p.size),
                    "created": p.as_ref().map(|p| &p.created),
                    "built": p.as_ref().and_then(|p| p.labels.get("kernelci.built")),
                })
            })
            .collect();
        println!("{}", Value::Array(out));
        return Ok(());
    }
    let width = images.iter().map(|i| i.tag.len()).max().unwrap_or(0);
    println!(
        "{:width$}  {:8}  {:>9}  {:20}  DESCRIPTION",
        "IMAGE", "STATE", "SIZE", "BUILT"
    );
    for (img, p, current) in rows {
        let (state, size, built) = match &p {
            None => ("missing", String::new(), String::new()),
            Some(p) => (
                if current == Some(true) {
                    "current"
                } else {
                    "stale"
                },
                human(p.size),
                p.labels
                    .get("kernelci.built")
                    .cloned()
                    .unwrap_or_else(|| p.created.chars().take(19).collect()),
            ),
        };
        println!(
            "{:width$}  {state:8}  {size:>9}  {built:20}  {}",
            img.tag, img.description
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// build

struct Progress {
    name: String,
    start: Instant,
}

impl Progress {
    fn say(&self, msg: &str) {
        eprintln!(
            "images: {} [{:6.1} s] {msg}",
            self.name,
            self.start.elapsed().as_secs_f64()
        );
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn need(tool: &str, hint: &str) -> Result<PathBuf, ImagesError> {
    which(tool).ok_or_else(|| ImagesError::MissingTool {
        tool: tool.to_string(),
        hint: hint.to_string(),
    })
}

fn tail(log: &Path, lines: usize) -> String {
    let text = fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut s = format!("; last lines of {}:", log.display());
    for l in &all[start..] {
        s.push_str("\n    ");
        s.push_str(l);
    }
    s
}

/// Wait for `child`, saying every [`HEARTBEAT`] that it still runs.
fn wait(
    child: &mut Child,
    step: &str,
    p: &Progress,
) -> Result<std::process::ExitStatus, ImagesError> {
    let started = Instant::now();
    let mut next = HEARTBEAT;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(io(format!("waiting for {step}")))?
        {
            return Ok(status);
        }
        if started.elapsed() >= next {
            p.say(&format!("... {step} still running"));
            next += HEARTBEAT;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Run a build step with its output appended to `log`.
fn step(cmd: &mut Command, step: &str, log: &Path, p: &Progress) -> Result<(), ImagesError> {
    let t = Instant::now();
    p.say(&format!("{step} ..."));
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(format!("opening {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io(format!("opening {}", log.display())))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io(format!("starting {step}")))?;
    let status = wait(&mut child, step, p)?;
    if !status.success() {
        return Err(ImagesError::Step {
            step: step.to_string(),
            status: status.to_string(),
            log: tail(log, 25),
        });
    }
    p.say(&format!(
        "{step}: done in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Empty a directory (keeping it), ignoring what is not there.
fn empty_dir(dir: &Path) -> Result<(), ImagesError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(format!("reading {}", dir.display())))?;
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let r = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        r.map_err(io(format!("removing {}", path.display())))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), ImagesError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

/// Quote a value for a Dockerfile instruction given to `docker import --change`.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

const DPKG_SLIM: &str = "# kernelci images: no man pages, info or translations\n\
path-exclude /usr/share/man/*\n\
path-exclude /usr/share/info/*\n\
path-exclude /usr/share/locale/*\n\
path-include /usr/share/locale/locale.alias\n\
path-exclude /usr/share/doc/*\n\
path-include /usr/share/doc/*/copyright\n";

/// Remove what an image does not need from `rootfs`.
fn slim(rootfs: &Path, img: &Image) -> Result<(), ImagesError> {
    for d in [
        "var/lib/apt/lists",
        "var/cache/apt",
        "var/cache/debconf/templates.dat-old",
        "var/log",
        "usr/share/man",
        "usr/share/info",
        "tmp",
        "var/tmp",
        "root",
    ] {
        let p = rootfs.join(d);
        if p.is_dir() {
            empty_dir(&p)?;
        } else if p.exists() {
            fs::remove_file(&p).map_err(io(format!("removing {}", p.display())))?;
        }
    }
    fs::create_dir_all(rootfs.join("var/lib/apt/lists/partial"))
        .map_err(io("creating var/lib/apt/lists/partial"))?;
    fs::create_dir_all(rootfs.join("var/cache/apt/archives/partial"))
        .map_err(io("creating var/cache/apt/archives/partial"))?;
    // Translations, but the alias table; docs, but the copyright files.
    let locale = rootfs.join("usr/share/locale");
    if let Ok(entries) = fs::read_dir(&locale) {
        for e in entries.flatten() {
            if e.file_name() != "locale.alias" {
                let p = e.path();
                let r = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                r.map_err(io(format!("removing {}", p.display())))?;
            }
        }
    }
    if let Ok(entries) = fs::read_dir(rootfs.join("usr/share/doc")) {
        for pkg in entries.flatten() {
            if let Ok(files) = fs::read_dir(pkg.path()) {
                for f in files.flatten() {
                    if f.file_name() != "copyright" {
                        let p = f.path();
                        let r = if f.file_type().is_ok_and(|t| t.is_dir()) {
                            fs::remove_dir_all(&p)
                        } else {
                            fs::remove_file(&p)
                        };
                        r.map_err(io(format!("removing {}", p.display())))?;
                    }
                }
            }
        }
    }
    let _ = fs::remove_file(rootfs.join("usr/sbin/policy-rc.d"));
    write(&rootfs.join("etc/resolv.conf"), "")?;
    write(&rootfs.join("etc/hostname"), "kernelci\n")?;
    write(
        &rootfs.join("etc/apt/sources.list"),
        &format!("deb {} {} main\n", img.mirror, img.suite),
    )?;
    if let Ok(perm) = fs::metadata(rootfs.join("usr")).map(|m| m.permissions()) {
        let _ = fs::set_permissions(rootfs.join("tmp"), {
            use std::os::unix::fs::PermissionsExt;
            let mut p = perm;
            p.set_mode(0o1777);
            p
        });
    }
    Ok(())
}

/// What `build` did.
#[derive(Debug, Serialize)]
struct Built {
    name: String,
    tag: String,
    built: bool,
    id: String,
    size: u64,
    definition: String,
    seconds: f64,
}

/// `images build` options.
struct BuildOptions {
    mirror: Option<String>,
    rebuild: bool,
    work_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    json: bool,
}

fn build(common: &Common, name: &str, opts: &BuildOptions) -> Result<(), ImagesError> {
    let json_out = opts.json;
    let images = load(common.file.as_deref())?;
    let img = find(&images, name)?;
    let docker = Docker::new(common);
    let p = Progress {
        name: img.tag.clone(),
        start: Instant::now(),
    };
    let version = docker.ping()?;
    let old = docker.inspect(&img.tag)?;
    let report = |built: bool, present: &Present| {
        let b = Built {
            name: img.name.clone(),
            tag: img.tag.clone(),
            built,
            id: present.id.clone(),
            size: present.size,
            definition: img.definition.clone(),
            seconds: p.start.elapsed().as_secs_f64(),
        };
        if json_out {
            println!("{}", serde_json::to_string(&b).unwrap_or_default());
        }
    };
    if let Some(old) = &old
        && !opts.rebuild
        && old.labels.get("kernelci.definition") == Some(&img.definition)
    {
        tag_aliases(&docker, img)?;
        p.say(&format!(
            "up to date ({}, {}), nothing to do (--rebuild to build anyway)",
            short(&old.id),
            human(old.size)
        ));
        report(false, old);
        return Ok(());
    }
    // Same contents as another image the engine has (the clang images per architecture):
    // a tag, not a build.
    if !opts.rebuild {
        for twin in images
            .iter()
            .filter(|i| i.name != img.name && i.definition == img.definition)
        {
            if let Some(t) = docker.inspect(&twin.tag)?
                && t.labels.get("kernelci.definition") == Some(&img.definition)
            {
                docker
                    .run(&["tag", &twin.tag, &img.tag])?
                    .map_err(|e| ImagesError::Step {
                        step: format!("{} tag {} {}", docker.bin, twin.tag, img.tag),
                        status: "refused".to_string(),
                        log: format!(": {e}"),
                    })?;
                tag_aliases(&docker, img)?;
                p.say(&format!(
                    "same definition as {} ({}): tagged, nothing built",
                    twin.tag,
                    short(&t.id)
                ));
                report(false, &t);
                return Ok(());
            }
        }
    }

    let debootstrap = need(
        "debootstrap",
        "apt-get install debootstrap (and run as root)",
    )?;
    let chroot = need("chroot", "it is part of coreutils")?;
    need("tar", "apt-get install tar")?;
    let mirror = opts.mirror.as_deref().unwrap_or(&img.mirror);
    p.say(&format!(
        "building from Debian {} (minbase + {}) with {mirror}; engine {} ({})",
        img.suite,
        img.packages.join(" "),
        docker.host(),
        version
    ));
    let base = match &opts.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    fs::create_dir_all(&base).map_err(io(format!("creating {}", base.display())))?;
    let base = fs::canonicalize(&base).map_err(io(format!("resolving {}", base.display())))?;
    let work = WorkDir(Some(
        tempfile::Builder::new()
            .prefix("kernelci-image-")
            .tempdir_in(&base)
            .map_err(io(format!("creating a directory in {}", base.display())))?,
    ));
    let rootfs = work.path().join("rootfs");
    let log = work.path().join("build.log");

    let mut cmd = Command::new(&debootstrap);
    cmd.arg("--variant=minbase").arg("--components=main");
    if let Some(cache) = &opts.cache_dir {
        fs::create_dir_all(cache).map_err(io(format!("creating {}", cache.display())))?;
        let cache =
            fs::canonicalize(cache).map_err(io(format!("resolving {}", cache.display())))?;
        cmd.arg(format!("--cache-dir={}", cache.display()));
    }
    cmd.arg(&img.suite).arg(&rootfs).arg(mirror);
    step(
        &mut cmd,
        &format!("[1/4] debootstrap --variant=minbase {}", img.suite),
        &log,
        &p,
    )
    .map_err(|e| keep_log(e, &work, &base))?;

    write(&rootfs.join("etc/dpkg/dpkg.cfg.d/kernelci-slim"), DPKG_SLIM)?;
    write(
        &rootfs.join("usr/sbin/policy-rc.d"),
        "#!/bin/sh\nexit 101\n",
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            rootfs.join("usr/sbin/policy-rc.d"),
            fs::Permissions::from_mode(0o755),
        )
        .map_err(io("chmod policy-rc.d"))?;
    }
    if !img.packages.is_empty() {
        let mut cmd = Command::new(&chroot);
        cmd.arg(&rootfs)
            .args(["/usr/bin/env", "-i"])
            .args([
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "DEBIAN_FRONTEND=noninteractive",
                "LC_ALL=C",
                "HOME=/root",
            ])
            .args([
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "-o",
                "Dpkg::Use-Pty=0",
            ])
            .args(&img.packages);
        step(
            &mut cmd,
            &format!(
                "[2/4] apt-get install {} package{}",
                img.packages.len(),
                if img.packages.len() == 1 { "" } else { "s" }
            ),
            &log,
            &p,
        )
        .map_err(|e| keep_log(e, &work, &base))?;
    } else {
        p.say("[2/4] no packages to install");
    }
    let t = Instant::now();
    slim(&rootfs, img)?;
    p.say(&format!(
        "[3/4] caches, lists, docs removed in {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    p.say(&format!(
        "[4/4] tar | {} import {} ...",
        docker.bin, img.tag
    ));
    let built_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut changes: Vec<String> = Vec::new();
    for e in &img.env {
        if let Some((k, v)) = e.split_once('=') {
            changes.push(format!("ENV {k}={}", quoted(v)));
        }
    }
    changes.push(format!(
        "CMD {}",
        serde_json::to_string(&img.cmd).unwrap_or_default()
    ));
    let labels = [
        ("kernelci.image", img.name.clone()),
        ("kernelci.definition", img.definition.clone()),
        ("kernelci.suite", img.suite.clone()),
        ("kernelci.packages", img.packages.join(" ")),
        ("kernelci.description", img.description.clone()),
        ("kernelci.built", built_at),
    ];
    let label = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", quoted(v)))
        .collect::<Vec<_>>()
        .join(" ");
    changes.push(format!("LABEL {label}"));

    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "-cf", "-", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting tar"))?;
    let tar_out = tar
        .stdout
        .take()
        .ok_or_else(|| io("tar")(std::io::Error::other("no stdout")))?;
    let mut import = docker.command();
    import.arg("import");
    for c in &changes {
        import.arg("--change").arg(c);
    }
    let import = import
        .args(["-", &img.tag])
        .stdin(Stdio::from(tar_out))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| docker.unreachable(format!("cannot run {}: {e}", docker.bin)))?;
    let import_out = import
        .wait_with_output()
        .map_err(io(format!("waiting for {} import", docker.bin)))?;
    let mut tar_err = String::new();
    if let Some(mut e) = tar.stderr.take() {
        let _ = e.read_to_string(&mut tar_err);
    }
    let tar_status = tar.wait().map_err(io("waiting for tar"))?;
    if !import_out.status.success() {
        return Err(ImagesError::Step {
            step: format!("{} import", docker.bin),
            status: import_out.status.to_string(),
            log: format!(": {}", String::from_utf8_lossy(&import_out.stderr).trim()),
        });
    }
    if !tar_status.success() {
        return Err(ImagesError::Step {
            step: "tar".to_string(),
            status: tar_status.to_string(),
            log: format!(": {}", tar_err.trim()),
        });
    }
    tag_aliases(&docker, img)?;
    let new = docker.inspect(&img.tag)?.ok_or_else(|| {
        docker.unreachable(format!("{} is not in the engine after import", img.tag))
    })?;
    p.say(&format!(
        "[4/4] imported in {:.1} s: {} {}",
        t.elapsed().as_secs_f64(),
        short(&new.id),
        human(new.size)
    ));
    if let Some(old) = old.filter(|o| o.id != new.id) {
        // The predecessor, unless something still uses it (a container, another tag).
        match docker.run(&["image", "rm", &old.id])? {
            Ok(_) => p.say(&format!("removed the previous image {}", short(&old.id))),
            Err(_) => p.say(&format!(
                "kept the previous image {} (still in use)",
                short(&old.id)
            )),
        }
    }
    p.say(&format!(
        "built {} in {:.1} s",
        img.tag,
        p.start.elapsed().as_secs_f64()
    ));
    report(true, &new);
    Ok(())
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

/// The build's temporary directory, removed on drop unless something is still mounted
/// under it after a lazy unmount (a failed debootstrap can leave the host's /proc or /sys
/// mounted in the root filesystem: removing through them would touch the host).
struct WorkDir(Option<tempfile::TempDir>);

impl WorkDir {
    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }
}

/// Mount points at or under `dir` (from /proc/self/mountinfo), deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ").replace("\\011", "\t")))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort();
    out.reverse();
    out
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else {
            return;
        };
        let mounts = mounts_under(dir.path());
        for m in &mounts {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(m)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if !mounts.is_empty() && !mounts_under(dir.path()).is_empty() {
            let kept = dir.keep();
            eprintln!(
                "images: kept {} (still mounted in it: remove it by hand after umount)",
                kept.display()
            );
        }
    }
}

/// On a failed step, keep the build log (the root filesystem goes).
fn keep_log(e: ImagesError, work: &WorkDir, base: &Path) -> ImagesError {
    let from = work.path().join("build.log");
    let to = base.join(format!(
        "kernelci-image-{}.log",
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    ));
    match (e, fs::copy(&from, &to)) {
        (ImagesError::Step { step, status, log }, Ok(_)) => ImagesError::Step {
            step,
            status,
            log: log.replace(&from.display().to_string(), &to.display().to_string()),
        },
        (e, _) => e,
    }
}

fn tag_aliases(docker: &Docker, img: &Image) -> Result<(), ImagesError> {
    for a in &img.aliases {
        let alias = format!("{PREFIX}{a}");
        docker
            .run(&["tag", &img.tag, &alias])?
            .map_err(|e| ImagesError::Step {
                step: format!("{} tag {} {alias}", docker.bin, img.tag),
                status: "refused".to_string(),
                log: format!(": {e}"),
            })?;
    }
    Ok(())
}

/// Run `kernelci images ...`; the process exit code.
pub fn run(command: ImagesCommand) -> ExitCode {
    let result = match command {
        ImagesCommand::List { common, json } => list(&common, json),
        ImagesCommand::Build {
            name,
            common,
            mirror,
            rebuild,
            work_dir,
            cache_dir,
            json,
        } => build(
            &common,
            &name,
            &BuildOptions {
                mirror,
                rebuild,
                work_dir,
                cache_dir,
                json,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_built_in_definitions_load() {
        let images = load(None).unwrap();
        let base = find(&images, "base").unwrap();
        assert_eq!(base.packages, vec!["make"]);
        assert_eq!(base.tag, "kernelci/base");
        let x86 = find(&images, "kernelci/gcc-12:x86-kselftest-kernelci").unwrap();
        assert_eq!(x86.name, "gcc-12:x86-kselftest");
        assert!(x86.packages.iter().any(|p| p == "libcap-dev"));
        for arch in ["x86", "arm64", "arm", "riscv64"] {
            find(&images, &format!("gcc-12:{arch}")).unwrap();
            find(&images, &format!("clang-16:{arch}")).unwrap();
        }
        let names: BTreeSet<_> = images.iter().map(|i| &i.definition).collect();
        // Same packages give the same hash (the clang images per arch), others differ.
        assert!(names.len() < images.len() && names.len() > 5);
    }

    #[test]
    fn bad_definitions_are_reported_with_their_key() {
        let e = parse(
            "f.toml",
            "suite='bookworm'\nmirror='http://m'\n[images.x]\nsets=['nope']\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("no set \"nope\""), "{e}");
        assert_eq!(e.exit_code(), 2);
        let e = parse(
            "f.toml",
            "suite='bookworm'\nmirror='http://m'\n[images.x]\npackages=['-o']\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid package name"), "{e}");
        let e = parse(
            "f.toml",
            "suite='bookworm'\nmirror='http://m'\n[images.X]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a valid image name"), "{e}");
        let e = parse(
            "f.toml",
            "suite='bookworm'\nmirror='http://m'\n[images.x]\nfoo=1\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("foo"), "{e}");
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let images = load(None).unwrap();
        let e = find(&images, "gcc-13:x86").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("base, "), "{e}");
    }

    #[test]
    fn the_hash_follows_the_packages_not_their_order() {
        let a = parse(
            "f",
            "suite='bookworm'\nmirror='http://m'\n[images.x]\npackages=['make','bc']\n",
        )
        .unwrap();
        let b = parse(
            "f",
            "suite='bookworm'\nmirror='http://n'\n[images.x]\npackages=['bc','make']\n",
        )
        .unwrap();
        let c = parse(
            "f",
            "suite='bookworm'\nmirror='http://m'\n[images.x]\npackages=['make']\n",
        )
        .unwrap();
        assert_eq!(a[0].definition, b[0].definition);
        assert_ne!(a[0].definition, c[0].definition);
    }
}
