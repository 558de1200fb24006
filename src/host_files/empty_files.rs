//! Empty files kept from one process to the next.
//!
//! A process's spares (`host_files::recycling`) would otherwise be removed when it exits, and
//! the next process would make its files anew: on an ext4 without a journal, making a file in
//! the minutes after thousands were removed costs about a millisecond each (the inode
//! allocator skips every inode freed in that time, `recently_deleted` in the kernel's
//! `fs/ext4/ialloc.c`). `run` twice in a row of a graph with a 10,000-way fan-in took 6 s, then
//! 12 s. So at exit the spares are emptied and moved into a folder of empty files, and the
//! next process takes its new files from there before it makes any.
//!
//! Nothing of a task can pass through it: a file enters it only once emptied (`ftruncate` to
//! zero), and a file taken from it is overwritten from its start and cut at the end of its new
//! content before it gets a name in a task folder, like any spare. The folder must belong to
//! this user alone (checked when it is opened); several processes may share it: a file is
//! taken by renaming it into the taker's own folder, which only one of them can do.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::RenameFlags;
use rustix::io::Errno;

use super::{Folder, plain_name};

/// A folder of empty files shared by this user's processes, on the file system of the folders
/// they serve (a file moves between them by `rename`).
#[derive(Debug)]
pub struct EmptyFiles {
    folder: Folder,
    /// The names listed and not yet taken; listed at the first take or keep.
    names: Mutex<Option<Vec<String>>>,
    /// Files this process put there.
    kept: AtomicUsize,
    /// Files the folder holds at most, as far as this process knows (what it listed and not
    /// taken, and what it put there): beyond, a process's spares are removed at its end.
    max: usize,
}

