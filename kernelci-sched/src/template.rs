//! Job definitions rendered with minijinja, the way upstream renders its Jinja2 job templates.
//!
//! [`Templates`] is a minijinja environment holding our templates (embedded in the binary from
//! `kernelci-sched/templates/`) plus optional operator directories searched first. A job's
//! `template` name is looked up as `<lab_type>/<name>` first, then as `<name>`, so
//! `kbuild.jinja2` for the `shell` runtime resolves to `shell/kbuild.jinja2`.
//!
//! The environment behaves like upstream's Jinja2 one: lenient undefined values, no
//! auto-escaping, Python string/dict methods (minijinja-contrib `pycompat`), and the globals
//! `kci_raise(msg)` (fails the render with `msg`) and `kci_yaml_dump(obj)`. We add the filter
//! `shell_quote`, which every template that writes a shell script must use for each value taken
//! from the context (a string becomes one single-quoted word, a list space-separated quoted
//! words, undefined/none `''`).
//!
//! [`JobContext`] builds the template variables of upstream's `Runtime.get_params`
//! (specs/pipeline.md §3.1).
//!
//! # Embedded templates for the `shell` runtime
//!
//! Both render to a bash script that the shell runtime runs as `bash job.sh` in a fresh job
//! directory (the current directory); results are files under `artifacts/`.
//!
//! `shell/kbuild.jinja2` builds a kernel. Inputs: `node.artifacts.tarball` (or
//! `node.debug.tarball`; http(s)://, file:// URL or absolute path of a tarball whose top
//! directory is stripped), `arch`, `compiler` (default `gcc`; `clang*` adds `LLVM=1`),
//! `cross_compile`, `cross_compile_compat`, `defconfig` (string, `a+b`, or list; default
//! `defconfig`), `fragments` and `fragment_configs` (a list of `{name, configs}` or a map
//! name -> `{configs}`), `make_target` (default image per arch), `jobs` (default `$(nproc)`).
//! Exit 0 = pass, 1 = build failure, 2 = infrastructure failure. Outputs: `build.log`,
//! `state.txt`, `fragments/<i>.config`, `.config`, the image (`bzImage`, `Image`, ...),
//! `vmlinux`, `modules.tar.xz` (only with `CONFIG_MODULES=y`) and `metadata.json`
//! (`{"build": {arch, compiler, defconfig, fragments, config_full, result}}`).
//!
//! `shell/baseline.jinja2` boots a kernel in QEMU under `timeout`. Inputs:
//! `node.artifacts.kernel`, `arch`, `ramdisk`, `qemu_bin`, `qemu_machine`, `qemu_append`,
//! `qemu_memory` (256), `boot_timeout` (60 s), `qemu_extra_args`. Exit 0 whenever QEMU ran
//! (even when the boot timeout expired), 2 = infrastructure failure. Outputs: `console.log`
//! and `qemu_status.txt` (`exit=<code>`, `timed_out=yes|no`).
//!
//! # Embedded templates for the `lava` runtime
//!
//! `lava/baseline.jinja2` renders a LAVA job definition (YAML) that boots
//! `node.artifacts.kernel` on `device_type` (QEMU with `boot_method: qemu`, the default;
//! tftp + the given boot method for boards), with the runtime's `priority` and `notify`
//! and a callback to `<instance_callback>/node/<node.id>`; `ramdisk`, `kernel_args`,
//! `boot_prompts`, `boot_timeout`, `job_timeout` and an optional interactive
//! `test_commands` list. Every value goes through `tojson` (JSON strings are YAML).
//!
//! The full contracts are at the top of each template file.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value as Json};

/// Templates compiled into the binary: (name, source).
pub const EMBEDDED_TEMPLATES: &[(&str, &str)] = &[
    (
        "shell/kbuild.jinja2",
        include_str!("../templates/shell/kbuild.jinja2"),
    ),
    (
        "shell/baseline.jinja2",
        include_str!("../templates/shell/baseline.jinja2"),
    ),
    (
        "lava/baseline.jinja2",
        include_str!("../templates/lava/baseline.jinja2"),
    ),
];

/// Errors from looking up or rendering a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// No template of that name, under any of the names tried.
    #[error("template not found: {name} (tried {})", tried.join(", "))]
    NotFound {
        /// The job's template name.
        name: String,
        /// The full names looked up, in order.
        tried: Vec<String>,
    },
    /// The template called `kci_raise(msg)`.
    #[error("template {template}{}: kci_raise: {message}", fmt_line(*line))]
    Raised {
        /// The template (or included template) that raised.
        template: String,
        /// Its line, when known.
        line: Option<usize>,
        /// The message given to `kci_raise`.
        message: String,
    },
    /// Syntax error, bad operation, unknown filter, ... while loading or rendering.
    #[error("template {template}{}: {message}", fmt_line(*line))]
    Render {
        /// The template (or included template) where the error happened.
        template: String,
        /// Its line, when known.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
}

