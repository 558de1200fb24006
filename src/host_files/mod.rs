//! Every file operation the host makes for a task or on its own stores, in one place, on
//! capability directory handles (`cap-std`).
//!
//! The rule (DESIGN.md, "the boundary is two-sided"): a name that a guest or a client chose is
//! only ever one plain component inside a directory handle, never a path; no open follows a
//! symbolic link; a file that is replaced is written aside and renamed into place, so no
//! reader sees half of it. A task's data folder is shared with its guest, which may have left
//! anything at any name (a link out of the folder, a directory, a file with other bytes): the
//! host removes it before it writes that name, and reads only regular files.
//!
//! Only the roots are paths: a data folder ArmoniK's agent named, a folder the operator named
//! on the command line, a temporary folder the host made.

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_fs_ext::{DirExt as _, FollowSymlinks, OpenOptionsFollowExt as _};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilder, OpenOptions, OpenOptionsExt as _};

mod empty_files;
mod names;
mod recycling;
mod removal;
mod reuse;

pub use empty_files::EmptyFiles;
pub use names::{plain_name, safe_file_name};
pub use recycling::{Leftovers, Spares};
use removal::empty;

/// `O_NONBLOCK`, as `open`'s flags take it.
#[allow(clippy::cast_possible_wrap)]
const NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;

/// A directory the host works in, held open: every operation resolves names inside it, never
/// through a link.
#[derive(Debug)]
pub struct Folder {
    dir: Dir,
    path: PathBuf,
    /// Whether the files written here are this user's alone (mode 0600 for new files): the
    /// host's stores and task folders; not the user's own output folders. (A spare keeps the
    /// mode it had; spares live in folders only this user can enter.)
    private: bool,
    /// Where the files written here come from while there are some: files of earlier tasks'
    /// folders, overwritten (the task folders of `run` and `dev`); else new ones.
    spares: Option<Arc<Spares>>,
}

