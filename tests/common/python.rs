//! The official ArmoniK Python client (`armonik` on PyPI), which `.ci/install-polyglot-tools`
//! installs in the tools venv: found once per test process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The version of the `armonik` Python package `.ci/install-polyglot-tools` installs.
pub const ARMONIK_PY_VERSION: &str = "3.29.4";

/// The Python of the tools venv, with `armonik` at the pinned version; panics saying to run
/// `.ci/install-polyglot-tools` otherwise.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(find_python) {
        Ok(python) => python,
        Err(error) => panic!("{error}"),
    }
}

/// The tools venv's Python with `armonik` at the pinned version, or why not.
pub fn find_python() -> Result<PathBuf, String> {
    let tools = std::env::var_os("ARMONIK_WASM_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/armonik-wasm-tools"))
        })
        .ok_or("neither ARMONIK_WASM_TOOLS_DIR nor HOME is set")?;
    let venv = tools.join("venv");
    let python = venv.join("bin").join("python");
    let missing = |said: &str| {
        format!(
            "the official ArmoniK Python client (armonik=={ARMONIK_PY_VERSION}) is missing from \
             the tools venv {}: run `.ci/install-polyglot-tools` (once per machine), then the \
             tests again.\n{said}",
            venv.display()
        )
    };
    if !python.is_file() {
        return Err(missing(&format!("{} does not exist", python.display())));
    }
    let output = Command::new(&python)
        .args([
            "-c",
            "import armonik.client, importlib.metadata as m; print(m.version('armonik'))",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| missing(&format!("cannot run {}: {error}", python.display())))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || version != ARMONIK_PY_VERSION {
        return Err(missing(&format!(
            "{} says: {version}{}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(python)
}
