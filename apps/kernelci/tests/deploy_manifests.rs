//! The deployment files in `deploy/` against the real binary: every `kernelci ...` command
//! line of `docker-compose.yaml` (compose `command`/`entrypoint`) and of the manifests in
//! `deploy/kubernetes/` (container `command`/`args`) names a subcommand that exists, and
//! every `--flag` it uses and every `KERNELCI_*`/`KCI_*`/`KCIDB_*` variable it gets appears
//! in that subcommand's `--help`. Health checks and probes hit an endpoint the role serves on
//! the port it listens on; every Deployment has readiness and liveness probes, every Service
//! selects a Deployment, every Ingress backend is a Service, and the ConfigMap's pipeline
//! configuration loads with `kernelci pipeline check`.
//!
//! YAML is read with `kernelci_sched::yaml` (serde_yaml_ng with merge keys applied, as
//! compose applies `<<: *anchor`); multi-document files are split on `---` lines.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Variables the binary reads directly (not clap options), documented in README.md.
const DIRECT_ENV: [&str; 5] = [
    "KERNELCI_LOG",
    "KERNELCI_STORAGE_CREDENTIAL",
    "KCI_INITIAL_ADMIN_USERNAME",
    "KCI_INITIAL_ADMIN_EMAIL",
    "KCI_INITIAL_PASSWORD",
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The documents of a YAML file (split on `---` lines; empty ones dropped).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut docs = Vec::new();
    let mut current = String::new();
    let name = path.display().to_string();
    let mut flush = |current: &mut String| {
        let doc = kernelci_sched::yaml::from_str(current, &name)
            .unwrap_or_else(|e| panic!("not valid YAML: {e}"));
        if !doc.is_null() {
            docs.push(doc);
        }
        current.clear();
    };
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    docs
}

/// One `kernelci` invocation found in a file.
#[derive(Debug, Clone)]
struct Invocation {
    /// Where it was found (file and service/container), for messages.
    place: String,
    /// The arguments after `kernelci`.
    args: Vec<String>,
    /// Names of the environment variables the container gets.
    env: Vec<String>,
    /// The health check URL path and port (`/latest`, 8001), when there is one.
    probes: Vec<(String, Option<u16>)>,
}

/// `kernelci --help` texts, one run of the binary per subcommand.
struct Helps(RefCell<HashMap<Vec<String>, Result<String, String>>>);

impl Helps {
    fn new() -> Helps {
        Helps(RefCell::new(HashMap::new()))
    }

    fn help(&self, sub: &[String]) -> Result<String, String> {
        if let Some(h) = self.0.borrow().get(sub) {
            return h.clone();
        }
        let out = Command::new(env!("CARGO_BIN_EXE_kernelci"))
            .args(sub)
            .arg("--help")
            .output()
            .expect("run kernelci");
        let result = if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        };
        self.0.borrow_mut().insert(sub.to_vec(), result.clone());
        result
    }
}

