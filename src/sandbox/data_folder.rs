//! The host side of the `data-folder` interface (`wit/worker.wit`): a task's data folder a
//! whole file, or a part of any size of one (`read-part`), per call, for interpreters whose
//! WASI file calls would move it 64 KiB at a time.
//!
//! Every call goes through the task's [`Folder`] handle (`host_files`): the guest's name is one
//! plain file name inside it, no link is followed, a write replaces its file atomically.
//!
//! Linked by hand rather than through `bindgen!`'s trait, for the copies: a read maps the file
//! and wasmtime copies it from the page cache straight into the guest's memory (through
//! `Bytes`), and a write hands the guest's own bytes to the file (through `WasmList`), where
//! `Vec`s would add a copy each way, into freshly faulted memory (a 64 MiB payload: about
//! 16,000 page faults per copy), on the file systems where a mapping is safe (see
//! `MAPPED_FILE_SYSTEMS`; elsewhere the file is read). With them a 64 MiB echo in Python ran at 0.33x the Python
//! SDK worker's throughput; with these, 0.6x (BENCHMARKS.md).

use std::fs::File;
use std::io::{self, Read as _, Seek as _};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use memmap2::Mmap;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList, WasmStr};

use super::TaskState;
use crate::bindings::armonik::worker::data_folder::FileError;
use crate::host_files::Folder;

/// The interface's name in the world, as the linker resolves it.
const INTERFACE: &str = "armonik:worker/data-folder@0.1.0";

/// What the `data-folder` calls of one task reach: its data folder, or nothing for an
/// instance made ahead of its task (see `ahead`), which refuses every call.
pub struct DataFolder {
    folder: Option<Arc<Folder>>,
    /// The task's memory limit, in bytes: a file larger than that cannot be handed to the
    /// guest, so the host does not read it.
    memory_limit: usize,
    /// Whether the guest called this interface (an instance made ahead that did is not used).
    called: bool,
    /// Whether reads map the folder's files: its file system's answer (see
    /// [`MAPPED_FILE_SYSTEMS`]), found on the first file a read opens and kept for the task,
    /// whose folder stays on the same file system.
    maps_files: OnceLock<bool>,
}

impl DataFolder {
    /// The data folder of a task whose memories may use `memory_limit` bytes.
    pub fn new(folder: Arc<Folder>, memory_limit: usize) -> Self {
        Self {
            folder: Some(folder),
            memory_limit,
            called: false,
            maps_files: OnceLock::new(),
        }
    }

    /// No folder yet: every call fails until a task is bound.
    pub fn unbound() -> Self {
        Self {
            folder: None,
            memory_limit: 0,
            called: false,
            maps_files: OnceLock::new(),
        }
    }

    /// Whether the guest called this interface.
    pub fn was_called(&self) -> bool {
        self.called
    }

    /// The folder a call works in and the most a read may hand over (marking the call).
    fn access(&mut self) -> Result<(Arc<Folder>, u64), FileError> {
        self.called = true;
        let folder = self
            .folder
            .clone()
            .ok_or_else(|| FileError::Io("no task is bound to this instance yet".into()))?;
        // A list in a 32-bit linear memory holds less than 4 GiB, whatever the limit says.
        let limit = (self.memory_limit as u64).min(u64::from(u32::MAX));
        Ok((folder, limit))
    }
}

/// The bytes of `name` in `folder`, if it holds at most `limit` bytes. `maps_files` is the
/// folder's answer to whether its files may be mapped, found here on the first file opened.
fn read_whole(
    folder: &Folder,
    name: &str,
    limit: u64,
    maps_files: &OnceLock<bool>,
) -> Result<Bytes, FileError> {
    let (file, size) = folder.open_file_sized(name).map_err(file_error)?;
    if size > limit {
        return Err(FileError::TooLarge(format!(
            "`{}` holds {size} bytes, more than the {limit} bytes this read may take (the smaller of its max-size and the task's memory limit)",
            name.escape_debug()
        )));
    }
    let length = usize::try_from(size).map_err(|_| FileError::TooLarge(name.into()))?;
    read_range(file, 0, length, maps_files)
}

