//! ArmoniK on this machine (`run`, `dev`): one task graph with ArmoniK's semantics
//! ([`graph`]), the embedded agent tasks call ([`agent`]), what clients do to the graph
//! ([`client`]), ArmoniK's option merge ([`task_options`]), the results' data
//! ([`result_store`]), the attempts' data folders (`task_folders`) and the scheduler that runs tasks through the task runner
//! ([`scheduler`]).

pub mod agent;
pub mod attempts;
pub mod client;
pub mod graph;
mod readiness;
pub mod records;
pub mod result_store;
pub mod scheduler;
pub mod sessions;
mod task_folders;
pub mod task_options;
