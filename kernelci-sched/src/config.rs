//! The kernelci-pipeline YAML configuration: a folder of files merged as kernelci-core does,
//! then typed.
//!
//! Two steps:
//! 1. [`load_dir`] / [`load_files`] read YAML files (with [`crate::yaml`]) and merge their
//!    top-level keys like kernelci-core's `load_single_yaml`: a new key is set; an existing
//!    mapping is `update()`d (shallow: a second-level key from a later file replaces the earlier
//!    one); an existing list is extended; anything else is replaced. Files are taken in
//!    byte-wise order of their path relative to the folder (upstream uses `glob` order, which
//!    depends on the file system); paths containing `/debos/` are skipped. The `_sourced`
//!    variants also remember which file each entry came from, so that errors can name it.
//! 2. [`PipelineConfig`] types the sections the pipeline uses. Jobs are strict (unknown keys
//!    are an error, as upstream's pydantic model forbids them); other sections keep unknown
//!    keys and report them as warnings. Every problem names the file, the key path and what is
//!    wrong. Cross references (a scheduler entry's job, runtime, platforms; a job's fragments)
//!    are checked by [`PipelineConfig::validate`], which returns warnings: the upstream
//!    configuration itself has dangling references and must still load.

use crate::yaml::{self, YamlError};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One problem in the configuration: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file the entry came from, when known.
    pub file: Option<PathBuf>,
    /// Dotted key path, e.g. `jobs.kbuild-gcc-14-arm64.template` or `scheduler.12.job`.
    pub key_path: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: {}: {}", file.display(), self.key_path, self.problem),
            None => write!(f, "<config>: {}: {}", self.key_path, self.problem),
        }
    }
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblems(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid YAML (or not JSON-compatible data).
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// A file's data cannot be merged with the files before it.
    #[error("{}: {key}: {problem}", file.display())]
    Merge {
        /// The file.
        file: PathBuf,
        /// The top-level key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The merged data does not fit the configuration schema.
    #[error("invalid configuration:\n{0}")]
    Invalid(ConfigProblems),
}

impl ConfigError {
    /// The schema problems, if that is what this error is.
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Invalid(p) => &p.0,
            _ => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and merging

/// Which file each part of the merged data came from.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    files: Vec<PathBuf>,
    top: HashMap<String, usize>,
    second: HashMap<(String, String), usize>,
    items: HashMap<String, Vec<usize>>,
}

impl Origins {
    /// All files loaded, in load order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The file that defined the entry at `path` (top-level key, then a second-level key or,
    /// for a list such as `scheduler`, an index). The most precise known origin is returned.
    pub fn file_of(&self, path: &[&str]) -> Option<&Path> {
        let top = path.first()?;
        if let Some(second) = path.get(1) {
            if let Some(&i) = self.second.get(&(top.to_string(), second.to_string())) {
                return self.files.get(i).map(PathBuf::as_path);
            }
            if let (Some(list), Ok(idx)) = (self.items.get(*top), second.parse::<usize>())
                && let Some(&i) = list.get(idx)
            {
                return self.files.get(i).map(PathBuf::as_path);
            }
        }
        self.top
            .get(*top)
            .and_then(|&i| self.files.get(i))
            .map(PathBuf::as_path)
    }
}

/// Merged configuration data with the file each entry came from.
#[derive(Debug, Clone, Default)]
pub struct SourcedConfig {
    /// The merged data (a JSON object).
    pub value: Value,
    /// Where each entry came from.
    pub origins: Origins,
}

/// The `*.yaml` files under `dir` (recursive; paths containing `/debos/` and hidden entries
/// skipped), sorted byte-wise by their `/`-separated path relative to `dir`.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    walk(dir, "", &mut found, 0)?;
    found.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

fn walk(
    dir: &Path,
    rel: &str,
    out: &mut Vec<(String, PathBuf)>,
    depth: usize,
) -> Result<(), ConfigError> {
    if depth > 32 {
        return Ok(());
    }
    let io = |source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') {
            continue; // glob's `*` does not match hidden names
        }
        let path = entry.path();
        let rel_path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        // std::fs::metadata follows symbolic links, as glob does.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, &rel_path, out, depth + 1)?;
        } else if name.ends_with(".yaml") && !format!("/{rel_path}").contains("/debos/") {
            out.push((rel_path, path));
        }
    }
    Ok(())
}

/// Loads every YAML file under `dir` (see [`yaml_files`]) and merges them: the merged data.
pub fn load_dir(dir: &Path) -> Result<Value, ConfigError> {
    Ok(load_dir_sourced(dir)?.value)
}

/// [`load_dir`], remembering where each entry came from.
pub fn load_dir_sourced(dir: &Path) -> Result<SourcedConfig, ConfigError> {
    let files = yaml_files(dir)?;
    load_files_sourced(&files)
}

