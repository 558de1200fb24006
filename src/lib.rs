//! armonik-wasm: an ArmoniK worker that runs each task as a sandboxed WebAssembly component.
//!
//! Data flows one way through the modules:
//! [`transport`] (the Worker gRPC service) → [`task_runner`] (a request in, an outcome out) →
//! [`sandbox`] (engine, store, limits; [`components`] picks and caches the component) →
//! [`agent_bridge`] (the WIT `agent` interface) → [`agent`] (the Agent trait, implemented over
//! gRPC by [`agent_grpc`], and in-process by [`local_agent`] for `run`, over the task graph
//! of [`local_graph`] with ArmoniK's option merge ([`task_options`]), scheduled by
//! [`local_run`]). Every file the host touches for a task or on its own stores goes through
//! [`host_files`]. `submit` ([`submit`]) sends a component and its inputs to ArmoniK's control
//! plane instead. Every line the binary prints goes through [`console`].

pub mod agent;
pub mod agent_bridge;
pub mod agent_grpc;
pub mod bindings;
pub mod cli;
pub mod compile_cache;
pub mod components;
pub mod config;
pub mod console;
pub mod control_plane;
pub mod convert;
pub mod dev;
pub mod guest_log;
pub mod host_files;
pub mod limits;
pub mod local_agent;
pub mod local_client;
pub mod local_graph;
pub mod local_run;
pub mod proto;
pub mod run_outputs;
pub mod sandbox;
pub mod submit;
pub mod task_options;
pub mod task_runner;
pub mod transport;
