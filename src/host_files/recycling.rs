//! Files of task folders reused, emptied, for later tasks' inputs instead of being removed
//! and made anew (why: `crate::local::task_folders`).
//!
//! A file a guest had in its folder is reused only when nothing can ever write to it again:
//! it is a regular file with a single link (no other name the guest gave it), and the kernel
//! grants a write lease on it, which it does only when no descriptor other than ours is open
//! for writing anywhere (`fcntl(2)`, `F_SETLEASE`). A write that a guest's output stream left
//! running when the guest returned (wasmtime-wasi runs it on a blocking thread that outlives
//! the store) holds such a descriptor until it ends. Anything else is removed.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};

use cap_std::fs::OpenOptions;
use rustix::fs::RenameFlags;

use super::{Folder, plain_name};

impl Folder {
    /// Empties this folder: each regular file that nothing else can write to is truncated to
    /// zero bytes and moved into `spares` under a name from `spare_name`, up to `keep` of
    /// them; everything else (links, folders, FIFOs, files with other links or writers) is
    /// removed. Returns the spare names used, in order.
    ///
    /// # Errors
    /// The folder cannot be listed or something in it cannot be removed. Spares made before
    /// the error are returned with it lost: they stay in `spares`, unused, until it is removed.
    pub fn recycle_contents(
        &self,
        spares: &Folder,
        mut spare_name: impl FnMut() -> String,
        keep: usize,
    ) -> io::Result<Vec<String>> {
        let mut kept = Vec::new();
        for entry in self.dir.entries()? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                // Not UTF-8: removed with the rest below.
                continue;
            };
            // `DirEntry::file_type` does not follow a link.
            if kept.len() < keep && entry.file_type()?.is_file() {
                let spare = spare_name();
                if self.retire(&name, spares, &spare).unwrap_or(false) {
                    kept.push(spare);
                    continue;
                }
            }
            self.clear(&name)?;
        }
        self.remove_contents()?;
        Ok(kept)
    }

    /// Truncates the file `name` and moves it into `spares` as `spare`, when it is a regular
    /// file with one link and no other writer. `Ok(false)`: it is not, and stays.
    fn retire(&self, name: &str, spares: &Folder, spare: &str) -> io::Result<bool> {
        let name = plain_name(name)?;
        let Ok(file) = self.open_regular(name, OpenOptions::new().read(true).write(true)) else {
            return Ok(false);
        };
        if rustix::fs::fstat(&file)?.st_nlink != 1 || !no_other_writer(&file) {
            return Ok(false);
        }
        file.set_len(0)?;
        rustix::fs::renameat_with(
            &self.dir,
            name,
            &spares.dir,
            plain_name(spare)?,
            RenameFlags::NOREPLACE,
        )?;
        Ok(true)
    }

    /// Moves the spare `spare` of this folder (see
    /// [`recycle_contents`](Self::recycle_contents)) into `target` as `target_name`, which
    /// must not exist, and fills it with the rest of `source`. Returns the bytes copied.
    ///
    /// # Errors
    /// A name is not plain, `target_name` exists (`AlreadyExists`), the spare is gone or is
    /// not a regular file, or I/O fails; the spare is not reused then.
    pub fn reuse_spare(
        &self,
        spare: &str,
        target: &Folder,
        target_name: &str,
        source: &mut impl io::Read,
    ) -> io::Result<u64> {
        let target_name = plain_name(target_name)?;
        rustix::fs::renameat_with(
            &self.dir,
            plain_name(spare)?,
            &target.dir,
            target_name,
            RenameFlags::NOREPLACE,
        )?;
        let filled = target
            .open_regular(target_name, OpenOptions::new().write(true))
            .and_then(|mut file| {
                // Empty already; truncated again so that no byte of an earlier task can
                // ever follow this one's.
                file.set_len(0)?;
                io::copy(source, &mut file)
            });
        if filled.is_err() {
            let _ = target.clear(target_name);
        }
        filled
    }
}

/// Whether `file` (open for writing) is the only descriptor open for writing on its file:
/// the kernel grants a write lease only then. Any failure (leases disabled, a file system
/// without them) answers no.
fn no_other_writer(file: &std::fs::File) -> bool {
    let fd: BorrowedFd<'_> = std::os::fd::AsFd::as_fd(file);
    // SAFETY: `fcntl` with `F_SETLEASE` takes an int argument and touches no memory; `fd` is
    // open for the duration of the call.
    let granted = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) } == 0;
    if granted {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }
    granted
}