/// Loads the given YAML files in this order and merges them as [`load_dir`] does.
pub fn load_files<P: AsRef<Path>>(files: &[P]) -> Result<Value, ConfigError> {
    Ok(load_files_sourced(files)?.value)
}

/// [`load_files`], remembering where each entry came from.
pub fn load_files_sourced<P: AsRef<Path>>(files: &[P]) -> Result<SourcedConfig, ConfigError> {
    let mut merged = SourcedConfig {
        value: Value::Object(Map::new()),
        origins: Origins::default(),
    };
    for file in files {
        let file = file.as_ref();
        let data = yaml::from_path(file)?;
        merge_file(&mut merged, file, data)?;
    }
    Ok(merged)
}

/// Merges one file's data (`data`, loaded from `file`) into `into`, kernelci-core style.
/// An empty file (`null`) adds nothing; any other non-mapping document is an error.
pub fn merge_file(into: &mut SourcedConfig, file: &Path, data: Value) -> Result<(), ConfigError> {
    let fields = match data {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        other => {
            return Err(ConfigError::Merge {
                file: file.to_path_buf(),
                key: "top level".into(),
                problem: format!("expected a mapping, found {}", type_name(&other)),
            });
        }
    };
    let idx = into.origins.files.len();
    into.origins.files.push(file.to_path_buf());
    if !into.value.is_object() {
        into.value = Value::Object(Map::new());
    }
    let Value::Object(config) = &mut into.value else {
        return Ok(());
    };
    let origins = &mut into.origins;
    for (key, value) in fields {
        let mismatch = |found: &Value, expected: &str| ConfigError::Merge {
            file: file.to_path_buf(),
            key: key.clone(),
            problem: format!(
                "{} in this file but {expected} in an earlier file ({})",
                type_name(found),
                origins
                    .top
                    .get(&key)
                    .and_then(|&i| origins.files.get(i))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        };
        match config.get_mut(&key) {
            None => {
                record(origins, &key, &value, idx);
                origins.top.insert(key.clone(), idx);
                config.insert(key, value);
            }
            Some(Value::Object(existing)) => {
                let Value::Object(new) = value else {
                    return Err(mismatch(&value, "a mapping"));
                };
                for (k, v) in new {
                    origins.second.insert((key.clone(), k.clone()), idx);
                    existing.insert(k, v);
                }
            }
            Some(Value::Array(existing)) => {
                let Value::Array(new) = value else {
                    return Err(mismatch(&value, "a list"));
                };
                let list = origins.items.entry(key.clone()).or_default();
                list.extend(std::iter::repeat_n(idx, new.len()));
                existing.extend(new);
            }
            Some(slot) => {
                origins.second.retain(|(top, _), _| *top != key);
                origins.items.remove(&key);
                record(origins, &key, &value, idx);
                origins.top.insert(key.clone(), idx);
                *slot = value;
            }
        }
    }
    Ok(())
}

fn record(origins: &mut Origins, key: &str, value: &Value, idx: usize) {
    match value {
        Value::Object(m) => {
            for k in m.keys() {
                origins.second.insert((key.to_string(), k.clone()), idx);
            }
        }
        Value::Array(a) => {
            origins.items.insert(key.to_string(), vec![idx; a.len()]);
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

// ---------------------------------------------------------------------------------------------
// Typed configuration

/// `api.<name>`: a Maestro API instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// The entry's name.
    pub name: String,
    /// Base URL.
    pub url: String,
    /// API version path component (default `latest`).
    pub version: String,
    /// Request timeout in seconds (default 60).
    pub timeout: u64,
}

/// `storage.<name>`: where artifacts are uploaded.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// The entry's name.
    pub name: String,
    /// Upstream's `ssh`, `backend` or `azure` (Azure Files: `share`), or an object store of
    /// ours: `s3` (also S3-compatible servers), `azure` with `container` (Azure Blob), `gcs`.
    pub storage_type: String,
    /// Public base URL of stored files.
    pub base_url: Option<String>,
    /// The type-specific keys (`host`, `port`, `api_url`, `bucket`, `prefix`, `region`,
    /// `endpoint`, ...), as written; never credentials (those are in the settings file).
    pub fields: Map<String, Value>,
}

/// `runtimes.<name>`: where jobs run.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// The entry's name.
    pub name: String,
    /// `lava`, `kubernetes`, `docker`, `shell`, `pull_labs`, ...
    pub lab_type: String,
    /// Rules evaluated on each candidate node (§2.10), `None` when absent.
    pub rules: Option<Value>,
    /// The type-specific keys (`url`, `priority_min`, `notify`, `context`, ...), as written.
    pub fields: Map<String, Value>,
}

/// `trees.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeConfig {
    /// The entry's name.
    pub name: String,
    /// Git URL.
    pub url: String,
    /// Ours: bisect new regressions of this tree automatically (`bisect: true`, or
    /// `bisect: {repeat: N}` for N runs of the test per commit, 1 to 10).
    pub bisect: Option<BisectPolicy>,
}

