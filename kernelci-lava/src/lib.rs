//! LAVA labs for KernelCI (specs/pipeline.md §2.4, §3.4, §5; LAVA 2023.01 REST API v0.2).
//!
//! Pure by default (no HTTP, no async): [`lab`] (a lab's configuration, priority scaling,
//! template variables, callback tokens), [`queue`] (the scheduler's queue gate),
//! [`definition`] (rendered job definitions checked and normalized), [`callback`] (LAVA's
//! notify callback parsed into the node tree the pipeline writes) and [`log`] (LAVA job
//! logs). Optional: [`client`] (feature `client`: a blocking REST client) and [`runtime`]
//! (feature `runtime`: `LavaRuntime`, the scheduler's `Runtime` for a lab).

pub mod callback;
pub mod definition;
pub mod lab;
pub mod log;
pub mod queue;
mod scalar;
pub mod yaml_emit;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "runtime")]
pub mod runtime;

pub use callback::{Callback, CallbackError, Failure, is_infrastructure_error};
pub use definition::{DefinitionError, JobDefinition, normalize};
pub use lab::{LabConfig, LabConfigError, LabSecrets};
pub use log::LavaLog;
pub use queue::{device_online, queue_limit};

#[cfg(feature = "client")]
pub use client::{DeviceInfo, JobInfo, LavaClient, LavaError};
#[cfg(feature = "runtime")]
pub use runtime::LavaRuntime;
