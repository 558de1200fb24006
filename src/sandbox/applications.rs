//! Components by application: the operator's `--components-dir`, where a task's options
//! (`application_name`, `application_version`, as ArmoniK's clients set them) name the
//! component, the way ArmoniK's C# dynamic worker loads the package of that name and version.
//!
//! Layout: `DIR/<application_name>/<application_version>.wasm`, regular files (links are
//! refused: the names come from clients). A file is looked up at every task, so a version
//! dropped in is used by the next task that names it, without a restart; it is read and
//! compiled again only when it changed (see [`FileIdentity`]).

use std::path::{Path, PathBuf};

use crate::host_files::Folder;
use crate::sandbox::components::LoadError;

/// The suffix of a component file in an application's folder.
pub const SUFFIX: &str = ".wasm";

/// How many names an error lists before it says how many more there are.
const LISTED: usize = 20;

/// The operator's folder of components by application.
#[derive(Debug)]
pub struct Applications {
    folder: Folder,
}

/// What tells one version of a file from the next without reading it: device, inode, size
/// and modification time (a file replaced in place, or renamed over, changes one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileIdentity {
    /// The identity of an open file.
    ///
    /// # Errors
    /// The file cannot be `fstat`ed.
    pub fn of(file: &std::fs::File) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let metadata = file.metadata()?;
        Ok(Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: metadata.modified().ok(),
        })
    }
}

impl Applications {
    /// Opens the folder.
    ///
    /// # Errors
    /// [`LoadError::ComponentsDir`] when it cannot be opened.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let folder = Folder::open(path).map_err(|error| LoadError::ComponentsDir {
            path: path.to_owned(),
            error,
        })?;
        Ok(Self { folder })
    }

    /// Opens the component of `name` at `version`, with its path (for messages, and as the
    /// origin of an operator's file).
    ///
    /// # Errors
    /// [`LoadError::Selection`] naming what was looked for and what exists, when the name or
    /// the version is missing, not a plain name, or not there; [`LoadError::Read`] when the
    /// file is there but cannot be opened.
    pub fn open_component(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(std::fs::File, PathBuf), LoadError> {
        let root = self.folder.path();
        let application = match self.folder.open_subfolder(name) {
            Ok(folder) => folder,
            Err(error) => {
                return Err(LoadError::Selection(format!(
                    "no application `{}` in {}: {error}; applications there: {}",
                    name.escape_debug(),
                    root.display(),
                    listed(self.folder.subfolders())
                )));
            }
        };
        if version.is_empty() {
            return Err(LoadError::Selection(format!(
                "the task names application `{}` without a version; versions there: {}",
                name.escape_debug(),
                listed(versions(&application))
            )));
        }
        let file_name = format!("{version}{SUFFIX}");
        let path = application.path().join(&file_name);
        match application.open_file(&file_name) {
            Ok(file) => Ok((file, path)),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput
                ) || error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
            {
                Err(LoadError::Selection(format!(
                    "no version `{}` of application `{}` in {}: {error}; versions there: {}",
                    version.escape_debug(),
                    name.escape_debug(),
                    application.path().display(),
                    listed(versions(&application))
                )))
            }
            Err(error) => Err(LoadError::Read { path, error }),
        }
    }
}

/// The versions in an application's folder: its `*.wasm` regular files, suffix removed.
fn versions(application: &Folder) -> std::io::Result<Vec<String>> {
    let mut versions: Vec<String> = application
        .files()?
        .into_iter()
        .filter_map(|(name, _, _)| name.strip_suffix(SUFFIX).map(str::to_owned))
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// `a, b, c` (`none` when empty; the first [`LISTED`] and how many more), or why the folder
/// could not be listed.
fn listed(names: std::io::Result<Vec<String>>) -> String {
    match names {
        Ok(names) if names.is_empty() => "none".into(),
        Ok(names) => {
            let mut text = names
                .iter()
                .take(LISTED)
                .map(|n| n.escape_debug().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if names.len() > LISTED {
                text.push_str(&format!(" and {} more", names.len() - LISTED));
            }
            text
        }
        Err(error) => format!("unknown ({error})"),
    }
}