/// Whether `help` documents the option `--name` (not only a longer one starting with it).
fn documents_flag(help: &str, name: &str) -> bool {
    let needle = format!("--{name}");
    help.match_indices(&needle).any(|(i, _)| {
        help[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    })
}

/// The subcommand path of `args` (the words before the first option).
fn subcommand(args: &[String]) -> Vec<String> {
    args.iter()
        .take_while(|a| !a.starts_with('-'))
        .cloned()
        .collect()
}

/// Every problem of one invocation: unknown subcommand, undocumented flag or variable.
fn check_invocation(helps: &Helps, inv: &Invocation) -> Vec<String> {
    let mut problems = Vec::new();
    let sub = subcommand(&inv.args);
    if sub.is_empty() {
        return vec![format!("{}: no subcommand in {:?}", inv.place, inv.args)];
    }
    let help = match helps.help(&sub) {
        Ok(h) => h,
        Err(e) => {
            return vec![format!(
                "{}: `kernelci {}` does not exist: {}",
                inv.place,
                sub.join(" "),
                e.trim()
            )];
        }
    };
    if help
        .lines()
        .any(|l| l.starts_with("Usage:") && l.contains("<COMMAND>"))
    {
        problems.push(format!(
            "{}: `kernelci {}` needs a subcommand",
            inv.place,
            sub.join(" ")
        ));
    }
    for arg in &inv.args[sub.len()..] {
        if let Some(flag) = arg.strip_prefix("--") {
            let name = flag.split('=').next().unwrap_or(flag);
            if !documents_flag(&help, name) {
                problems.push(format!(
                    "{}: `kernelci {}` has no option --{name}",
                    inv.place,
                    sub.join(" ")
                ));
            }
        }
    }
    for var in &inv.env {
        let ours = ["KERNELCI_", "KCI_", "KCIDB_"]
            .iter()
            .any(|p| var.starts_with(p));
        if ours
            && !DIRECT_ENV.contains(&var.as_str())
            && !help.contains(&format!("[env: {var}]"))
            && !help.contains(&format!("[env: {var}="))
        {
            problems.push(format!(
                "{}: `kernelci {}` reads no variable {var}",
                inv.place,
                sub.join(" ")
            ));
        }
    }
    // Health checks: an endpoint this role serves, on the port it listens on.
    let listen_port = option_value(&inv.args, "listen")
        .and_then(|a| a.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
    let (paths, default_port): (&[&str], Option<u16>) = match sub.join(" ").as_str() {
        "up" | "api" => (&["/latest", "/latest/metrics"], Some(8001)),
        "kcidb serve" => (&["/health", "/metrics"], Some(8002)),
        "pipeline run" => (&["/pipeline", "/pipeline/api/metrics"], None),
        _ => (&[], None),
    };
    let port = listen_port.or(default_port);
    for (path, probe_port) in &inv.probes {
        if !paths.contains(&path.as_str()) {
            problems.push(format!(
                "{}: health check {path} is not one of {paths:?} that `kernelci {}` serves",
                inv.place,
                sub.join(" ")
            ));
        }
        if let Some(p) = probe_port
            && Some(*p) != port
        {
            problems.push(format!(
                "{}: health check on port {p}, but the role listens on {port:?}",
                inv.place
            ));
        }
    }
    problems
}

/// The value of `--name VALUE` or `--name=VALUE`.
fn option_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let flag = format!("--{name}");
    args.iter().enumerate().find_map(|(i, a)| {
        if *a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&format!("{flag}="))
        }
    })
}

fn strings(v: &Value, place: &str) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => panic!("{place}: command item {other} is not a string"),
            })
            .collect(),
        other => panic!("{place}: command {other} is neither a string nor a list"),
    }
}

/// `http://127.0.0.1:PORT/PATH` in a health check command -> (path, port).
fn url_in(words: &[String]) -> Option<(String, Option<u16>)> {
    let url = words
        .iter()
        .find_map(|w| w.find("http://").map(|i| &w[i..]))?;
    let rest = &url["http://".len()..];
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port = host.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    let path = path.split_whitespace().next().unwrap_or("/");
    Some((path.to_string(), port))
}