/// `trees.<name>.bisect`: automatic bisection of the tree's new regressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BisectPolicy {
    /// Runs of the test per tested commit.
    pub repeat: u64,
}

/// `build_configs.<name>`: a tree and branch to monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildConfig {
    /// The entry's name.
    pub name: String,
    /// Tree name (a key of `trees`).
    pub tree: String,
    /// Branch name (or an http URL of a NIPA branch list).
    pub branch: String,
    /// Architectures to build, when restricted.
    pub architectures: Option<Vec<String>>,
    /// Minimum interval between checkouts (`1d12h`).
    pub frequency: Option<String>,
    /// `high`, `medium` or `low`.
    pub priority: Option<String>,
    /// Other keys (legacy `variants`, `reference`, ...), as written.
    pub extra: Map<String, Value>,
}

/// A job or runtime priority: a name or a number from 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// `low` (0).
    Low,
    /// `medium` (50).
    Medium,
    /// `high` (100).
    High,
    /// A number from 0 to 100.
    Number(u8),
}

impl Priority {
    /// The numeric priority (low 0, medium 50, high 100).
    pub fn value(self) -> u8 {
        match self {
            Priority::Low => 0,
            Priority::Medium => 50,
            Priority::High => 100,
            Priority::Number(n) => n,
        }
    }
}

/// `jobs.<name>`: what to run (strict: unknown keys are an error).
#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    /// The job's name (also the node name).
    pub name: String,
    /// Jinja2 template file name.
    pub template: String,
    /// Node kind: `kbuild`, `job`, `test`, `process` (default `node`).
    pub kind: String,
    /// Base name override.
    pub base_name: Option<String>,
    /// Container image (may contain `{image_prefix}`).
    pub image: Option<String>,
    /// Free parameters passed to the template.
    pub params: Map<String, Value>,
    /// Rules evaluated on the candidate node (§2.10).
    pub rules: Option<Value>,
    /// KCIDB test path prefix.
    pub kcidb_test_suite: Option<String>,
    /// Priority.
    pub priority: Option<Priority>,
}

/// A platform's `dtb`: one path or several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dtb {
    /// One device tree path.
    One(String),
    /// Several device tree paths.
    Many(Vec<String>),
}

impl Dtb {
    /// The paths as a list.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Dtb::One(s) => vec![s.as_str()],
            Dtb::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// `platforms.<name>`: a device type (or `docker`/`kubernetes`/`shell` for non-LAVA runtimes).
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformConfig {
    /// The platform's name.
    pub name: String,
    /// Architecture (default `x86_64`).
    pub arch: String,
    /// LAVA device type override.
    pub base_name: Option<String>,
    /// Boot method (default `grub`).
    pub boot_method: String,
    /// Machine family (default `x86`).
    pub mach: String,
    /// LAVA job context.
    pub context: Map<String, Value>,
    /// Device tree compatible strings.
    pub compatible: Vec<String>,
    /// Device tree blob(s).
    pub dtb: Option<Dtb>,
    /// Flash image.
    pub flash_image: Option<String>,
    /// Free parameters.
    pub params: Map<String, Value>,
    /// Rules evaluated on the candidate node (§2.10).
    pub rules: Option<Value>,
    /// Keys not listed above, as written (reported by `validate`).
    pub extra: Map<String, Value>,
}

/// A scheduler entry's runtime selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeSelector {
    /// A runtime by name (wins over `type`).
    pub name: Option<String>,
    /// Any runtime of this `lab_type`.
    pub lab_type: Option<String>,
}

/// One `scheduler` entry: when an event matches, run a job.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerEntry {
    /// Position in the merged `scheduler` list.
    pub index: usize,
    /// Job name.
    pub job: String,
    /// Event pattern, including `channel`.
    pub event: Map<String, Value>,
    /// Runtime by name or type.
    pub runtime: RuntimeSelector,
    /// Platforms; `None` means `[runtime lab_type]`.
    pub platforms: Option<Vec<String>>,
    /// Rules evaluated on the input (parent) node.
    pub rules: Option<Value>,
}

/// `fragments.<name>`: kernel config fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct FragmentConfig {
    /// The fragment's name.
    pub name: String,
    /// File name label.
    pub path: String,
    /// `CONFIG_X=y` lines.
    pub configs: Vec<String>,
    /// Extra defconfig target.
    pub defconfig: Option<String>,
}