impl Folder {
    /// Opens the existing directory at `path` (named by ArmoniK's agent or the operator).
    ///
    /// # Errors
    /// The directory cannot be opened.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            dir: Dir::open_ambient_dir(path, ambient_authority())?,
            path: path.to_owned(),
            private: true,
            spares: None,
        })
    }

    /// Opens the existing directory at `path` that the host shares: a task's data folder,
    /// whose files ArmoniK's agent reads (possibly as another user of the pod). The files the
    /// host writes there follow the umask, as the guest's own WASI writes do.
    ///
    /// # Errors
    /// The directory cannot be opened.
    pub fn open_shared(path: &Path) -> io::Result<Self> {
        Ok(Self {
            private: false,
            ..Self::open(path)?
        })
    }

    /// Creates the directory at `path` (and missing parents) if needed, and opens it. With
    /// `private`, the directories it creates are readable by this user only (mode 0700) and
    /// the files written in it too (0600): the host's own stores. Without, they follow the
    /// umask: the user's output folders.
    ///
    /// # Errors
    /// The directory cannot be created or opened.
    pub fn create(path: &Path, private: bool) -> io::Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        if private {
            builder.mode(0o700);
        }
        builder.create(path)?;
        Ok(Self {
            private,
            ..Self::open(path)?
        })
    }

    /// This folder, whose files [`write`](Self::write) and its kin make from `spares` while
    /// there are some.
    #[must_use]
    pub fn with_spares(self, spares: Arc<Spares>) -> Self {
        Self {
            spares: Some(spares),
            ..self
        }
    }

    /// A second handle on this folder (its directory descriptor duplicated), with its spares.
    ///
    /// # Errors
    /// The descriptor cannot be duplicated.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            dir: self.dir.try_clone()?,
            path: self.path.clone(),
            private: self.private,
            spares: self.spares.clone(),
        })
    }

    /// The directory's path, for messages and for handing it to the sandbox.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The subfolder `name`, created private (mode 0700) if it does not exist. A link at that
    /// name is refused.
    ///
    /// # Errors
    /// `name` is not a plain name, or the folder cannot be made or opened.
    pub fn subfolder(&self, name: &str) -> io::Result<Self> {
        let name = plain_name(name)?;
        let mut builder = DirBuilder::new();
        cap_std::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match self.dir.create_dir_with(name, &builder) {
            Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
            _ => {}
        }
        Ok(Self {
            dir: self.dir.open_dir_nofollow(name)?,
            path: self.path.join(name),
            private: self.private,
            spares: None,
        })
    }

    /// Opens the existing subfolder `name`, without following a link and without creating
    /// it.
    ///
    /// # Errors
    /// `name` is not a plain name; nothing is there (`NotFound`); it is a link or not a
    /// directory; it cannot be opened.
    pub fn open_subfolder(&self, name: &str) -> io::Result<Self> {
        let name = plain_name(name)?;
        Ok(Self {
            dir: self.dir.open_dir_nofollow(name)?,
            path: self.path.join(name),
            private: self.private,
            spares: None,
        })
    }

    /// Opens the regular file `name` for reading, without following a link.
    ///
    /// # Errors
    /// `name` is not a plain name; nothing is there (`NotFound`); it is a link, a directory or
    /// anything else but a regular file; it cannot be opened.
    pub fn open_file(&self, name: &str) -> io::Result<std::fs::File> {
        self.open_regular(name, OpenOptions::new().read(true))
    }

    /// Opens the regular file `name` with `options`, without following a link and without
    /// blocking (a FIFO or a device at that name is refused instead of blocking the thread
    /// in `open` until a writer comes; I/O on a regular file ignores the flag).
    fn open_regular(&self, name: &str, options: &mut OpenOptions) -> io::Result<std::fs::File> {
        self.open_regular_stat(name, options).map(|(file, _)| file)
    }

    /// [`open_regular`](Self::open_regular), with the file's status as it was checked.
    fn open_regular_stat(
        &self,
        name: &str,
        options: &mut OpenOptions,
    ) -> io::Result<(std::fs::File, rustix::fs::Stat)> {
        let name = plain_name(name)?;
        options.follow(FollowSymlinks::No).custom_flags(NONBLOCK);
        let file = self
            .dir
            .open_with(name, options)
            .map_err(|error| not_a_file(name, error))?
            .into_std();
        let stat = rustix::fs::fstat(&file)?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` is not a regular file"),
            ));
        }
        Ok((file, stat))
    }

    /// Opens the regular file `name` for reading, as [`open_file`](Self::open_file) does, with
    /// its size in bytes.
    ///
    /// # Errors
    /// As [`open_file`](Self::open_file).
    pub fn open_file_sized(&self, name: &str) -> io::Result<(std::fs::File, u64)> {
        let (file, stat) = self.open_regular_stat(name, OpenOptions::new().read(true))?;
        Ok((file, u64::try_from(stat.st_size).unwrap_or(0)))
    }

    /// The bytes of the regular file `name` (see [`open_file`](Self::open_file)).
    ///
    /// # Errors
    /// As [`open_file`](Self::open_file), or a read error.
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut file = self.open_file(name)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Whether `name` is a regular file of this folder (a link to one is not).
    pub fn is_file(&self, name: &str) -> bool {
        self.file_size(name).is_some()
    }

    /// The size in bytes of `name` if it is a regular file of this folder (a link to one is
    /// not), else `None`.
    pub fn file_size(&self, name: &str) -> Option<u64> {
        let metadata = self.dir.symlink_metadata(plain_name(name).ok()?).ok()?;
        metadata.file_type().is_file().then(|| metadata.len())
    }

    /// Removes whatever is at `name`: a file, a link (never its target), a directory and
    /// everything in it. Nothing there is fine.
    ///
    /// # Errors
    /// `name` is not a plain name, or the removal fails.
    pub fn clear(&self, name: &str) -> io::Result<()> {
        let name = plain_name(name)?;
        let removed = match self.dir.symlink_metadata(name) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => Err(error),
            Ok(meta) if meta.is_dir() => self
                .dir
                .open_dir_nofollow(name)
                .and_then(|tree| empty(&tree))
                .and_then(|()| self.dir.remove_dir(name)),
            Ok(_) => self.dir.remove_file_or_symlink(name),
        };
        match removed {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Writes `data` as `name`, replacing any file there atomically (a file written aside, a
    /// spare or a new temporary file in this folder, then renamed over it).
    ///
    /// # Errors
    /// `name` is not a plain name, or writing fails (nothing is left behind then).
    pub fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.write_with(name, Some(data.len() as u64), |file| file.write_all(data))
    }

    /// Like [`write`](Self::write), with the content written by `fill` into the new file;
    /// `size`, when known, is how many bytes it will write (a spare of that size is reused in
    /// place). Returns what `fill` returns.
    ///
    /// `fill` must write sequentially from the file's start (`write`, `io::copy`), never seek
    /// or write at an offset: the file may be a spare holding an earlier task's bytes, cut
    /// where the file's position stands once `fill` returns.
    ///
    /// # Errors
    /// As [`write`](Self::write), or `fill` fails.
    pub(crate) fn write_with<T>(
        &self,
        name: &str,
        size: Option<u64>,
        fill: impl FnOnce(&mut std::fs::File) -> io::Result<T>,
    ) -> io::Result<T> {
        let name = plain_name(name)?;
        if let Some(spares) = &self.spares
            && let Some(spare) = spares.take(size)
        {
            return spares.fill_into(spare, self, name, fill);
        }
        // No spare: a new file, written aside and renamed into place.
        let mut new = self.new_file()?;
        let filled = fill(new.file())?;
        new.persist(name)?;
        Ok(filled)
    }

    /// A file to fill bit by bit (a download), then to name with [`NewFile::persist`], which
    /// replaces any file at that name atomically, as [`write`](Self::write) does. Dropped
    /// before, it leaves nothing behind.
    ///
    /// # Errors
    /// The temporary file cannot be made.
    pub fn new_file(&self) -> io::Result<NewFile<'_>> {
        let mut temp = cap_tempfile::TempFile::new(&self.dir)?;
        let file = temp.as_file_mut().try_clone()?.into_std();
        if self.private {
            // Whatever the umask, the host's files are its own.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(NewFile { temp, file })
    }

    /// Creates the new file `name` (failing if anything is there, a link included).
    fn create_new(&self, name: &str) -> io::Result<std::fs::File> {
        let name = plain_name(name)?;
        let mut options = OpenOptions::new();
        options
            .write(true)
            .create_new(true)
            .follow(FollowSymlinks::No);
        Ok(self.dir.open_with(name, &options)?.into_std())
    }

    /// Moves the regular file `name` of this folder into `target` as `target_name`, which
    /// must not exist yet (a committed result never changes). Copies when the folders are on
    /// different file systems.
    ///
    /// # Errors
    /// `name` is not a regular file of this folder, `target_name` exists (`AlreadyExists`),
    /// or I/O fails.
    pub fn move_file(&self, name: &str, target: &Folder, target_name: &str) -> io::Result<u64> {
        let source = self.open_file(name)?;
        let size = source.metadata()?.len();
        let target_name = plain_name(target_name)?;
        // A hard link never replaces what is there: link, then unlink the source. Where the
        // file system cannot link (another device, no hard links), a new file is made instead,
        // which never replaces anything either.
        match self.dir.hard_link(name, &target.dir, target_name) {
            Ok(()) => self.dir.remove_file(name)?,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Err(error),
            Err(_) => {
                let mut source = source;
                let mut file = target.create_new(target_name)?;
                io::copy(&mut source, &mut file)?;
                self.dir.remove_file(name)?;
            }
        }
        Ok(size)
    }

    /// Removes the file `name` if it is there (a link: the link itself).
    ///
    /// # Errors
    /// `name` is not a plain name, or the removal fails.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        match self.dir.remove_file_or_symlink(plain_name(name)?) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Removes everything in this folder, never following a link, holding at most two
    /// directories open whatever the depth of the tree (see `empty`).
    ///
    /// # Errors
    /// A removal fails.
    pub fn remove_contents(&self) -> io::Result<()> {
        empty(&self.dir)
    }

    /// The size in bytes of this directory itself, as the file system reports it: on ext4,
    /// the blocks its listing takes, which never shrink when entries are removed (so a folder
    /// that once held many files costs a long listing ever after); on tmpfs, a count of its
    /// entries.
    ///
    /// # Errors
    /// The directory cannot be examined.
    pub fn listing_size(&self) -> io::Result<u64> {
        Ok(u64::try_from(rustix::fs::fstat(&self.dir)?.st_size).unwrap_or(u64::MAX))
    }

    /// The names of the subfolders of this folder (links to folders are left out), sorted.
    ///
    /// # Errors
    /// The folder cannot be listed.
    pub fn subfolders(&self) -> io::Result<Vec<String>> {
        let mut names = self.names_of(cap_std::fs::FileType::is_dir)?;
        names.sort_unstable();
        Ok(names)
    }

    /// The names of the regular files of this folder (links and subfolders are left out), in
    /// the listing's order (no file is examined apart, as [`files`](Self::files) does).
    ///
    /// # Errors
    /// The folder cannot be listed.
    pub fn file_names(&self) -> io::Result<Vec<String>> {
        self.names_of(cap_std::fs::FileType::is_file)
    }

    /// The UTF-8 names of the entries whose type (as the listing gives it, never following a
    /// link) passes `kind`.
    fn names_of(&self, kind: fn(&cap_std::fs::FileType) -> bool) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in self.dir.entries()? {
            let entry = entry?;
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                // Removed since it was listed (without the type in the listing, it is looked up).
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            if let (true, Some(name)) = (kind(&file_type), entry.file_name().to_str()) {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// The regular files of this folder (links and subfolders are left out): name, size in
    /// bytes, and last modification.
    ///
    /// # Errors
    /// The folder cannot be listed.
    pub fn files(&self) -> io::Result<Vec<(String, u64, std::time::SystemTime)>> {
        let mut files = Vec::new();
        for entry in self.dir.entries()? {
            let entry = entry?;
            // `DirEntry::metadata` does not follow a link.
            let meta = entry.metadata()?;
            if let (true, Some(name)) = (meta.is_file(), entry.file_name().to_str()) {
                files.push((name.to_owned(), meta.len(), meta.modified()?.into_std()));
            }
        }
        Ok(files)
    }

    /// Checks that this folder belongs to the host: owned by this process's user and
    /// writable by no one else. Another user who can write here could plant files the host
    /// would trust (compiled code in the compile cache).
    ///
    /// # Errors
    /// `PermissionDenied`, saying who owns it or who else may write.
    pub fn check_private(&self) -> io::Result<()> {
        owned_by_us(&self.dir, &self.path.display().to_string())
    }

    /// Opens the regular file `name` for reading if it belongs to the host (see
    /// [`check_private`](Self::check_private)).
    ///
    /// # Errors
    /// As [`open_file`](Self::open_file), or `PermissionDenied`.
    pub fn open_own_file(&self, name: &str) -> io::Result<std::fs::File> {
        let file = self.open_file(name)?;
        owned_by_us(&file, &self.path.join(name).display().to_string())?;
        Ok(file)
    }
}

/// A file being written in a [`Folder`], without a name yet (see [`Folder::new_file`]).
#[derive(Debug)]
pub struct NewFile<'a> {
    temp: cap_tempfile::TempFile<'a>,
    file: std::fs::File,
}

impl NewFile<'_> {
    /// The open file, to write to.
    pub fn file(&mut self) -> &mut std::fs::File {
        &mut self.file
    }

    /// Names the file `name` in its folder, replacing atomically whatever file was there.
    ///
    /// # Errors
    /// `name` is not a plain name, or the rename fails (the file is removed then).
    pub fn persist(self, name: &str) -> io::Result<()> {
        let name = plain_name(name)?;
        drop(self.file);
        self.temp.replace(name)
    }
}

/// Fails unless `fd` is owned by this process's effective user and not writable by group or
/// others.
fn owned_by_us(fd: impl rustix::fd::AsFd, what: &str) -> io::Result<()> {
    let stat = rustix::fs::fstat(fd)?;
    let me = rustix::process::geteuid().as_raw();
    let problem = if stat.st_uid != me {
        format!(
            "it is owned by uid {}, not by this user (uid {me})",
            stat.st_uid
        )
    } else if stat.st_mode & 0o022 != 0 {
        format!(
            "its group or other users may write to it (mode {:o})",
            stat.st_mode & 0o7777
        )
    } else {
        return Ok(());
    };
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{what} does not belong to this host: {problem}"),
    ))
}

/// Says plainly that a link was refused (the kernel only says "too many levels of links").
fn not_a_file(name: &str, error: io::Error) -> io::Error {
    if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is a symbolic link, which the host never follows"),
        )
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_a_guest_planted_is_followed() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = root.path().join("outside");
        std::fs::write(&outside, b"secret").expect("write");
        let folder = Folder::create(&root.path().join("data"), true).expect("folder");
        std::os::unix::fs::symlink(&outside, folder.path().join("link")).expect("symlink");
        std::fs::create_dir(folder.path().join("dir")).expect("dir");
        std::fs::write(folder.path().join("dir/inner"), b"x").expect("write");

        assert!(folder.open_file("link").is_err());
        assert!(folder.open_file("dir").is_err());
        assert!(!folder.is_file("link"));
        let store = folder.subfolder("store").expect("store");
        store.write("r", b"good").expect("write");
        for planted in ["link", "dir"] {
            let mut source = store.open_file("r").expect("open");
            folder.clear(planted).expect("clear");
            (folder.write_with(planted, None, |f| io::copy(&mut source, f))).expect("copy");
            assert_eq!(folder.read(planted).expect("read"), b"good");
        }
        assert_eq!(std::fs::read(&outside).expect("outside"), b"secret");
        // A longer file at the name is replaced, not overwritten in place.
        std::fs::write(folder.path().join("long"), b"much longer content").expect("write");
        let mut source = store.open_file("r").expect("open");
        (folder.write_with("long", None, |f| io::copy(&mut source, f))).expect("copy");
        assert_eq!(folder.read("long").expect("read"), b"good");
        // A move never replaces what is there.
        folder.write("new", b"new").expect("write");
        let error = folder.move_file("new", &store, "r").expect_err("exists");
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(store.read("r").expect("read"), b"good");
        folder.move_file("new", &store, "moved").expect("move");
        assert!(!folder.is_file("new"));
        // A link planted as a subfolder is refused.
        std::os::unix::fs::symlink(root.path(), folder.path().join("sub")).expect("symlink");
        assert!(folder.subfolder("sub").is_err());
    }

    #[test]
    fn host_files_are_private() {
        let root = tempfile::tempdir().expect("tempdir");
        let folder = Folder::create(&root.path().join("a/b"), true).expect("folder");
        folder.check_private().expect("private");
        folder.write("f", b"x").expect("write");
        folder.open_own_file("f").expect("own");
        let mode = std::fs::metadata(folder.path().join("f"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(
            folder.path().join("f"),
            std::fs::Permissions::from_mode(0o666),
        )
        .expect("chmod");
        assert_eq!(
            folder.open_own_file("f").expect_err("writable").kind(),
            io::ErrorKind::PermissionDenied
        );
        std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        assert!(folder.check_private().is_err());
    }
}