fn compose_invocations(compose: &Value) -> (Vec<Invocation>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let services = compose["services"].as_object().expect("services");
    let declared_volumes: Vec<&String> = compose["volumes"]
        .as_object()
        .map(|v| v.keys().collect())
        .unwrap_or_default();
    for (name, svc) in services {
        let place = format!("docker-compose.yaml: {name}");
        for dep in svc["depends_on"]
            .as_object()
            .map(|d| d.keys().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if !services.contains_key(dep) {
                problems.push(format!("{place}: depends on unknown service {dep}"));
            }
        }
        for vol in svc["volumes"].as_array().into_iter().flatten() {
            let spec = vol.as_str().unwrap_or_default();
            let source = spec.split(':').next().unwrap_or_default();
            if !source.starts_with('.')
                && !source.starts_with('/')
                && !declared_volumes.iter().any(|v| *v == source)
            {
                problems.push(format!("{place}: volume {source} is not declared"));
            }
        }
        let ours = svc["build"]["dockerfile"]
            .as_str()
            .is_some_and(|d| d.ends_with("deploy/Dockerfile"))
            || svc["image"]
                .as_str()
                .is_some_and(|i| i.contains("kernelci-rs"));
        if !ours {
            continue;
        }
        let mut args = strings(&svc["entrypoint"], &place);
        if !args.is_empty() {
            let at = args
                .iter()
                .position(|a| a == "kernelci" || a.ends_with("/kernelci"));
            match at {
                Some(i) => {
                    args.drain(..=i);
                }
                None => {
                    problems.push(format!("{place}: entrypoint does not run kernelci"));
                    continue;
                }
            }
        }
        args.extend(strings(&svc["command"], &place));
        let env = match &svc["environment"] {
            Value::Object(m) => m.keys().cloned().collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.split('=').next().unwrap_or(s).to_string())
                .collect(),
            _ => Vec::new(),
        };
        let check = strings(&svc["healthcheck"]["test"], &place);
        let probes: Vec<_> = url_in(&check).into_iter().collect();
        if probes.is_empty() {
            problems.push(format!("{place}: no HTTP healthcheck"));
        }
        found.push(Invocation {
            place,
            args,
            env,
            probes,
        });
    }
    (found, problems)
}

/// Kubernetes objects of every manifest, with the file each came from.
fn manifests() -> Vec<(String, Value)> {
    let dir = deploy_dir().join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {dir:?}");
    files
        .iter()
        .flat_map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            documents(f).into_iter().map(move |d| (name.clone(), d))
        })
        .collect()
}

