//! Arbitrary names and operations on the host's file module, in a data folder where a guest
//! planted links (relative and absolute, out of the folder), a directory and a file: whatever
//! the names and the order, nothing outside the folders is created, read through a link or
//! changed, every result-name mapping is a plain file name, and no operation panics.
#![no_main]

use std::path::Path;

use armonik_wasm::host_files::{Folder, plain_name, safe_file_name};
use libfuzzer_sys::fuzz_target;

const CANARY: &[u8] = b"outside the folders";

/// The operations, one byte each, followed by a name (length byte, then bytes).
fn step(data: &Folder, store: &Folder, op: u8, name: &str) {
    let mapped = safe_file_name(name);
    assert!(
        mapped.is_empty() == name.is_empty() && (mapped.is_empty() || plain_name(&mapped).is_ok()),
        "{name:?} maps to {mapped:?}"
    );
    // Errors are expected (bad names, what is planted); only their absence of effect matters.
    let _ = match op % 9 {
        0 => data.clear(name),
        1 => data.write(name, b"written"),
        2 => store.copy_file("r", data, name).map(drop),
        3 => data.move_file(name, store, &mapped),
        4 => data.read(name).map(drop),
        5 => data.subfolder(name).map(drop),
        6 => data.remove_file(name),
        7 => store.write(&mapped, name.as_bytes()),
        _ => {
            let _ = data.is_file(name);
            Ok(())
        }
    };
}

fn plant(data: &Path, outside: &Path) {
    let canary = outside.join("canary");
    std::os::unix::fs::symlink("../outside/canary", data.join("up")).expect("relative link");
    std::os::unix::fs::symlink(&canary, data.join("abs")).expect("absolute link");
    std::os::unix::fs::symlink("../outside/new", data.join("dangling")).expect("dangling link");
    std::os::unix::fs::symlink(outside, data.join("dirlink")).expect("directory link");
    std::fs::create_dir(data.join("dir")).expect("directory");
    std::fs::write(data.join("dir/inner"), b"inner").expect("file in directory");
    std::fs::write(data.join("file"), b"file").expect("file");
}

fuzz_target!(|input: &[u8]| {
    let root = tempfile::tempdir().expect("temp dir");
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).expect("outside");
    std::fs::write(outside.join("canary"), CANARY).expect("canary");
    let data = Folder::create(&root.path().join("data"), true).expect("data folder");
    plant(data.path(), &outside);
    let store = Folder::create(&root.path().join("store"), true).expect("store");
    store.write("r", b"result").expect("result");

    let mut bytes = input.iter().copied();
    while let (Some(op), Some(len)) = (bytes.next(), bytes.next()) {
        let name: Vec<u8> = bytes.by_ref().take(usize::from(len)).collect();
        let name = String::from_utf8_lossy(&name).into_owned();
        step(&data, &store, op, &name);
    }

    assert_eq!(
        std::fs::read(outside.join("canary")).expect("canary"),
        CANARY
    );
    let names: Vec<String> = std::fs::read_dir(&outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["canary"], "something was created outside");
    let roots: Vec<_> = std::fs::read_dir(root.path())
        .expect("root")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(roots.len(), 3, "{roots:?}");
});