/// The typed pipeline configuration.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    /// `api`.
    pub api: BTreeMap<String, ApiConfig>,
    /// `storage` (or legacy `storage_configs`).
    pub storage: BTreeMap<String, StorageConfig>,
    /// `runtimes`.
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    /// `trees`.
    pub trees: BTreeMap<String, TreeConfig>,
    /// `build_configs`.
    pub build_configs: BTreeMap<String, BuildConfig>,
    /// `jobs`.
    pub jobs: BTreeMap<String, JobConfig>,
    /// `platforms`.
    pub platforms: BTreeMap<String, PlatformConfig>,
    /// `scheduler`, in file order.
    pub scheduler: Vec<SchedulerEntry>,
    /// `fragments`.
    pub fragments: BTreeMap<String, FragmentConfig>,
    /// `rootfs.<ref>`: the keys copied into job params.
    pub rootfs: BTreeMap<String, Map<String, Value>>,
    /// The whole merged data (other sections, e.g. `hardware_registry`, live here only).
    pub raw: Value,
    origins: Origins,
    notes: Vec<ConfigProblem>,
}

const JOB_KEYS: &[&str] = &[
    "template",
    "kind",
    "base_name",
    "image",
    "params",
    "rules",
    "kcidb_test_suite",
    "priority",
];

const KNOWN_TOP: &[&str] = &[
    "api",
    "storage",
    "storage_configs",
    "runtimes",
    "trees",
    "build_configs",
    "build_configs_defaults",
    "default_filters",
    "build_environments",
    "build_variants",
    "jobs",
    "platforms",
    "scheduler",
    "fragments",
    "rootfs",
    "hardware_registry",
];

impl PipelineConfig {
    /// Loads and types every YAML file under `dir` (see [`load_dir`]).
    pub fn load_dir(dir: &Path) -> Result<Self, ConfigError> {
        Self::from_sourced(&load_dir_sourced(dir)?)
    }

    /// Loads and types the given files, merged in this order.
    pub fn load_files<P: AsRef<Path>>(files: &[P]) -> Result<Self, ConfigError> {
        Self::from_sourced(&load_files_sourced(files)?)
    }

    /// Types one YAML text (`file` names it in errors).
    pub fn from_yaml_str(text: &str, file: &str) -> Result<Self, ConfigError> {
        let data = yaml::from_str(text, file)?;
        let mut sourced = SourcedConfig::default();
        merge_file(&mut sourced, Path::new(file), data)?;
        Self::from_sourced(&sourced)
    }

    /// Types merged data whose origin is unknown (errors name `<config>`).
    pub fn from_value(value: &Value) -> Result<Self, ConfigError> {
        Self::from_sourced(&SourcedConfig {
            value: value.clone(),
            origins: Origins::default(),
        })
    }

