//! Compiles the ArmoniK Worker and Agent protos with protox (pure Rust), so a build needs no
//! system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/worker_service.proto", "proto/agent_service.proto"];
    let fds = protox::compile(files, ["proto"])?;
    // The host is the Worker server and an Agent client; the embedded agent (`run`) and the
    // tests need the Agent server and a Worker client too, so build both sides.
    tonic_prost_build::configure().compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
