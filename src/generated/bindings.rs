//! Generated host bindings for the `armonik:worker/worker` world in `wit/`.
//!
//! WASI interfaces come from `wasmtime-wasi`; only `armonik:worker` is generated here.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "wit",
    world: "armonik:worker/worker",
    imports: {
        // Agent calls are gRPC calls (async); `trappable` lets the host stop a guest that keeps
        // calling past its deadline; `tracing` gives each call a span.
        default: async | trappable | tracing,
    },
    exports: { default: async },
    with: {
        "wasi": wasmtime_wasi::p2::bindings,
    },
});

pub use self::armonik::worker::types;
pub use exports::armonik::worker::task;