/// At most `length` bytes of `name` in `folder` from byte `offset` (fewer at its end, none
/// past it), and at most `limit`.
fn read_part(
    folder: &Folder,
    name: &str,
    offset: u64,
    length: u64,
    limit: u64,
    maps_files: &OnceLock<bool>,
) -> Result<Bytes, FileError> {
    let (file, size) = folder.open_file_sized(name).map_err(file_error)?;
    let length = size.saturating_sub(offset).min(length).min(limit);
    let length = usize::try_from(length).map_err(|_| FileError::TooLarge(name.into()))?;
    read_range(file, offset, length, maps_files)
}

/// `length` bytes of `file` from byte `offset`, which the caller found within the file:
/// mapped where the folder's file system allows it (`maps_files`, its answer found on the
/// first file a read opens), else read.
fn read_range(
    file: File,
    offset: u64,
    length: usize,
    maps_files: &OnceLock<bool>,
) -> Result<Bytes, FileError> {
    if length == 0 {
        return Ok(Bytes::new());
    }
    // Any file of the folder answers for all of them: a name is one plain component opened
    // without following a link, so the file lies in the folder itself, on its file system
    // (only a mount point inside the folder could differ, and nothing mounts there: the host
    // or ArmoniK's agent made it a plain directory, and a guest cannot mount).
    let maps = *maps_files.get_or_init(|| {
        let kind = file_system_type(&file);
        let maps = kind.is_some_and(|kind| MAPPED_FILE_SYSTEMS.contains(&kind));
        tracing::debug!(
            file_system = %kind.map_or_else(|| "unknown".into(), |kind| format!("{kind:#x}")),
            "data-folder reads {} this task's files",
            if maps { "map" } else { "copy" }
        );
        maps
    });
    let mapped = (maps && length >= MAP_FROM).then(|| map(&file, offset, length));
    contents(file, offset, length, mapped)
}

/// Maps `length` bytes of `file` from byte `offset`; the file lies on one of
/// [`MAPPED_FILE_SYSTEMS`].
fn map(file: &File, offset: u64, length: usize) -> io::Result<Mmap> {
    // SAFETY: a mapping faults (SIGBUS) when the file shrinks under it, or when a page
    // cannot be brought in. Neither is in a task's or a client's hands during this call:
    // the guest is blocked in it, the only writes it can leave running (output streams)
    // never shrink a file, no agent call (which could rewrite a file) runs beside it, and
    // on these file systems a hole reads without allocating (see `MAPPED_FILE_SYSTEMS`).
    // What remains is a disk's I/O error or another process of this user truncating the
    // file, which could kill the host in many other ways. Populated up front: one walk of
    // the page cache instead of a fault per page.
    unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(length)
            .populate()
            .map(file)
    }
}

/// `length` bytes of `file` from byte `offset`: the mapping when one was made (`mapped`),
/// else read, when none was tried or the kernel refused it (a file system without `mmap`, the
/// address space or the map count of the process exhausted).
fn contents(
    mut file: File,
    offset: u64,
    length: usize,
    mapped: Option<io::Result<Mmap>>,
) -> Result<Bytes, FileError> {
    match mapped {
        Some(Ok(map)) => return Ok(Bytes::from_owner(map)),
        Some(Err(error)) => tracing::debug!(%error, "cannot map a file to read it: reading it"),
        None => {}
    }
    let mut bytes = Vec::with_capacity(length);
    // The file may have changed size since: `take` keeps the bound, and a shorter file gives
    // fewer bytes.
    file.seek(io::SeekFrom::Start(offset)).map_err(file_error)?;
    file.take(length as u64)
        .read_to_end(&mut bytes)
        .map_err(file_error)?;
    Ok(Bytes::from(bytes))
}

/// Files smaller than this (bytes) are read, not mapped: for them a read (one system call,
/// into a buffer from the allocator's heap, which stays resident) costs less than a mapping's
/// three calls and the unmapping's TLB shootdown on every core the process ran on; a fan-in
/// task reading 10,000 inputs of a few bytes each spent most of its time there. 128 KiB is
/// glibc's initial threshold below which `malloc` serves from its heap rather than from
/// fresh, faulting pages (it rises as large blocks are freed): past it, a read pays a fault
/// per page and an extra copy.
const MAP_FROM: usize = 128 << 10;