fn fmt_line(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

/// Marker error attached as the source of a `kci_raise` error.
#[derive(Debug)]
struct KciRaise(String);

impl fmt::Display for KciRaise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KciRaise {}

fn convert_error(err: &Error, fallback_name: &str) -> TemplateError {
    // The innermost error with a location is the most precise (an include's own error).
    let mut best = err;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut raised: Option<String> = None;
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<KciRaise>() {
            raised = Some(r.0.clone());
        }
        if let Some(me) = e.downcast_ref::<Error>()
            && me.line().is_some()
        {
            best = me;
        }
        cur = e.source();
    }
    let template = best.name().unwrap_or(fallback_name).to_string();
    let line = best.line();
    if let Some(message) = raised {
        return TemplateError::Raised {
            template,
            line,
            message,
        };
    }
    let message = match best.detail() {
        Some(d) => format!("{}: {d}", best.kind()),
        None => best.kind().to_string(),
    };
    TemplateError::Render {
        template,
        line,
        message,
    }
}

/// Quotes `s` as one POSIX shell word (single quotes; `'` becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn quote_value(v: &Value) -> Result<String, Error> {
    let s = match v.kind() {
        ValueKind::Undefined | ValueKind::None => String::new(),
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => v.to_string(),
    };
    if s.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "shell_quote: a NUL byte cannot be passed to a shell",
        ));
    }
    Ok(shell_quote(&s))
}

/// The `shell_quote` filter: one quoted word, or quoted words joined by spaces for a list.
fn shell_quote_filter(v: &Value) -> Result<String, Error> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let mut words = Vec::new();
            for item in v.try_iter()? {
                words.push(quote_value(&item)?);
            }
            Ok(words.join(" "))
        }
        _ => quote_value(v),
    }
}

fn kci_raise(msg: Option<Value>) -> Result<Value, Error> {
    let msg = msg.map(|m| m.to_string()).unwrap_or_default();
    Err(Error::new(ErrorKind::InvalidOperation, msg.clone()).with_source(KciRaise(msg)))
}

fn kci_yaml_dump(obj: Value) -> Result<String, Error> {
    let json = value_to_json(&obj)?;
    serde_yaml_ng::to_string(&json)
        .map_err(|e| Error::new(ErrorKind::BadSerialization, format!("kci_yaml_dump: {e}")))
}

/// Converts a JSON value into a template value.
pub fn json_to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(a) => Value::from(a.iter().map(json_to_value).collect::<Vec<_>>()),
        Json::Object(o) => Value::from_pairs(o.iter().map(|(k, v)| (k.as_str(), json_to_value(v)))),
    }
}

/// Converts a template value back into JSON (undefined becomes null).
fn value_to_json(v: &Value) -> Result<Json, Error> {
    Ok(match v.kind() {
        ValueKind::Undefined | ValueKind::None => Json::Null,
        ValueKind::Bool => Json::Bool(v.is_true()),
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                Json::from(i)
            } else {
                let f = f64::try_from(v.clone())?;
                serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
            }
        }
        ValueKind::String => Json::String(v.as_str().unwrap_or_default().to_string()),
        ValueKind::Map => {
            let mut map = Map::new();
            for key in v.try_iter()? {
                let item = v.get_item(&key)?;
                let k = match key.as_str() {
                    Some(s) => s.to_string(),
                    None => key.to_string(),
                };
                map.insert(k, value_to_json(&item)?);
            }
            Json::Object(map)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let mut out = Vec::new();
            for item in v.try_iter()? {
                out.push(value_to_json(&item)?);
            }
            Json::Array(out)
        }
        _ => Json::String(v.to_string()),
    })
}

/// A name safe to join under a template directory: relative, no `..`.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    }
}

/// The job template environment: embedded templates plus operator directories.
pub struct Templates {
    env: Environment<'static>,
    dirs: Vec<PathBuf>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// The embedded templates only.
    pub fn new() -> Self {
        Self::with_dirs(Vec::<PathBuf>::new())
    }

