//! The worker side (`serve`): ArmoniK's Worker gRPC service, its settings, and the task
//! runner that turns a `ProcessRequest` into a guest call and the guest's outcome into a reply.

pub mod config;
pub mod isolation;
pub mod summary;
pub mod task_runner;
pub mod transport;
