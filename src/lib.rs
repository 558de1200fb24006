//! armonik-wasm: an ArmoniK worker that runs each task as a sandboxed WebAssembly component.
//!
//! Modules by layer; data flows one way, top to bottom:
//! - [`cli`]: the commands (`serve`, `run`, `dev`, `submit`, `compile`, `inspect`) and what
//!   they print.
//! - [`control_plane`]: ArmoniK's control-plane services (`dev`), thin adapters over
//!   [`local`] (with the `control-plane` feature, as `dev` and `submit`).
//! - [`worker`]: the Worker gRPC service ([`worker::transport`]) and the task runner (a
//!   request in, the outcome table out).
//! - [`local`]: ArmoniK on this machine (`run`, `dev`): the task graph, the embedded agent,
//!   what clients do to it, the scheduler.
//! - [`sandbox`]: engine, store, limits, guest logs; which component runs a task and the
//!   caches of compiled ones.
//! - [`agent`]: the WIT `agent` interface ([`agent::bridge`]) over the Agent trait,
//!   implemented over gRPC ([`agent::grpc`]) and by [`local::agent`].
//! - [`host_files`]: every file the host touches for a task or on its own stores.
//! - [`telemetry`]: log formats, the per-task summary record, Prometheus metrics (recorded by
//!   every layer above, read by nothing in the host).
//! - [`generated`]: code generated from ArmoniK's protos and the WIT world.

pub mod agent;
pub mod cli;
#[cfg(feature = "control-plane")]
pub mod control_plane;
pub mod generated;
pub mod host_files;
pub mod local;
pub mod sandbox;
pub mod telemetry;
pub mod worker;

pub use generated::{bindings, proto};