/// `f_type`s of the file systems whose files a read maps (ext4, XFS, btrfs): there a hole read
/// through a read-only mapping allocates nothing that can fail (it reads a zeroed page of the
/// page cache), so the mapping faults only on an I/O error. Files elsewhere are read: on
/// tmpfs a hole read allocates against the size limit and, when that is reached (a guest can
/// fill its folder), the fault is a SIGBUS, which would kill the host; network and FUSE file
/// systems may fail a page in the same way.
const MAPPED_FILE_SYSTEMS: [u64; 3] = [0xEF53, 0x5846_5342, 0x9123_683E];

/// The `f_type` of the file system `file` lies on (`fstatfs`), `None` when it cannot be had
/// (the file is then read, not mapped).
fn file_system_type(file: &File) -> Option<u64> {
    rustix::fs::fstatfs(file).ok().map(|stat| {
        // `f_type` is signed on glibc and unsigned on musl; the magic numbers fit either.
        #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
        let kind = stat.f_type as u64;
        kind
    })
}

/// The guest's view of a host file error: `InvalidInput` is what `host_files` answers for a
/// name that is not plain, a link or not a regular file.
fn file_error(error: io::Error) -> FileError {
    let message = error.to_string();
    match error.kind() {
        io::ErrorKind::NotFound => FileError::NotFound(message),
        io::ErrorKind::InvalidInput | io::ErrorKind::IsADirectory => {
            FileError::InvalidName(message)
        }
        _ => FileError::Io(message),
    }
}