    /// Embedded templates plus operator directories, searched first, in the given order.
    ///
    /// A file `<dir>/<name>` overrides the embedded template of the same name (for example
    /// `<dir>/shell/kbuild.jinja2`). Files are read when first used and then cached.
    pub fn with_dirs<I, P>(dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        let dirs: Vec<PathBuf> = dirs.into_iter().map(Into::into).collect();
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("kci_raise", kci_raise);
        env.add_function("kci_yaml_dump", kci_yaml_dump);
        env.add_filter("shell_quote", shell_quote_filter);
        let loader_dirs = dirs.clone();
        env.set_loader(move |name: &str| -> Result<Option<String>, Error> {
            if let Some(rel) = safe_relative(name) {
                for dir in &loader_dirs {
                    let path = dir.join(&rel);
                    if path.is_file() {
                        return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                            Error::new(
                                ErrorKind::TemplateNotFound,
                                format!("cannot read {}: {e}", path.display()),
                            )
                        });
                    }
                }
            }
            Ok(EMBEDDED_TEMPLATES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, src)| (*src).to_string()))
        });
        Self { env, dirs }
    }

    /// The operator directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The names tried for a job template `name` with a runtime of `lab_type`.
    pub fn candidates(lab_type: &str, name: &str) -> Vec<String> {
        if lab_type.is_empty() {
            vec![name.to_string()]
        } else {
            vec![format!("{lab_type}/{name}"), name.to_string()]
        }
    }

    /// The full name of the template used for `name` with a runtime of `lab_type`.
    pub fn resolve(&self, lab_type: &str, name: &str) -> Result<String, TemplateError> {
        let tried = Self::candidates(lab_type, name);
        for full in &tried {
            match self.env.get_template(full) {
                Ok(_) => return Ok(full.clone()),
                Err(e) if e.kind() == ErrorKind::TemplateNotFound => {}
                Err(e) => return Err(convert_error(&e, full)),
            }
        }
        Err(TemplateError::NotFound {
            name: name.to_string(),
            tried,
        })
    }

    /// Renders the job template `name` for a runtime of `lab_type` with `ctx` (a JSON object,
    /// usually from [`JobContext::build`]).
    pub fn render(&self, lab_type: &str, name: &str, ctx: &Json) -> Result<String, TemplateError> {
        let full = self.resolve(lab_type, name)?;
        self.render_named(&full, ctx)
    }

    /// Renders the template with exactly this full name (no runtime prefix is tried).
    pub fn render_named(&self, full_name: &str, ctx: &Json) -> Result<String, TemplateError> {
        let tmpl = self.env.get_template(full_name).map_err(|e| {
            if e.kind() == ErrorKind::TemplateNotFound && e.name().is_none() {
                TemplateError::NotFound {
                    name: full_name.to_string(),
                    tried: vec![full_name.to_string()],
                }
            } else {
                convert_error(&e, full_name)
            }
        })?;
        tmpl.render(json_to_value(ctx))
            .map_err(|e| convert_error(&e, full_name))
    }

    /// Renders a template given as source text (named `<string>` in errors).
    pub fn render_str(&self, source: &str, ctx: &Json) -> Result<String, TemplateError> {
        self.env
            .render_named_str("<string>", source, json_to_value(ctx))
            .map_err(|e| convert_error(&e, "<string>"))
    }
}

/// The names derived from an architecture (`brarch`, `crosarch`, `debarch`, `karch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchNames {
    /// Buildroot architecture.
    pub brarch: String,
    /// Cross-compiler architecture.
    pub crosarch: String,
    /// Debian architecture.
    pub debarch: String,
    /// Kernel architecture.
    pub karch: String,
}

impl ArchNames {
    /// Upstream's mapping tables (identity for everything not listed).
    pub fn from_arch(arch: &str) -> Self {
        let pick = |table: &[(&str, &str)]| {
            table
                .iter()
                .find(|(k, _)| *k == arch)
                .map_or(arch, |(_, v)| *v)
                .to_string()
        };
        Self {
            brarch: pick(&[("arm", "armel"), ("x86_64", "x86"), ("riscv64", "riscv")]),
            crosarch: pick(&[("arm", "armel")]),
            debarch: pick(&[("arm", "armhf"), ("riscv", "riscv64"), ("x86_64", "amd64")]),
            karch: pick(&[("armel", "arm"), ("x86_64", "x86")]),
        }
    }
}

/// Builder of the template context of a job (upstream `Runtime.get_params`).
///
/// Keys, in the order they are applied (later wins): `api_config`, `storage_config`,
/// `platform_config`, `instanceid`, `instance_callback`, `name`, `node`, `runtime`,
/// `runtime_image`, `device_type`; then the platform's `params`; then the job's `params`;
/// then `brarch`/`crosarch`/`debarch`/`karch` from `arch` (the merged `arch` parameter, else
/// `platform_config.arch`); then `fragment_configs`; then anything given to [`JobContext::set`].
#[derive(Debug, Clone, Default)]
pub struct JobContext {
    name: String,
    lab_type: String,
    node: Json,
    runtime_image: Option<String>,
    platform: Option<Json>,
    params: Map<String, Json>,
    fragment_configs: Option<Json>,
    api_config: Option<Json>,
    storage_config: Option<Json>,
    instanceid: Option<String>,
    instance_callback: Option<String>,
    extra: Map<String, Json>,
}