fn label_subset(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn k8s_invocations(objects: &[(String, Value)]) -> (Vec<Invocation>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let deployments: Vec<&Value> = objects
        .iter()
        .filter(|(_, o)| o["kind"] == "Deployment")
        .map(|(_, o)| o)
        .collect();
    let services: Vec<&Value> = objects
        .iter()
        .filter(|(_, o)| o["kind"] == "Service")
        .map(|(_, o)| o)
        .collect();
    for (file, d) in objects.iter().filter(|(_, o)| o["kind"] == "Deployment") {
        let name = d["metadata"]["name"].as_str().unwrap_or("?");
        let pod = &d["spec"]["template"];
        if !label_subset(
            &d["spec"]["selector"]["matchLabels"],
            &pod["metadata"]["labels"],
        ) {
            problems.push(format!(
                "{file}: Deployment {name}: selector does not match its pods"
            ));
        }
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let place = format!(
                "{file}: Deployment {name}, container {}",
                c["name"].as_str().unwrap_or("?")
            );
            let ports: Vec<(Option<&str>, Option<u64>)> = c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| (p["name"].as_str(), p["containerPort"].as_u64()))
                .collect();
            let mut probes = Vec::new();
            for kind in ["readinessProbe", "livenessProbe"] {
                let probe = &c[kind];
                if !probe.is_object() {
                    problems.push(format!("{place}: no {kind}"));
                    continue;
                }
                let get = &probe["httpGet"];
                if !get.is_object() {
                    continue;
                }
                let port = match &get["port"] {
                    Value::String(n) => ports
                        .iter()
                        .find(|(pn, _)| *pn == Some(n.as_str()))
                        .and_then(|(_, p)| *p),
                    Value::Number(n) => n.as_u64(),
                    _ => None,
                };
                if port.is_none() {
                    problems.push(format!("{place}: {kind} port is not a container port"));
                }
                probes.push((
                    get["path"].as_str().unwrap_or("/").to_string(),
                    port.and_then(|p| u16::try_from(p).ok()),
                ));
            }
            let image = c["image"].as_str().unwrap_or_default();
            if !image.contains("kernelci-rs") {
                continue;
            }
            let mut args = Vec::new();
            for key in ["command", "args"] {
                for item in c[key].as_array().into_iter().flatten() {
                    match item.as_str() {
                        Some(s) => args.push(s.to_string()),
                        None => problems.push(format!(
                            "{place}: {key} item {item} is not a string (Kubernetes refuses it)"
                        )),
                    }
                }
            }
            if c["command"].is_array() {
                match args.first().map(String::as_str) {
                    Some(a) if a == "kernelci" || a.ends_with("/kernelci") => {
                        args.remove(0);
                    }
                    _ => problems.push(format!("{place}: command does not run kernelci")),
                }
            }
            let env = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect();
            found.push(Invocation {
                place,
                args,
                env,
                probes,
            });
        }
    }
    for s in &services {
        let name = s["metadata"]["name"].as_str().unwrap_or("?");
        let selector = &s["spec"]["selector"];
        let target = deployments.iter().find(|d| {
            d["metadata"]["namespace"] == s["metadata"]["namespace"]
                && label_subset(selector, &d["spec"]["template"]["metadata"]["labels"])
        });
        let Some(target) = target else {
            problems.push(format!("Service {name} selects no Deployment"));
            continue;
        };
        let ports: Vec<&Value> = target["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .collect();
        for p in s["spec"]["ports"].as_array().into_iter().flatten() {
            let t = if p["targetPort"].is_null() {
                &p["port"]
            } else {
                &p["targetPort"]
            };
            let ok = ports.iter().any(|cp| match t {
                Value::String(n) => cp["name"] == *n,
                other => cp["containerPort"] == *other,
            });
            if !ok {
                problems.push(format!(
                    "Service {name}: targetPort {t} is no container port"
                ));
            }
        }
    }
    for (file, ing) in objects.iter().filter(|(_, o)| o["kind"] == "Ingress") {
        let name = ing["metadata"]["name"].as_str().unwrap_or("?");
        if ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
            .as_str()
            .is_none()
        {
            problems.push(format!("{file}: Ingress {name}: no proxy-body-size"));
        }
        for rule in ing["spec"]["rules"].as_array().into_iter().flatten() {
            for path in rule["http"]["paths"].as_array().into_iter().flatten() {
                let backend = &path["backend"]["service"];
                let svc = services.iter().find(|s| {
                    s["metadata"]["name"] == backend["name"]
                        && s["metadata"]["namespace"] == ing["metadata"]["namespace"]
                });
                match svc {
                    None => problems.push(format!(
                        "{file}: Ingress {name}: unknown service {}",
                        backend["name"]
                    )),
                    Some(svc) => {
                        let port = &backend["port"];
                        let ok = svc["spec"]["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| {
                                (port["name"].is_string() && p["name"] == port["name"])
                                    || (port["number"].is_number() && p["port"] == port["number"])
                            });
                        if !ok {
                            problems.push(format!(
                                "{file}: Ingress {name}: service {} has no port {port}",
                                backend["name"]
                            ));
                        }
                    }
                }
            }
        }
    }
    (found, problems)
}