    /// Types merged data; errors name the file each entry came from.
    pub fn from_sourced(src: &SourcedConfig) -> Result<Self, ConfigError> {
        let mut p = Parser {
            origins: &src.origins,
            errors: Vec::new(),
            notes: Vec::new(),
        };
        let mut cfg = PipelineConfig {
            raw: src.value.clone(),
            origins: src.origins.clone(),
            ..Default::default()
        };
        let Some(top) = src.value.as_object() else {
            if src.value.is_null() {
                return Ok(cfg);
            }
            p.error(
                &[],
                format!("expected a mapping, found {}", type_name(&src.value)),
            );
            return Err(ConfigError::Invalid(ConfigProblems(p.errors)));
        };
        for key in top.keys() {
            if !KNOWN_TOP.contains(&key.as_str()) && !key.starts_with("_anchors") {
                p.note(&[key], "unknown top-level key (ignored)".into());
            }
        }
        cfg.api = p.section(top, "api", parse_api);
        cfg.storage = p.section(top, "storage_configs", parse_storage);
        cfg.storage.extend(p.section(top, "storage", parse_storage));
        cfg.runtimes = p.section(top, "runtimes", parse_runtime);
        cfg.trees = p.section(top, "trees", parse_tree);
        cfg.build_configs = p.section(top, "build_configs", parse_build_config);
        cfg.jobs = p.section(top, "jobs", parse_job);
        cfg.platforms = p.section(top, "platforms", parse_platform);
        // Scheduler entries without `platforms` run on the platform named after the
        // runtime's lab_type; upstream's platforms.yaml declares these as empty entries, a
        // config of our own should not have to.
        let runtime_types: Vec<String> = cfg
            .runtimes
            .values()
            .map(|r| r.lab_type.clone())
            .filter(|t| matches!(t.as_str(), "shell" | "docker" | "kubernetes"))
            .collect();
        for lab_type in runtime_types {
            if !cfg.platforms.contains_key(&lab_type)
                && let Some(pc) =
                    parse_platform(&mut p, &["platforms", &lab_type], &lab_type, &Value::Null)
            {
                cfg.platforms.insert(lab_type, pc);
            }
        }
        cfg.fragments = p.section(top, "fragments", parse_fragment);
        cfg.rootfs = p.section(top, "rootfs", |p, path, _name, v| {
            p.object(path, v).cloned()
        });
        match top.get("scheduler") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let idx = i.to_string();
                    if let Some(e) = parse_scheduler_entry(&mut p, &["scheduler", &idx], i, item) {
                        cfg.scheduler.push(e);
                    }
                }
            }
            Some(other) => p.error(
                &["scheduler"],
                format!("expected a list, found {}", type_name(other)),
            ),
        }
        if !p.errors.is_empty() {
            return Err(ConfigError::Invalid(ConfigProblems(p.errors)));
        }
        cfg.notes = p.notes;
        Ok(cfg)
    }

    /// The file an entry came from (see [`Origins::file_of`]).
    pub fn file_of(&self, path: &[&str]) -> Option<&Path> {
        self.origins.file_of(path)
    }

    /// The raw `fragments` section (what the scheduler resolves `params.fragments` against).
    pub fn raw_section(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }

    /// Warnings: dangling cross references (scheduler job, runtime name or type, platforms;
    /// job fragments and `rootfs_ref`), rule shapes that cannot work, entries the upstream
    /// validator rejects, and keys that are ignored. The upstream configuration has some of
    /// these, so they do not stop loading; print them.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = self.notes.clone();
        let mut warn = |path: &[&str], problem: String| {
            out.push(ConfigProblem {
                file: self.origins.file_of(path).map(Path::to_path_buf),
                key_path: path.join("."),
                problem,
            });
        };
        let lab_types: Vec<&str> = self
            .runtimes
            .values()
            .map(|r| r.lab_type.as_str())
            .collect();
        for e in &self.scheduler {
            let idx = e.index.to_string();
            let base = ["scheduler", idx.as_str()];
            let job = self.jobs.get(&e.job);
            if job.is_none() {
                warn(
                    &[&base[..], &["job"]].concat(),
                    format!("unknown job `{}`", e.job),
                );
            }
            for k in ["channel", "kind", "state"] {
                if !e.event.contains_key(k) {
                    warn(&[&base[..], &["event"]].concat(), format!("missing `{k}`"));
                }
            }
            match (&e.runtime.name, &e.runtime.lab_type) {
                (Some(n), _) if !self.runtimes.contains_key(n) => warn(
                    &[&base[..], &["runtime", "name"]].concat(),
                    format!("unknown runtime `{n}`"),
                ),
                (None, Some(t)) if !lab_types.contains(&t.as_str()) => warn(
                    &[&base[..], &["runtime", "type"]].concat(),
                    format!("no runtime has lab_type `{t}`"),
                ),
                (None, None) => warn(
                    &[&base[..], &["runtime"]].concat(),
                    "neither `name` nor `type` given".into(),
                ),
                _ => {}
            }
            if let Some(platforms) = &e.platforms {
                for (i, name) in platforms.iter().enumerate() {
                    if !self.platforms.contains_key(name) {
                        warn(
                            &[&base[..], &["platforms", &i.to_string()]].concat(),
                            format!("unknown platform `{name}`"),
                        );
                    }
                }
                if job.is_some_and(|j| j.kind == "kbuild") {
                    warn(
                        &[&base[..], &["platforms"]].concat(),
                        "kbuild entries must not list platforms".into(),
                    );
                }
            }
            check_rules(
                &mut warn,
                &[&base[..], &["rules"]].concat(),
                e.rules.as_ref(),
            );
        }
        for (name, job) in &self.jobs {
            let base = ["jobs", name.as_str()];
            check_rules(
                &mut warn,
                &[&base[..], &["rules"]].concat(),
                job.rules.as_ref(),
            );
            if let Some(frags) = job.params.get("fragments") {
                let list: Vec<&Value> = match frags {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for (i, f) in list.into_iter().enumerate() {
                    let idx = i.to_string();
                    let path = [&base[..], &["params", "fragments", idx.as_str()]].concat();
                    match f.as_str() {
                        None => warn(&path, format!("expected a string, found {}", type_name(f))),
                        Some(s)
                            if s.starts_with("CONFIG_")
                                || s.contains("://")
                                || self.fragments.contains_key(s) => {}
                        Some(s) => warn(&path, format!("unknown fragment `{s}`")),
                    }
                }
            }
            if let Some(f) = job.params.get("frequency")
                && f.as_str()
                    .and_then(crate::matching::parse_frequency)
                    .is_none()
            {
                warn(
                    &[&base[..], &["params", "frequency"]].concat(),
                    format!("`{f}` is not a frequency of a minute or more ([Nd][Nh][Nm]); ignored"),
                );
            }
            if let Some(r) = job.params.get("rootfs_ref").and_then(Value::as_str)
                && !self.rootfs.contains_key(r)
            {
                warn(
                    &[&base[..], &["params", "rootfs_ref"]].concat(),
                    format!("unknown rootfs `{r}`"),
                );
            }
        }
        for (name, rt) in &self.runtimes {
            check_rules(&mut warn, &["runtimes", name, "rules"], rt.rules.as_ref());
        }
        for (name, pf) in &self.platforms {
            check_rules(&mut warn, &["platforms", name, "rules"], pf.rules.as_ref());
            for key in pf.extra.keys() {
                warn(
                    &["platforms", name, key],
                    "unknown platform key (kept in `extra`)".into(),
                );
            }
        }
        out
    }
}

