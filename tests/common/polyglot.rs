//! The guests in Python, JavaScript and C: built by their `guests/<lang>/build.sh` (tools from
//! `.ci/install-polyglot-tools`) and compiled once into the shared cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use super::{armonik_wasm, path, repo_dir};

/// A guest language other than Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    Js,
    C,
}

/// The examples every language has, with the Rust guests' payload formats.
pub const EXAMPLES: [&str; 4] = ["echo", "concat", "fanout", "fail"];

/// Exit status of a build script whose tools are missing (`guests/build-lib.sh`).
const MISSING_TOOLS: i32 = 3;

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Self::Python => "Python",
            Self::Js => "JavaScript",
            Self::C => "C",
        }
    }

    /// The prefix of its components (`python-echo.wasm`) and its folder under `guests/`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Js => "js",
            Self::C => "c",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where the build scripts write the components: `<target tmp>/polyglot`.
pub fn polyglot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot")
}

/// The component of `example` in `lang`, built (once per test process and language) and
/// compiled into the shared cache; panics with the reason if that failed.
pub fn component(lang: Lang, example: &str) -> PathBuf {
    try_component(lang, example).unwrap_or_else(|error| panic!("{error}"))
}

/// [`component`], or why it cannot be built (the tools missing, a build error).
pub fn try_component(lang: Lang, example: &str) -> Result<PathBuf, String> {
    static PREPARED: [OnceLock<Result<(), String>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    PREPARED[lang.index()]
        .get_or_init(|| prepare(lang))
        .clone()?;
    Ok(polyglot_dir().join(format!("{}-{example}.wasm", lang.prefix())))
}

/// Runs the language's build script, then compiles each component once into the shared cache
/// (through `armonik-wasm run`), so that `serve` starts within the harness's startup timeout: a
/// debug host takes tens of seconds to compile a Python or JavaScript component.
fn prepare(lang: Lang) -> Result<(), String> {
    let script = repo_dir()
        .join("guests")
        .join(lang.prefix())
        .join("build.sh");
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .arg(polyglot_dir())
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.code() == Some(MISSING_TOOLS) {
        return Err(format!(
            "the tools that build the {} guests are missing: run `.ci/install-polyglot-tools` \
             (once per machine), then the tests again.\n{} said:\n{said}",
            lang.name(),
            script.display()
        ));
    }
    if !output.status.success() {
        return Err(format!(
            "building the {} guests ({}) failed with {}:\n{said}",
            lang.name(),
            script.display(),
            output.status
        ));
    }
    eprintln!(
        "{} guests built in {:.1} s:\n{said}",
        lang.name(),
        started.elapsed().as_secs_f64()
    );
    for example in EXAMPLES {
        let wasm = polyglot_dir().join(format!("{}-{example}.wasm", lang.prefix()));
        if !wasm.is_file() {
            return Err(format!(
                "{} did not write {}",
                script.display(),
                wasm.display()
            ));
        }
        let started = Instant::now();
        let outputs = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ran = armonik_wasm(&[
            "run",
            path(&wasm),
            "--payload-text",
            "warm-up",
            "--outputs",
            path(outputs.path()),
        ]);
        if ran.all().contains("not a valid component") || ran.all().contains("does not fit") {
            return Err(format!("{} cannot run:\n{}", wasm.display(), ran.all()));
        }
        eprintln!(
            "{} compiled (or found in the cache) in {:.1} s",
            wasm.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