/// Links `read`, `read-part` and `write` of the `data-folder` interface to each task's [`DataFolder`].
///
/// # Errors
/// The linker already holds the interface.
pub(super) fn add_to_linker(linker: &mut Linker<TaskState>) -> wasmtime::Result<()> {
    let mut interface = linker.instance(INTERFACE)?;
    // Names are read in place (`WasmStr`) from a guest that encodes strings in UTF-8 (every
    // toolchain here): a name longer than a file name is refused without the host copying it.
    // A UTF-16 guest's is transcoded first, within the host-call fuel (the memory limit).
    // A name that does not decode traps (`to_str` fails, after the call is marked), as the
    // canonical ABI has it for any string lifted from a guest: its bindings cannot make one.
    interface.func_wrap(
        "read",
        |mut store: StoreContextMut<'_, TaskState>, (name, max_size): (WasmStr, u64)| {
            let read = match store.data_mut().files.access() {
                Ok((folder, limit)) => {
                    let name = name.to_str(&store)?;
                    let maps_files = &store.data().files.maps_files;
                    read_whole(&folder, &name, limit.min(max_size), maps_files)
                }
                Err(error) => Err(error),
            };
            Ok((read,))
        },
    )?;
    interface.func_wrap(
        "read-part",
        |mut store: StoreContextMut<'_, TaskState>, (name, offset, length): (WasmStr, u64, u64)| {
            let read = match store.data_mut().files.access() {
                Ok((folder, limit)) => {
                    let name = name.to_str(&store)?;
                    let maps_files = &store.data().files.maps_files;
                    read_part(&folder, &name, offset, length, limit, maps_files)
                }
                Err(error) => Err(error),
            };
            Ok((read,))
        },
    )?;
    interface.func_wrap(
        "write",
        |mut store: StoreContextMut<'_, TaskState>, (name, data): (WasmStr, WasmList<u8>)| {
            let written = match store.data_mut().files.access() {
                Ok((folder, _)) => folder
                    .write(&name.to_str(&store)?, data.as_le_slice(&store))
                    .map_err(file_error),
                Err(error) => Err(error),
            };
            Ok((written,))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of `files` (name, size, whether written or left a hole) on `root`.
    fn folder_with(root: &std::path::Path, files: &[(&str, u64, bool)]) -> Folder {
        for &(name, size, written) in files {
            let file = File::create(root.join(name)).expect("create");
            if written {
                std::fs::write(
                    root.join(name),
                    vec![7u8; usize::try_from(size).expect("size")],
                )
                .expect("write");
            } else {
                file.set_len(size).expect("set_len");
            }
        }
        Folder::open_shared(root).expect("folder")
    }

    /// Whether reads map the files of `folder`'s file system (asked of its file `name`).
    fn maps_on(folder: &Folder, name: &str) -> bool {
        let file = folder.open_file(name).expect("open");
        file_system_type(&file).is_some_and(|kind| MAPPED_FILE_SYSTEMS.contains(&kind))
    }

    /// Small files are read and large ones mapped (where the file system allows it): both
    /// give the file's bytes, holes as zeros, within the bound.
    #[test]
    fn reads_are_bounded_and_exact() {
        let root = tempfile::tempdir().expect("tempdir");
        let large = MAP_FROM as u64 + 4096;
        let folder = folder_with(
            root.path(),
            &[
                ("empty", 0, true),
                ("data", 100_000, true),
                ("holes", 100_000, false),
                ("large", large, true),
                ("large-holes", large, false),
            ],
        );
        let maps = OnceLock::new();
        assert!(
            read_whole(&folder, "empty", 0, &maps)
                .expect("empty")
                .is_empty()
        );
        for (name, size, byte) in [
            ("data", 100_000, 7u8),
            ("holes", 100_000, 0),
            ("large", large, 7),
            ("large-holes", large, 0),
        ] {
            let length = usize::try_from(size).expect("size");
            assert_eq!(
                read_whole(&folder, name, size, &maps).expect(name),
                vec![byte; length],
                "{name}"
            );
            assert!(
                matches!(
                    read_whole(&folder, name, size - 1, &maps),
                    Err(FileError::TooLarge(_))
                ),
                "{name}"
            );
        }
        assert!(matches!(
            read_whole(&folder, "none", 9, &maps),
            Err(FileError::NotFound(_))
        ));
    }

    /// The folder's file system is asked once, on the first file a read opens (a read that
    /// opens nothing leaves the question open), and its answer holds for every later read.
    #[test]
    fn the_file_system_is_asked_once_per_folder() {
        let root = tempfile::tempdir().expect("tempdir");
        let folder = folder_with(root.path(), &[("a", 10, true), ("b", 20, true)]);
        let maps = OnceLock::new();
        assert!(read_whole(&folder, "missing", u64::MAX, &maps).is_err());
        assert_eq!(maps.get(), None);
        read_whole(&folder, "a", u64::MAX, &maps).expect("a");
        assert_eq!(maps.get(), Some(&maps_on(&folder, "a")));
        // An answer already given is taken as is (here the opposite one): the read goes the
        // other way and still gives the file's bytes.
        let given = OnceLock::from(!maps_on(&folder, "b"));
        assert_eq!(
            read_whole(&folder, "b", u64::MAX, &given).expect("b"),
            vec![7u8; 20]
        );
    }

    /// With no task bound (an instance made ahead), every call is refused with an `io`
    /// file error the guest can handle (not a trap), and the call is marked, so that `ahead`
    /// does not use the instance.
    #[test]
    fn an_unbound_folder_refuses_every_call_and_marks_it() {
        for call in ["read", "write"] {
            let mut files = DataFolder::unbound();
            assert!(!files.was_called(), "{call}");
            // `read` and `write` both begin with `access`, and return its refusal as is.
            match files.access() {
                Err(FileError::Io(message)) => {
                    assert_eq!(message, "no task is bound to this instance yet", "{call}");
                }
                other => panic!("{call}: expected an io error, got {other:?}"),
            }
            assert!(files.was_called(), "{call}");
        }
        let root = tempfile::tempdir().expect("tempdir");
        let folder = Arc::new(folder_with(root.path(), &[]));
        let mut bound = DataFolder::new(folder, 1 << 20);
        assert!(!bound.was_called());
        let (_, limit) = bound.access().expect("a bound folder is reached");
        assert_eq!(limit, 1 << 20);
        assert!(bound.was_called());
    }

    /// A part is the file's bytes from its offset, at most its length and the limit: fewer at
    /// the end, none past it, unaligned offsets included, whether the range is mapped (large,
    /// where the file system allows it) or read (small, or a refused mapping).
    #[test]
    fn parts_are_the_bytes_in_range() {
        let root = tempfile::tempdir().expect("tempdir");
        let size = 3 * MAP_FROM + 123;
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.path().join("data"), &bytes).expect("write");
        let folder = folder_with(root.path(), &[]);
        let maps = OnceLock::new();
        let size = size as u64;
        let cases: [(u64, u64, u64); 9] = [
            (0, u64::MAX, u64::MAX),
            (0, 10, u64::MAX),
            (4097, MAP_FROM as u64 + 5, u64::MAX),
            (1, u64::MAX, u64::MAX),
            (size - 7, u64::MAX, u64::MAX),
            (size, 1, u64::MAX),
            (size + 4096, 1, u64::MAX),
            (5, 0, u64::MAX),
            // The limit (the task's memory) caps a part as it caps a whole read.
            (3, u64::MAX, MAP_FROM as u64 + 1),
        ];
        for (offset, length, limit) in cases {
            let start = usize::try_from(offset.min(size)).expect("start");
            let end = usize::try_from(offset.saturating_add(length.min(limit)).min(size))
                .expect("end")
                .max(start);
            let part = read_part(&folder, "data", offset, length, limit, &maps)
                .unwrap_or_else(|e| panic!("{offset}+{length}: {e:?}"));
            assert_eq!(part, bytes[start..end], "{offset}+{length} (limit {limit})");
        }
        // The mapped path with an unaligned offset, where this file system allows a mapping.
        if maps_on(&folder, "data") {
            let file = folder.open_file("data").expect("open");
            let mapped = map(&file, 4097, MAP_FROM);
            assert!(mapped.is_ok(), "{mapped:?}");
            assert_eq!(
                contents(file, 4097, MAP_FROM, Some(mapped)).expect("mapped"),
                bytes[4097..4097 + MAP_FROM]
            );
        }
        for (name, error) in [("missing", "not-found"), ("../data", "invalid-name")] {
            let refused = read_part(&folder, name, 0, 1, u64::MAX, &maps);
            assert!(
                matches!(
                    (&refused, error),
                    (Err(FileError::NotFound(_)), "not-found")
                        | (Err(FileError::InvalidName(_)), "invalid-name")
                ),
                "{name}: {refused:?}"
            );
        }
    }

    /// A mapping the kernel refuses (here `mmap` of a file opened write-only: `EACCES`, on
    /// any file system) falls back to reading the file.
    #[test]
    fn a_refused_mapping_falls_back_to_reading() {
        let root = tempfile::tempdir().expect("tempdir");
        let folder = folder_with(root.path(), &[("data", 100_000, true)]);
        let write_only = File::options()
            .write(true)
            .open(root.path().join("data"))
            .expect("open write-only");
        let refused = map(&write_only, 0, 100_000);
        assert!(refused.is_err(), "the kernel mapped a write-only file");
        let file = folder.open_file("data").expect("open");
        assert_eq!(
            contents(file, 0, 100_000, Some(refused)).expect("read instead"),
            vec![7u8; 100_000]
        );
    }

    /// A file that is all hole reads as zeros both ways: mapped (where its file system is one
    /// a read maps) and read.
    #[test]
    fn a_file_of_holes_reads_as_zeros_mapped_or_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let folder = folder_with(root.path(), &[("holes", 1 << 20, false)]);
        let zeros = vec![0u8; 1 << 20];
        let file = folder.open_file("holes").expect("open");
        assert_eq!(contents(file, 0, 1 << 20, None).expect("read"), zeros);
        // Mapped only where the host would map it: elsewhere (tmpfs) a hole read through a
        // mapping can fault.
        if maps_on(&folder, "holes") {
            let file = folder.open_file("holes").expect("open");
            let mapped = map(&file, 0, 1 << 20);
            assert!(mapped.is_ok(), "{mapped:?}");
            assert_eq!(
                contents(file, 0, 1 << 20, Some(mapped)).expect("mapped"),
                zeros
            );
        }
    }

    /// On tmpfs a hole read through a mapping allocates, and a full tmpfs turns that into a
    /// SIGBUS: files there are read, never mapped (checked where /dev/shm is a tmpfs).
    #[test]
    fn files_on_tmpfs_are_read_not_mapped() {
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        let Ok(root) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let folder = folder_with(root.path(), &[("holes", 1 << 20, false)]);
        let file = folder.open_file("holes").expect("open");
        let on_tmpfs = file_system_type(&file) == Some(TMPFS_MAGIC);
        let maps = OnceLock::new();
        assert_eq!(
            read_whole(&folder, "holes", u64::MAX, &maps).expect("holes"),
            vec![0u8; 1 << 20]
        );
        if on_tmpfs {
            assert_eq!(maps.get(), Some(&false));
        }
    }
}