/// Warns about rule values the evaluator cannot use as intended.
fn check_rules(warn: &mut impl FnMut(&[&str], String), path: &[&str], rules: Option<&Value>) {
    let Some(Value::Object(rules)) = rules else {
        return;
    };
    for (key, value) in rules {
        let p = [path, &[key.as_str()]].concat();
        if key.ends_with("_version") {
            let ok = value.get("version").is_some_and(Value::is_i64)
                && value.get("patchlevel").is_some_and(Value::is_i64);
            if !ok {
                warn(&p, "expected {version: <int>, patchlevel: <int>}".into());
            }
            if !key.starts_with("min") && !key.starts_with("max") {
                warn(
                    &p,
                    "a `*_version` rule other than min_/max_ is never checked".into(),
                );
            }
        } else {
            match value {
                Value::Array(a) if a.iter().all(Value::is_string) => {}
                Value::Array(_) => warn(&p, "expected a list of strings".into()),
                Value::String(_) => warn(&p, "a single string is read as a one-item list".into()),
                other => warn(
                    &p,
                    format!("expected a list of strings, found {}", type_name(other)),
                ),
            }
        }
    }
}

struct Parser<'a> {
    origins: &'a Origins,
    errors: Vec<ConfigProblem>,
    notes: Vec<ConfigProblem>,
}

