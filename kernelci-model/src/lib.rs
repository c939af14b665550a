//! The KernelCI data model, shared by every role: nodes and their kinds, states and
//! transitions, kind-specific `data` validation, event payloads and CloudEvent envelopes,
//! users and groups with the node edit rule, and the node query filter.
//!
//! Pure: no IO, no async runtime. Wire shapes follow the upstream Maestro API
//! (kernelci-api); see `specs/maestro-api.md` in the shared design folder.

pub mod data;
pub mod error;
pub mod event;
pub mod filter;
pub mod id;
pub mod jwt;
pub mod node;
pub mod regex_filter;
pub mod telemetry;
pub mod time;
pub mod user;

pub use error::{FieldError, InputError};
pub use event::{CloudEvent, NodeOp, Previous};
pub use filter::NodeFilter;
pub use id::ObjectId;
pub use node::{Kind, Node, NodeInput, NodeResult, State};
pub use time::Timestamp;
pub use user::{User, UserGroup, UserRead};
