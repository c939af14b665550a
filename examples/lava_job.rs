//! Render the LAVA job definition the scheduler would submit for a kernel, check it, print it.
//!
//! ```text
//! cargo run -p kernelci-examples --example lava_job
//! cargo run -p kernelci-examples --example lava_job -- \
//!     https://storage.mylab.example/kbuild-1/bzImage https://storage.mylab.example/rootfs.cpio.gz
//! ```
//!
//! The same steps as the pipeline's scheduler for a `lab_type: lava` runtime: the lab's
//! `runtimes.<name>` entry gives the priority range and the notify callback
//! ([`kernelci_lava::LabConfig`]), the job's context is built like the scheduler builds it
//! ([`kernelci_sched::template::JobContext`]), `lava/baseline.jinja2` (built in; a file of the
//! same name in an operator template folder wins) renders it, and
//! [`kernelci_lava::definition::normalize`] checks the keys LAVA and the callback need and
//! rewrites it so that LAVA's YAML 1.1 parser reads the same data. The output can be given
//! to `lavacli jobs submit` as it is.

use std::process::ExitCode;

use kernelci_lava::{JobDefinition, LabConfig, LabSecrets};
use kernelci_sched::template::{JobContext, Templates};
use serde_json::{Map, Value, json};

/// The kernel booted when no URL is given.
pub const DEFAULT_KERNEL: &str = "https://storage.mylab.example/kbuild-gcc-x86_64/bzImage";

/// This instance's pipeline API, where LAVA posts the results (`/pipeline/node/<id>`).
pub const CALLBACK_BASE: &str = "https://kernelci.mylab.example/pipeline";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kernel = args.first().map_or(DEFAULT_KERNEL, String::as_str);
    let ramdisk = args.get(1).map(String::as_str);
    match render(kernel, ramdisk) {
        Ok(job) => {
            eprintln!(
                "device type {}, job {:?}, node {}",
                job.device_type,
                job.job_name,
                job.node_id.as_deref().unwrap_or("-")
            );
            print!("{}", job.yaml);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The lab, as its `runtimes.lava-mylab` entry in the pipeline YAML reads: jobs get
/// priorities 10-60 in this lab, and LAVA sends back the secret of the token described
/// `kernelci-callback`. The tokens themselves live in the settings file
/// (`[runtime.lava-mylab]`), never in the YAML; rendering needs none.
pub fn lab() -> Result<LabConfig, String> {
    let entry = json!({
        "url": "https://lava.mylab.example/",
        "priority_min": 10,
        "priority_max": 60,
        "notify": {"callback": {"token": "kernelci-callback"}},
    });
    let fields: Map<String, Value> = entry.as_object().cloned().unwrap_or_default();
    LabConfig::from_runtime("lava-mylab", &fields, LabSecrets::default()).map_err(|e| e.to_string())
}

/// Renders and checks the job that boots `kernel` (with the initramfs `ramdisk`, a URL or an
/// absolute path on the LAVA worker) on the lab's QEMU device.
pub fn render(kernel: &str, ramdisk: Option<&str>) -> Result<JobDefinition, String> {
    let lab = lab()?;
    // The job node the scheduler created (its id goes into the callback URL and metadata).
    let node = json!({
        "id": "65a1b2c3d4e5f60718293a4b",
        "name": "baseline-x86_64",
        "artifacts": {"kernel": kernel},
        "data": {"kernel_revision": {"describe": "v6.1.99"}},
    });
    // The platform: `base_name` is the LAVA device type, `context` goes to the job as is.
    let platform = json!({
        "name": "qemu-x86_64", "base_name": "qemu", "arch": "x86_64",
        "boot_method": "qemu", "context": {"arch": "amd64"},
    });
    // The job's params, plus what the lab adds: `priority` (a base priority of 50 scaled
    // into 10-60 gives 35) and the `notify` block.
    let mut params = Map::new();
    if let Some(rd) = ramdisk {
        params.insert("ramdisk".into(), rd.into());
    }
    params.insert(
        "test_commands".into(),
        json!([{"name": "uname", "command": "uname -a", "successes": ["Linux"]}]),
    );
    params.extend(lab.template_vars(50));
    let ctx = JobContext::new("baseline-x86_64", "lava")
        .node(node)
        .platform(platform)
        .params(Value::Object(params))
        .instance(None, Some(CALLBACK_BASE.into()));
    let rendered = Templates::new()
        .render("lava", "baseline.jinja2", &ctx.build())
        .map_err(|e| e.to_string())?;
    kernelci_lava::definition::normalize(&rendered).map_err(|e| e.to_string())
}