impl Parser<'_> {
    fn problem(&self, path: &[&str], problem: String) -> ConfigProblem {
        ConfigProblem {
            file: self.origins.file_of(path).map(Path::to_path_buf),
            key_path: if path.is_empty() {
                "top level".into()
            } else {
                path.join(".")
            },
            problem,
        }
    }

    fn error(&mut self, path: &[&str], problem: String) {
        let p = self.problem(path, problem);
        self.errors.push(p);
    }

    fn note(&mut self, path: &[&str], problem: String) {
        let p = self.problem(path, problem);
        self.notes.push(p);
    }

    /// A section that is a mapping of named entries.
    fn section<T>(
        &mut self,
        top: &Map<String, Value>,
        key: &str,
        mut parse: impl FnMut(&mut Self, &[&str], &str, &Value) -> Option<T>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        match top.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                for (name, v) in entries {
                    if let Some(t) = parse(self, &[key, name], name, v) {
                        out.insert(name.clone(), t);
                    }
                }
            }
            Some(other) => {
                self.error(
                    &[key],
                    format!("expected a mapping, found {}", type_name(other)),
                );
            }
        }
        out
    }

    fn object<'v>(&mut self, path: &[&str], v: &'v Value) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.error(
                    path,
                    format!("expected a mapping, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An optional string field (`null` counts as absent).
    fn opt_str(&mut self, path: &[&str], m: &Map<String, Value>, key: &str) -> Option<String> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.error(
                    &[path, &[key]].concat(),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn req_str(&mut self, path: &[&str], m: &Map<String, Value>, key: &str) -> Option<String> {
        if m.get(key).is_none_or(Value::is_null) {
            self.error(&[path, &[key]].concat(), "required key missing".into());
            return None;
        }
        self.opt_str(path, m, key)
    }

    fn opt_str_list(
        &mut self,
        path: &[&str],
        m: &Map<String, Value>,
        key: &str,
    ) -> Option<Vec<String>> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.error(
                            &[path, &[key, &i.to_string()]].concat(),
                            format!("expected a string, found {}", type_name(other)),
                        ),
                    }
                }
                Some(out)
            }
            Some(other) => {
                self.error(
                    &[path, &[key]].concat(),
                    format!("expected a list of strings, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An optional mapping field (`null` or absent gives an empty map).
    fn opt_map(&mut self, path: &[&str], m: &Map<String, Value>, key: &str) -> Map<String, Value> {
        match m.get(key) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(other) => {
                self.error(
                    &[path, &[key]].concat(),
                    format!("expected a mapping, found {}", type_name(other)),
                );
                Map::new()
            }
        }
    }

    /// `rules`: a mapping or null.
    fn rules(&mut self, path: &[&str], m: &Map<String, Value>) -> Option<Value> {
        match m.get("rules") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(other) => {
                self.error(
                    &[path, &["rules"]].concat(),
                    format!("expected a mapping, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn priority(&mut self, path: &[&str], m: &Map<String, Value>) -> Option<Priority> {
        let p = [path, &["priority"]].concat();
        match m.get("priority") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match s.as_str() {
                "low" => Some(Priority::Low),
                "medium" => Some(Priority::Medium),
                "high" => Some(Priority::High),
                _ => {
                    self.error(
                        &p,
                        format!("expected low, medium, high or 0..100, found `{s}`"),
                    );
                    None
                }
            },
            Some(Value::Number(n)) => match n.as_u64().filter(|n| *n <= 100) {
                Some(n) => u8::try_from(n).ok().map(Priority::Number),
                None => {
                    self.error(&p, format!("expected a number from 0 to 100, found {n}"));
                    None
                }
            },
            Some(other) => {
                self.error(
                    &p,
                    format!(
                        "expected low, medium, high or 0..100, found {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }
}

/// The keys of `m` not in `known`, as written.
fn extra(m: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn parse_api(p: &mut Parser<'_>, path: &[&str], name: &str, v: &Value) -> Option<ApiConfig> {
    let m = p.object(path, v)?;
    let url = p.req_str(path, m, "url");
    let version = p
        .opt_str(path, m, "version")
        .unwrap_or_else(|| "latest".into());
    let timeout = match m.get("timeout") {
        None | Some(Value::Null) => 60,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(60),
        Some(other) => {
            p.error(
                &[path, &["timeout"]].concat(),
                format!("expected a number of seconds, found {other}"),
            );
            60
        }
    };
    Some(ApiConfig {
        name: name.into(),
        url: url?,
        version,
        timeout,
    })
}

fn parse_storage(
    p: &mut Parser<'_>,
    path: &[&str],
    name: &str,
    v: &Value,
) -> Option<StorageConfig> {
    let m = p.object(path, v)?;
    let storage_type = p.req_str(path, m, "storage_type");
    let base_url = p.opt_str(path, m, "base_url");
    let fields = extra(m, &["storage_type", "base_url"]);
    Some(StorageConfig {
        name: name.into(),
        storage_type: storage_type?,
        base_url,
        fields,
    })
}

fn parse_runtime(
    p: &mut Parser<'_>,
    path: &[&str],
    name: &str,
    v: &Value,
) -> Option<RuntimeConfig> {
    let m = p.object(path, v)?;
    let lab_type = p.req_str(path, m, "lab_type");
    let rules = p.rules(path, m);
    let fields = extra(m, &["lab_type", "rules"]);
    Some(RuntimeConfig {
        name: name.into(),
        lab_type: lab_type?,
        rules,
        fields,
    })
}

fn parse_tree(p: &mut Parser<'_>, path: &[&str], name: &str, v: &Value) -> Option<TreeConfig> {
    let m = p.object(path, v)?;
    let url = p.req_str(path, m, "url")?;
    let bisect = match m.get("bisect") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(BisectPolicy { repeat: 3 }),
        Some(Value::Object(b)) => match b.get("repeat") {
            None => Some(BisectPolicy { repeat: 3 }),
            Some(r) => match r.as_u64().filter(|n| (1..=10).contains(n)) {
                Some(repeat) => Some(BisectPolicy { repeat }),
                None => {
                    p.error(
                        &[path, &["bisect", "repeat"]].concat(),
                        format!("expected a number from 1 to 10, found {r}"),
                    );
                    None
                }
            },
        },
        Some(other) => {
            p.error(
                &[path, &["bisect"]].concat(),
                format!(
                    "expected true, false or {{repeat: N}}, found {}",
                    type_name(other)
                ),
            );
            None
        }
    };
    Some(TreeConfig {
        name: name.into(),
        url,
        bisect,
    })
}

fn parse_build_config(
    p: &mut Parser<'_>,
    path: &[&str],
    name: &str,
    v: &Value,
) -> Option<BuildConfig> {
    let m = p.object(path, v)?;
    let tree = p.req_str(path, m, "tree");
    let branch = p.req_str(path, m, "branch");
    let architectures = p.opt_str_list(path, m, "architectures");
    let frequency = p.opt_str(path, m, "frequency");
    let priority = p.opt_str(path, m, "priority");
    let extra = extra(
        m,
        &["tree", "branch", "architectures", "frequency", "priority"],
    );
    Some(BuildConfig {
        name: name.into(),
        tree: tree?,
        branch: branch?,
        architectures,
        frequency,
        priority,
        extra,
    })
}

fn parse_job(p: &mut Parser<'_>, path: &[&str], name: &str, v: &Value) -> Option<JobConfig> {
    let m = p.object(path, v)?;
    let mut ok = true;
    for key in m.keys() {
        if !JOB_KEYS.contains(&key.as_str()) {
            p.error(
                &[path, &[key.as_str()]].concat(),
                format!("unknown key (a job has only: {})", JOB_KEYS.join(", ")),
            );
            ok = false;
        }
    }
    let template = p.req_str(path, m, "template");
    let kind = p.opt_str(path, m, "kind").unwrap_or_else(|| "node".into());
    let base_name = p.opt_str(path, m, "base_name");
    let image = p.opt_str(path, m, "image");
    let params = p.opt_map(path, m, "params");
    let rules = p.rules(path, m);
    let kcidb_test_suite = p.opt_str(path, m, "kcidb_test_suite");
    let priority = p.priority(path, m);
    if !ok {
        return None;
    }
    Some(JobConfig {
        name: name.into(),
        template: template?,
        kind,
        base_name,
        image,
        params,
        rules,
        kcidb_test_suite,
        priority,
    })
}

const PLATFORM_KEYS: &[&str] = &[
    "arch",
    "base_name",
    "boot_method",
    "mach",
    "context",
    "compatible",
    "dtb",
    "flash_image",
    "params",
    "rules",
];

fn parse_platform(
    p: &mut Parser<'_>,
    path: &[&str],
    name: &str,
    v: &Value,
) -> Option<PlatformConfig> {
    let empty = Map::new();
    let m = match v {
        // `docker:`, `kubernetes:`, `shell:`: all defaults.
        Value::Null => &empty,
        v => p.object(path, v)?,
    };
    let dtb = match m.get("dtb") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Dtb::One(s.clone())),
        Some(Value::Array(_)) => p.opt_str_list(path, m, "dtb").map(Dtb::Many),
        Some(other) => {
            p.error(
                &[path, &["dtb"]].concat(),
                format!(
                    "expected a string or a list of strings, found {}",
                    type_name(other)
                ),
            );
            None
        }
    };
    Some(PlatformConfig {
        name: name.into(),
        arch: p
            .opt_str(path, m, "arch")
            .unwrap_or_else(|| "x86_64".into()),
        base_name: p.opt_str(path, m, "base_name"),
        boot_method: p
            .opt_str(path, m, "boot_method")
            .unwrap_or_else(|| "grub".into()),
        mach: p.opt_str(path, m, "mach").unwrap_or_else(|| "x86".into()),
        context: p.opt_map(path, m, "context"),
        compatible: p.opt_str_list(path, m, "compatible").unwrap_or_default(),
        dtb,
        flash_image: p.opt_str(path, m, "flash_image"),
        params: p.opt_map(path, m, "params"),
        rules: p.rules(path, m),
        extra: extra(m, PLATFORM_KEYS),
    })
}

fn parse_fragment(
    p: &mut Parser<'_>,
    path: &[&str],
    name: &str,
    v: &Value,
) -> Option<FragmentConfig> {
    let m = p.object(path, v)?;
    let frag_path = p.req_str(path, m, "path");
    let configs = p.opt_str_list(path, m, "configs").unwrap_or_default();
    let defconfig = p.opt_str(path, m, "defconfig");
    for key in m.keys() {
        if !["path", "configs", "defconfig"].contains(&key.as_str()) {
            p.note(
                &[path, &[key.as_str()]].concat(),
                "unknown fragment key (ignored)".into(),
            );
        }
    }
    Some(FragmentConfig {
        name: name.into(),
        path: frag_path?,
        configs,
        defconfig,
    })
}

fn parse_scheduler_entry(
    p: &mut Parser<'_>,
    path: &[&str],
    index: usize,
    v: &Value,
) -> Option<SchedulerEntry> {
    let m = p.object(path, v)?;
    let job = p.req_str(path, m, "job");
    let event = match m.get("event") {
        Some(Value::Object(e)) => Some(e.clone()),
        None | Some(Value::Null) => {
            p.error(&[path, &["event"]].concat(), "required key missing".into());
            None
        }
        Some(other) => {
            p.error(
                &[path, &["event"]].concat(),
                format!("expected a mapping, found {}", type_name(other)),
            );
            None
        }
    };
    let runtime = match m.get("runtime") {
        Some(Value::Object(r)) => {
            let rpath = [path, &["runtime"]].concat();
            for key in r.keys() {
                if key != "name" && key != "type" {
                    p.note(
                        &[&rpath[..], &[key.as_str()]].concat(),
                        "unknown key (ignored)".into(),
                    );
                }
            }
            Some(RuntimeSelector {
                name: p.opt_str(&rpath, r, "name"),
                lab_type: p.opt_str(&rpath, r, "type"),
            })
        }
        None | Some(Value::Null) => {
            p.error(
                &[path, &["runtime"]].concat(),
                "required key missing".into(),
            );
            None
        }
        Some(other) => {
            p.error(
                &[path, &["runtime"]].concat(),
                format!("expected a mapping, found {}", type_name(other)),
            );
            None
        }
    };
    let platforms = p.opt_str_list(path, m, "platforms");
    let rules = p.rules(path, m);
    for key in m.keys() {
        if !["job", "event", "runtime", "platforms", "rules"].contains(&key.as_str()) {
            p.note(
                &[path, &[key.as_str()]].concat(),
                "unknown key (ignored)".into(),
            );
        }
    }
    Some(SchedulerEntry {
        index,
        job: job?,
        event: event?,
        runtime: runtime?,
        platforms,
        rules,
    })
}
