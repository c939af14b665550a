//! Renders a job template from a JSON context file and runs it with the shell runtime.
//!
//! ```text
//! cargo run -p kernelci-sched --example run_job -- \
//!     --template kbuild.jinja2 --context ctx.json --base /tmp/jobs \
//!     [--node-id ID] [--timeout SECONDS] [--templates-dir DIR] [--render-only] [--release]
//! ```
//!
//! The context file holds `{"name", "node", "platform", "params", "fragment_configs"}`, turned
//! into the template variables by `JobContext` (upstream `Runtime.get_params`). The job runs in
//! `<base>/<node id>-<name>/`; the example prints the status every 10 s, then the tail of the
//! log, and exits with the job's exit code (124 on timeout, 125 on other failures).

#[cfg(feature = "shell")]
mod imp {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use kernelci_sched::runtime::{JobStatus, JobSubmission, Runtime, ShellRuntime};
    use kernelci_sched::template::{JobContext, Templates};
    use serde_json::Value;

    struct Args {
        template: String,
        context: PathBuf,
        base: PathBuf,
        node_id: String,
        timeout: u64,
        templates_dir: Vec<PathBuf>,
        render_only: bool,
        release: bool,
    }

    fn parse_args() -> Result<Args, String> {
        let mut it = std::env::args().skip(1);
        let mut a = Args {
            template: String::new(),
            context: PathBuf::new(),
            base: PathBuf::from("/tmp/kci-jobs"),
            node_id: "example".into(),
            timeout: 3600,
            templates_dir: Vec::new(),
            render_only: false,
            release: false,
        };
        while let Some(arg) = it.next() {
            let mut val = || it.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--template" => a.template = val()?,
                "--context" => a.context = PathBuf::from(val()?),
                "--base" => a.base = PathBuf::from(val()?),
                "--node-id" => a.node_id = val()?,
                "--timeout" => a.timeout = val()?.parse().map_err(|e| format!("--timeout: {e}"))?,
                "--templates-dir" => a.templates_dir.push(PathBuf::from(val()?)),
                "--render-only" => a.render_only = true,
                "--release" => a.release = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if a.template.is_empty() || a.context.as_os_str().is_empty() {
            return Err("--template and --context are required".into());
        }
        Ok(a)
    }

    pub fn run() -> Result<i32, String> {
        let args = parse_args()?;
        let text = std::fs::read_to_string(&args.context)
            .map_err(|e| format!("{}: {e}", args.context.display()))?;
        let file: Value = serde_json::from_str(&text).map_err(|e| format!("context: {e}"))?;
        let get = |k: &str| file.get(k).cloned().unwrap_or(Value::Null);
        let name = file
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("job")
            .to_string();
        let rt = ShellRuntime::new("shell", &args.base).map_err(|e| e.to_string())?;
        let mut ctx = JobContext::new(&name, rt.lab_type())
            .node(get("node"))
            .params(get("params"));
        if !get("platform").is_null() {
            ctx = ctx.platform(get("platform"));
        }
        if !get("fragment_configs").is_null() {
            ctx = ctx.fragment_configs(get("fragment_configs"));
        }
        let templates = Templates::with_dirs(args.templates_dir.clone());
        let t0 = Instant::now();
        let script = templates
            .render(rt.lab_type(), &args.template, &ctx.build())
            .map_err(|e| e.to_string())?;
        if args.render_only {
            print!("{script}");
            return Ok(0);
        }
        let handle = rt
            .submit(&JobSubmission {
                node_id: args.node_id.clone(),
                job_name: name.clone(),
                definition: script,
                timeout: Duration::from_secs(args.timeout),
                env: Vec::new(),
                image: None,
            })
            .map_err(|e| e.to_string())?;
        let dir = rt.workdir(&handle).unwrap_or_default();
        eprintln!("job {} (pid {}) in {}", name, handle.job_id, dir.display());
        let mut last_print = Instant::now();
        let status = loop {
            let st = rt.status(&handle).map_err(|e| e.to_string())?;
            if st.is_final() {
                break st;
            }
            if last_print.elapsed() >= Duration::from_secs(10) {
                eprintln!("[{:>6.1}s] {:?}", t0.elapsed().as_secs_f64(), st);
                last_print = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let logs = rt.logs(&handle).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&logs);
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[lines.len().saturating_sub(25)..] {
            eprintln!("| {l}");
        }
        eprintln!(
            "status after {:.1}s: {:?}; workdir {}",
            t0.elapsed().as_secs_f64(),
            status,
            dir.display()
        );
        if args.release {
            rt.release(&handle).map_err(|e| e.to_string())?;
        }
        Ok(match status {
            JobStatus::Finished { exit_code } => exit_code,
            JobStatus::TimedOut => 124,
            _ => 125,
        })
    }
}

#[cfg(feature = "shell")]
fn main() -> std::process::ExitCode {
    match imp::run() {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(125)),
        Err(e) => {
            eprintln!("run_job: {e}");
            std::process::ExitCode::from(125)
        }
    }
}

#[cfg(not(feature = "shell"))]
fn main() -> std::process::ExitCode {
    eprintln!("run_job needs the `shell` feature");
    std::process::ExitCode::from(125)
}