impl JobContext {
    /// A context for job `name` on a runtime whose `lab_type` is given (`shell`, `lava`, ...).
    pub fn new(name: impl Into<String>, lab_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            lab_type: lab_type.into(),
            node: Json::Object(Map::new()),
            ..Self::default()
        }
    }

    /// The job node (with its parent's artifacts merged in by the caller).
    pub fn node(mut self, node: Json) -> Self {
        self.node = node;
        self
    }

    /// The job image (after the `{image_prefix}` substitution).
    pub fn runtime_image(mut self, image: impl Into<String>) -> Self {
        self.runtime_image = Some(image.into());
        self
    }

    /// The platform configuration object; its `params` are merged before the job's.
    pub fn platform(mut self, platform_config: Json) -> Self {
        self.platform = Some(platform_config);
        self
    }

    /// The job's `params` (a JSON object; other values are ignored), merged over the
    /// platform's. May be called more than once; later keys win.
    pub fn params(mut self, params: Json) -> Self {
        if let Json::Object(m) = params {
            self.params.extend(m);
        }
        self
    }

    /// The fragment definitions (a list of `{name, configs}` or a map name -> `{configs}`).
    pub fn fragment_configs(mut self, fragments: Json) -> Self {
        self.fragment_configs = Some(fragments);
        self
    }

    /// The API configuration object (`name`, `url`, `version`, `timeout`).
    pub fn api_config(mut self, api: Json) -> Self {
        self.api_config = Some(api);
        self
    }

    /// The storage configuration object.
    pub fn storage_config(mut self, storage: Json) -> Self {
        self.storage_config = Some(storage);
        self
    }

    /// `instanceid` / `instance_callback` (upstream: env `KCI_INSTANCE`,
    /// `KCI_INSTANCE_CALLBACK`).
    pub fn instance(mut self, id: Option<String>, callback: Option<String>) -> Self {
        self.instanceid = id;
        self.instance_callback = callback;
        self
    }

    /// Any other variable, applied last.
    pub fn set(mut self, key: impl Into<String>, value: Json) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// The context as a JSON object.
    pub fn build(&self) -> Json {
        let mut m = Map::new();
        let obj_or_empty = |v: &Option<Json>| v.clone().unwrap_or_else(|| Json::Object(Map::new()));
        m.insert("api_config".into(), obj_or_empty(&self.api_config));
        m.insert("storage_config".into(), obj_or_empty(&self.storage_config));
        m.insert("platform_config".into(), obj_or_empty(&self.platform));
        m.insert("instanceid".into(), opt_str(&self.instanceid));
        m.insert("instance_callback".into(), opt_str(&self.instance_callback));
        m.insert("name".into(), Json::String(self.name.clone()));
        m.insert("node".into(), self.node.clone());
        m.insert("runtime".into(), Json::String(self.lab_type.clone()));
        m.insert("runtime_image".into(), opt_str(&self.runtime_image));
        let platform = self.platform.as_ref().and_then(Json::as_object);
        let device_type = platform
            .and_then(|p| {
                non_empty_str(p.get("base_name")).or_else(|| non_empty_str(p.get("name")))
            })
            .map_or(Json::Null, |s| Json::String(s.to_string()));
        m.insert("device_type".into(), device_type);
        if let Some(Json::Object(pp)) = platform.and_then(|p| p.get("params")) {
            m.extend(pp.clone());
        }
        m.extend(self.params.clone());
        let arch = non_empty_str(m.get("arch"))
            .or_else(|| platform.and_then(|p| non_empty_str(p.get("arch"))))
            .map(str::to_string);
        if let Some(arch) = arch {
            let names = ArchNames::from_arch(&arch);
            m.insert("brarch".into(), Json::String(names.brarch));
            m.insert("crosarch".into(), Json::String(names.crosarch));
            m.insert("debarch".into(), Json::String(names.debarch));
            m.insert("karch".into(), Json::String(names.karch));
        }
        if let Some(f) = &self.fragment_configs {
            m.insert("fragment_configs".into(), f.clone());
        }
        m.extend(self.extra.clone());
        Json::Object(m)
    }
}

fn opt_str(s: &Option<String>) -> Json {
    s.as_ref().map_or(Json::Null, |s| Json::String(s.clone()))
}

fn non_empty_str(v: Option<&Json>) -> Option<&str> {
    v.and_then(Json::as_str).filter(|s| !s.is_empty())
}
