//! Generated code, kept apart from hand-written code: tonic's from `proto/`, wasmtime's
//! `bindgen!` from `wit/`.

pub mod bindings;
pub mod proto;