impl EmptyFiles {
    /// The empty files kept at `path`, made (mode 0700) if needed, at most `max` of them. The
    /// last component of
    /// `path` is never followed if it is a link: in a shared temporary directory, another user
    /// could otherwise point it at a folder of this user's own files.
    ///
    /// # Errors
    /// `path` has no parent; the folder cannot be made or opened, or it is a link; it does
    /// not belong to this user, or others may enter it (another user could otherwise plant
    /// files or hold them open, and read what the host writes into them).
    pub fn open(path: &std::path::Path, max: usize) -> io::Result<Self> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a folder's path", path.display()),
            ));
        };
        let folder = Folder::create(parent, true)?.subfolder(name)?;
        folder.check_private()?;
        let mode = rustix::fs::fstat(&folder.dir)?.st_mode;
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} may be entered by other users (mode {:o}): it must be this user's alone",
                    path.display(),
                    mode & 0o7777
                ),
            ));
        }
        Ok(Self {
            folder,
            names: Mutex::default(),
            kept: AtomicUsize::new(0),
            max,
        })
    }

    /// Where temporary data folders (in the system's temporary directory, as `run` and `dev`
    /// make them) keep their empty files: `<temp dir>/armonik-wasm-empty-files-<uid>`.
    pub fn temp_dir_path() -> std::path::PathBuf {
        let uid = rustix::process::geteuid().as_raw();
        std::env::temp_dir().join(format!("armonik-wasm-empty-files-{uid}"))
    }

    /// Runs `f` on the names listed and not yet taken, listed now if they were not.
    fn with_names<T>(&self, f: impl FnOnce(&mut Vec<String>) -> T) -> T {
        // A pop or a listing cannot panic half-way.
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        f(names.get_or_insert_with(|| {
            self.folder.file_names().unwrap_or_else(|error| {
                tracing::debug!(folder = %self.folder.path().display(), %error, "cannot list the empty files");
                Vec::new()
            })
        }))
    }

    /// Forgets the names listed: the next take or keep lists the folder again.
    pub(super) fn look_again(&self) {
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Moves one of the empty files into `into` as `name`. `false` when none is left, or when
    /// they cannot move there (another file system: none is tried again).
    pub(super) fn take(&self, into: &Folder, name: &str) -> bool {
        let Ok(name) = plain_name(name) else {
            return false;
        };
        self.with_names(|names| {
        while let Some(candidate) = names.pop() {
            match rustix::fs::renameat_with(
                &self.folder.dir,
                candidate.as_str(),
                &into.dir,
                name,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => return true,
                // Another process took it first.
                Err(Errno::NOENT) => {}
                Err(error) => {
                    tracing::debug!(folder = %self.folder.path().display(), %error, "the empty files cannot serve");
                    names.clear();
                    return false;
                }
            }
        }
        false
        })
    }

    /// Moves the file `name` of `from`, which must be empty, into this folder; `false` when
    /// the folder holds its most already (the file stays where it was).
    ///
    /// # Errors
    /// The rename fails (another file system, say); the file stays where it was.
    pub(super) fn keep(&self, from: &Folder, name: &str) -> io::Result<bool> {
        let held = self.with_names(|names| names.len()) + self.kept.load(Ordering::Relaxed);
        if held >= self.max {
            return Ok(false);
        }
        let kept = uuid::Uuid::new_v4().to_string();
        rustix::fs::renameat_with(
            &from.dir,
            plain_name(name)?,
            &self.folder.dir,
            kept.as_str(),
            RenameFlags::NOREPLACE,
        )?;
        self.kept.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;
    use std::sync::Arc;

    use super::*;
    use crate::host_files::Spares;

    fn inodes(folder: &std::path::Path) -> Vec<(u64, u64)> {
        let mut inodes: Vec<_> = std::fs::read_dir(folder)
            .expect("list")
            .map(|entry| {
                let meta = entry.expect("entry").metadata().expect("stat");
                (meta.ino(), meta.len())
            })
            .collect();
        inodes.sort_unstable();
        inodes
    }

    /// Spares leave emptied into the empty files when their process is done, and the next
    /// one's files are those very files (same inodes), holding only their new content.
    #[test]
    fn spares_go_empty_to_the_next_process() {
        let root = tempfile::tempdir().expect("tempdir");
        let empty = root.path().join("empty");
        let spares_of = |name: &str| {
            let pool = EmptyFiles::open(&empty, 10).expect("empty files");
            let folder = Folder::create(&root.path().join(name), true).expect("spares");
            Arc::new(Spares::new(folder, 10, Some(pool)).expect("spares"))
        };
        let task = |name: &str, spares: &Arc<Spares>| {
            Folder::create(&root.path().join(name), true)
                .expect("task")
                .with_spares(spares.clone())
        };

        let first = spares_of("spares-1");
        let folder = task("task-1", &first);
        folder
            .write("secret", b"the first task's data")
            .expect("write");
        folder.write("empty", b"").expect("write");
        assert!(first.recycle(&folder, 0).expect("recycle").is_empty());
        first.release_all().expect("release");
        let kept = inodes(&empty);
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|(_, len)| *len == 0), "{kept:?}");
        assert!(inodes(&root.path().join("spares-1")).is_empty());

        let second = spares_of("spares-2");
        let folder = task("task-2", &second);
        folder.write("a", b"new").expect("write");
        folder.write("b", b"").expect("write");
        assert_eq!(folder.read("a").expect("read"), b"new");
        let mut reused = inodes(&root.path().join("task-2"));
        reused.iter_mut().for_each(|(_, len)| *len = 0);
        assert_eq!(reused, kept, "the same files serve again");
        assert!(inodes(&empty).is_empty());
        // None left: a new file.
        folder.write("c", b"made").expect("write");
        assert_eq!(folder.read("c").expect("read"), b"made");
    }

    /// A file another process took first is skipped for the next one.
    #[test]
    fn a_file_taken_by_another_process_is_skipped() {
        let root = tempfile::tempdir().expect("tempdir");
        let pool = EmptyFiles::open(&root.path().join("empty"), 10).expect("empty files");
        let into = Folder::create(&root.path().join("into"), true).expect("into");
        for name in ["a", "b"] {
            std::fs::write(root.path().join("empty").join(name), b"").expect("write");
        }
        // Listed first, then one goes behind the list's back.
        assert!(pool.take(&into, "1"));
        let left = std::fs::read_dir(root.path().join("empty"))
            .expect("list")
            .next()
            .expect("one left")
            .expect("entry")
            .path();
        std::fs::remove_file(left).expect("taken elsewhere");
        assert!(!pool.take(&into, "2"));
        assert!(into.is_file("1"));
        assert!(!into.is_file("2"));
    }

    /// Empty files on another file system than the spares are not used, and nothing fails.
    #[test]
    fn empty_files_on_another_file_system_are_left_alone() {
        // Linux's shared memory is a file system of its own (tmpfs), in containers too.
        let shm = tempfile::tempdir_in("/dev/shm").expect("a folder in /dev/shm");
        let root = tempfile::tempdir().expect("tempdir");
        assert_ne!(
            std::fs::metadata(shm.path()).expect("stat").dev(),
            std::fs::metadata(root.path()).expect("stat").dev(),
            "the temporary directory is on /dev/shm's file system"
        );
        let pool = EmptyFiles::open(&shm.path().join("empty"), 10).expect("empty files");
        std::fs::write(shm.path().join("empty").join("a"), b"").expect("write");
        let into = Folder::create(&root.path().join("into"), true).expect("into");
        assert!(!pool.take(&into, "1"));
        let spare = Folder::create(&root.path().join("spare"), true).expect("spare");
        spare.write("x", b"").expect("write");
        assert!(pool.keep(&spare, "x").is_err());
        assert!(spare.is_file("x"), "the file stays where it was");
    }

    /// A folder of empty files other users could write to or enter is refused, and so is a
    /// link at its name, even to a folder of this user's.
    #[test]
    fn a_folder_others_may_enter_or_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("empty");
        std::fs::create_dir(&path).expect("mkdir");
        for mode in [0o777, 0o755, 0o711] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let error = EmptyFiles::open(&path, 10).expect_err("refused");
            assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
        }
        let own = root.path().join("own");
        std::fs::create_dir(&own).expect("mkdir");
        std::fs::write(own.join("precious"), b"kept").expect("write");
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&own, &link).expect("symlink");
        EmptyFiles::open(&link, 10).expect_err("a link is refused");
        assert_eq!(std::fs::read(own.join("precious")).expect("read"), b"kept");
    }

    /// A file in the folder that another name or another descriptor can reach is removed, never
    /// filled: whoever holds it would read the task's data.
    #[test]
    fn a_file_someone_else_can_reach_is_not_filled() {
        let root = tempfile::tempdir().expect("tempdir");
        let empty = root.path().join("empty");
        let pool = EmptyFiles::open(&empty, 10).expect("empty files");
        let linked = empty.join("linked");
        std::fs::write(&linked, b"").expect("write");
        std::fs::hard_link(&linked, root.path().join("elsewhere")).expect("link");
        let held = empty.join("held");
        std::fs::write(&held, b"").expect("write");
        let reader = std::fs::File::open(&held).expect("open");
        let folder = Folder::create(&root.path().join("spares"), true).expect("spares");
        let spares = Arc::new(Spares::new(folder, 10, Some(pool)).expect("spares"));
        let task = Folder::create(&root.path().join("task"), true)
            .expect("task")
            .with_spares(spares);
        task.write("a", b"task data").expect("write");
        assert_eq!(task.read("a").expect("read"), b"task data");
        assert_eq!(
            std::fs::read(root.path().join("elsewhere")).expect("read"),
            b""
        );
        assert_eq!(std::fs::metadata(&held).map(|m| m.len()).unwrap_or(0), 0);
        assert_eq!(
            reader.metadata().expect("stat").len(),
            0,
            "the held file got nothing"
        );
        assert!(
            std::fs::read_dir(&empty).expect("list").next().is_none(),
            "both removed"
        );
    }

    /// The folder holds a bounded number of files: the spares past it are removed.
    #[test]
    fn the_empty_files_are_bounded() {
        let root = tempfile::tempdir().expect("tempdir");
        let empty = root.path().join("empty");
        let pool = EmptyFiles::open(&empty, 3).expect("empty files");
        std::fs::write(empty.join("earlier"), b"").expect("write");
        let folder = Folder::create(&root.path().join("spares"), true).expect("spares");
        let spares = Arc::new(Spares::new(folder, 10, Some(pool)).expect("spares"));
        let task = Folder::create(&root.path().join("task"), true)
            .expect("task")
            .with_spares(spares.clone());
        for name in ["a", "b", "c", "d"] {
            task.write(name, name.as_bytes()).expect("write");
        }
        assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
        spares.release_all().expect("release");
        let kept = std::fs::read_dir(&empty).expect("list").count();
        assert_eq!(
            kept, 3,
            "the earlier file was taken, then three of the four kept"
        );
        assert!(!empty.join("earlier").exists(), "the earlier file served");
        assert!(
            std::fs::read_dir(root.path().join("spares"))
                .expect("list")
                .next()
                .is_none()
        );
    }
}