fn report(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn compose_runs_existing_subcommands_with_documented_flags() {
    let docs = documents(&deploy_dir().join("docker-compose.yaml"));
    assert_eq!(docs.len(), 1);
    let (invocations, mut problems) = compose_invocations(&docs[0]);
    let helps = Helps::new();
    for inv in &invocations {
        problems.extend(check_invocation(&helps, inv));
    }
    report(&problems);
    // Every role is there.
    let subs: Vec<String> = invocations
        .iter()
        .map(|i| subcommand(&i.args).join(" "))
        .collect();
    for role in ["api", "kcidb serve", "up", "pipeline run"] {
        assert!(subs.iter().any(|s| s == role), "no `{role}` in {subs:?}");
    }
    assert!(
        docs[0]["services"]["postgres"].is_object(),
        "no PostgreSQL service"
    );
}

#[test]
fn kubernetes_manifests_are_consistent_and_use_documented_flags() {
    let objects = manifests();
    let (invocations, mut problems) = k8s_invocations(&objects);
    let helps = Helps::new();
    for inv in &invocations {
        problems.extend(check_invocation(&helps, inv));
    }
    report(&problems);
    let kinds: BTreeMap<String, usize> = objects.iter().fold(BTreeMap::new(), |mut m, (_, o)| {
        *m.entry(o["kind"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        m
    });
    for kind in [
        "Namespace",
        "Secret",
        "ConfigMap",
        "Deployment",
        "Service",
        "Ingress",
    ] {
        assert!(kinds.contains_key(kind), "no {kind}: {kinds:?}");
    }
    assert_eq!(kinds["Deployment"], kinds["Service"], "{kinds:?}");
    let subs: Vec<String> = invocations
        .iter()
        .map(|i| subcommand(&i.args).join(" "))
        .collect();
    for role in ["api", "kcidb serve", "up", "pipeline run"] {
        assert!(subs.iter().any(|s| s == role), "no `{role}` in {subs:?}");
    }
    // The paths `kernelci up` serves are routed: KCIDB and the LAVA callbacks included.
    let paths: Vec<String> = objects
        .iter()
        .filter(|(_, o)| o["kind"] == "Ingress")
        .flat_map(|(_, o)| {
            o["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
                .filter_map(|p| p["path"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    for prefix in ["/latest", "/kcidb", "/pipeline", "/"] {
        assert!(
            paths.iter().any(|p| p.starts_with(prefix)),
            "{prefix} not routed: {paths:?}"
        );
    }
}

#[test]
fn the_configmap_pipeline_loads() {
    let objects = manifests();
    let dir = tempfile::tempdir().unwrap();
    let mut files = 0;
    for (_, cm) in objects.iter().filter(|(_, o)| o["kind"] == "ConfigMap") {
        for (key, text) in cm["data"].as_object().into_iter().flatten() {
            if key.ends_with(".yaml") {
                std::fs::write(dir.path().join(key), text.as_str().unwrap()).unwrap();
                files += 1;
            }
        }
    }
    assert!(files > 0, "no pipeline YAML in a ConfigMap");
    let out = Command::new(env!("CARGO_BIN_EXE_kernelci"))
        .args(["pipeline", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kernelci pipeline check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The checker itself: a misspelled flag, an unknown subcommand, an unknown variable and a
/// probe on the wrong path are each reported.
#[test]
fn the_checker_catches_mistakes() {
    let helps = Helps::new();
    let inv = |args: &[&str], env: &[&str], probes: Vec<(String, Option<u16>)>| Invocation {
        place: "test".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env.iter().map(|s| s.to_string()).collect(),
        probes,
    };
    let good = inv(
        &[
            "kcidb",
            "serve",
            "--listen",
            "0.0.0.0:8002",
            "--kcidb-max-body=1",
        ],
        &["KERNELCI_DATABASE_URL", "KERNELCI_LOG"],
        vec![("/health".into(), Some(8002))],
    );
    assert_eq!(check_invocation(&helps, &good), Vec::<String>::new());

    let typo = inv(&["up", "--listne", "0.0.0.0:8001"], &[], vec![]);
    let p = check_invocation(&helps, &typo);
    assert!(p.len() == 1 && p[0].contains("--listne"), "{p:?}");
    // A prefix of a real option is not that option.
    let prefix = inv(&["up", "--kcidb"], &[], vec![]);
    assert_eq!(check_invocation(&helps, &prefix).len(), 1);
    let unknown = inv(&["kcidb", "serv"], &[], vec![]);
    assert!(check_invocation(&helps, &unknown)[0].contains("does not exist"));
    let partial = inv(&["pipeline", "--config", "x"], &[], vec![]);
    assert!(check_invocation(&helps, &partial)[0].contains("needs a subcommand"));
    let var = inv(&["api"], &["KERNELCI_KCIDB_SECRET"], vec![]);
    assert!(check_invocation(&helps, &var)[0].contains("KERNELCI_KCIDB_SECRET"));
    let probe = inv(
        &["pipeline", "run", "--listen", "0.0.0.0:8003"],
        &[],
        vec![("/health".into(), Some(8001))],
    );
    assert_eq!(check_invocation(&helps, &probe).len(), 2);
}
