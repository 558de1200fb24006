//! Generated gRPC code for ArmoniK API v3 (Worker and Agent services), from `proto/`.
#![allow(missing_docs, clippy::all)]

/// `armonik.api.grpc.v1`: shared objects.
pub mod v1 {
    tonic::include_proto!("armonik.api.grpc.v1");

    /// `armonik.api.grpc.v1.result_status`.
    pub mod result_status {
        tonic::include_proto!("armonik.api.grpc.v1.result_status");
    }
    /// `armonik.api.grpc.v1.worker`: the Worker service and its messages.
    pub mod worker {
        tonic::include_proto!("armonik.api.grpc.v1.worker");
    }
    /// `armonik.api.grpc.v1.agent`: the Agent service and its messages.
    pub mod agent {
        tonic::include_proto!("armonik.api.grpc.v1.agent");
    }
}