#[cfg(test)]
mod tests {
    use std::io::{Seek as _, Write as _};

    use super::*;

    fn folders() -> (tempfile::TempDir, Folder, Folder) {
        let root = tempfile::tempdir().expect("tempdir");
        let task = Folder::create(&root.path().join("task"), true).expect("task");
        let spares = Folder::create(&root.path().join("spares"), true).expect("spares");
        (root, task, spares)
    }

    fn names(counter: &mut u32) -> impl FnMut() -> String + '_ {
        move || {
            *counter += 1;
            counter.to_string()
        }
    }

    fn is_empty(folder: &Folder) -> bool {
        std::fs::read_dir(folder.path())
            .expect("list")
            .next()
            .is_none()
    }

    /// Plain files become empty spares; a reused spare holds exactly its new content, even
    /// after a longer one.
    #[test]
    fn plain_files_are_reused_empty() {
        let (_root, task, spares) = folders();
        task.write("long", &[7; 10_000]).expect("write");
        let mut n = 0;
        let kept = task
            .recycle_contents(&spares, names(&mut n), 10)
            .expect("recycle");
        assert_eq!(kept, ["1"]);
        assert!(is_empty(&task));
        assert_eq!(spares.file_size("1"), Some(0));

        spares.write("source", b"short").expect("source");
        let mut source = spares.open_file("source").expect("open");
        let copied = spares
            .reuse_spare("1", &task, "input", &mut source)
            .expect("reuse");
        assert_eq!(copied, 5);
        assert_eq!(task.read("input").expect("read"), b"short");
        assert!(!spares.is_file("1"));
    }

    /// A file someone still holds open for writing (a guest's write left running), or that
    /// has another name, or is not a regular file, is removed, never reused.
    #[test]
    fn what_could_still_change_is_removed() {
        let (root, task, spares) = folders();
        task.write("held", b"held").expect("write");
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(task.path().join("held"))
            .expect("writer");
        task.write("twice", b"x").expect("write");
        std::fs::hard_link(task.path().join("twice"), task.path().join("again")).expect("link");
        std::os::unix::fs::symlink(root.path(), task.path().join("link")).expect("symlink");
        std::fs::create_dir(task.path().join("dir")).expect("dir");
        std::fs::write(task.path().join("dir/inner"), b"x").expect("inner");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            task.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("fifo");
        task.write("plain", b"p").expect("write");

        let mut n = 0;
        let kept = task
            .recycle_contents(&spares, names(&mut n), 10)
            .expect("recycle");
        // `plain`, and `again` or `twice` if it came after the other name was removed.
        assert!((1..=2).contains(&kept.len()), "{kept:?}");
        assert!(is_empty(&task));
        // The held file's late write lands in a file no task will ever see.
        writer.seek(io::SeekFrom::Start(0)).expect("seek");
        writer.write_all(b"late").expect("late write");
        for spare in &kept {
            let bytes = spares.read(spare).expect("spare");
            assert!(bytes.is_empty(), "{bytes:?}");
        }
        assert!(root.path().exists());
    }

    /// At most `keep` spares are made; the rest is removed.
    #[test]
    fn spares_are_bounded() {
        let (_root, task, spares) = folders();
        for i in 0..5 {
            task.write(&format!("f{i}"), b"x").expect("write");
        }
        let mut n = 0;
        let kept = task
            .recycle_contents(&spares, names(&mut n), 2)
            .expect("recycle");
        assert_eq!(kept.len(), 2);
        assert!(is_empty(&task));
        assert_eq!(std::fs::read_dir(spares.path()).expect("list").count(), 2);
    }

    /// A spare is never moved over a file that is there.
    #[test]
    fn a_spare_replaces_nothing() {
        let (_root, task, spares) = folders();
        spares.write("s", b"").expect("spare");
        task.write("input", b"there").expect("write");
        let mut source = spares.open_file("s").expect("open");
        let error = spares
            .reuse_spare("s", &task, "input", &mut source)
            .expect_err("exists");
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(task.read("input").expect("read"), b"there");
    }
}
