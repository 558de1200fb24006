use std::os::unix::fs::MetadataExt as _;

use super::*;

/// Task folders in a new temporary folder of `dir`, with that folder's handle.
fn folders_in(dir: &std::path::Path) -> (tempfile::TempDir, Folder, TaskFolders) {
    let dir = tempfile::tempdir_in(dir).expect("tempdir");
    let root = Folder::create(dir.path(), true).expect("root");
    let folders = TaskFolders::new(&root, None).expect("task folders");
    (dir, root, folders)
}

fn folders() -> (tempfile::TempDir, Folder, TaskFolders) {
    folders_in(&std::env::temp_dir())
}

fn inode(folder: &Folder) -> u64 {
    std::fs::metadata(folder.path()).expect("stat").ino()
}

fn is_empty(folder: &Folder) -> bool {
    std::fs::read_dir(folder.path())
        .expect("list")
        .next()
        .is_none()
}

/// The content of each file among the spares of the task folders in `dir`.
fn spare_contents(dir: &std::path::Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir.join("spares"))
        .expect("spares")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_file())
        .map(|path| std::fs::read(path).expect("read"))
        .collect()
}

/// No spare of the task folders in `dir` keeps any byte (of data deleted meanwhile).
fn assert_no_spare_keeps_data(dir: &std::path::Path) {
    let spares = spare_contents(dir);
    assert!(
        spares.iter().all(Vec::is_empty),
        "a spare keeps the deleted data: {spares:?}"
    );
}

/// After a deletion: the file `input` that the folder at `path` kept in place is empty, the
/// folder still serves, empty, and no spare keeps data, before or after it was taken again
/// (which sends its unused files to the spares).
fn assert_kept_input_emptied(dir: &std::path::Path, folders: &TaskFolders, path: &std::path::Path) {
    assert_eq!(std::fs::read(path.join("input")).expect("kept"), b"");
    assert_no_spare_keeps_data(dir);
    let again = take(folders);
    assert_eq!(again.path(), path, "the folder still serves");
    assert!(is_empty(&again));
    assert_no_spare_keeps_data(dir);
}

/// A folder taken again after an attempt that left `names` in it, each holding `bytes`:
/// with those files kept in place.
fn taken_with_kept(folders: &TaskFolders, names: &[&str], bytes: &[u8]) -> (Folder, Leftovers) {
    let folder = take(folders);
    for name in names {
        folder.write(name, bytes).expect("write");
    }
    folders.give_back(folder, true, folders.copies());
    let (folder, leftovers) = folders.take().expect("take");
    assert!(!leftovers.is_empty(), "the files stayed in place");
    (folder, leftovers)
}

/// A folder taken for an attempt, with nothing left of an earlier one once settled.
fn take(folders: &TaskFolders) -> Folder {
    let (folder, leftovers) = folders.take().expect("take");
    folders
        .settle(leftovers, &folder, folders.copies())
        .expect("settle");
    folder
}

#[test]
fn a_folder_comes_back_empty_for_the_next_attempt() {
    let (_dir, _root, folders) = folders();
    let folder = take(&folders);
    let first = inode(&folder);
    for name in ["payload", "dep", "out"] {
        folder.write(name, b"bytes").expect("write");
    }
    folders.give_back(folder, true, folders.copies());
    let again = take(&folders);
    assert_eq!(inode(&again), first, "the emptied folder serves again");
    assert!(is_empty(&again));
}

/// The files a folder kept serve its next attempt's inputs; the guest then finds its
/// inputs and nothing else.
#[test]
fn kept_files_serve_the_next_inputs_and_nothing_else_stays() {
    let (dir, root, folders) = folders();
    let store = ResultStore::new(root.subfolder("results").expect("results"));
    store.write("blob", b"the component").expect("write");
    store.write("payload-2", b"").expect("write");
    let (folder, mut leftovers) = folders.take().expect("take");
    let copies = folders.copies();
    folders
        .copy_inputs(&store, ["blob", "payload-2"], &folder, &mut leftovers)
        .expect("copy");
    folders.settle(leftovers, &folder, copies).expect("settle");
    folder.write("output", b"a result").expect("write");
    folders.give_back(folder, true, copies);

    // Of the blob's size: the blob's file would serve it, were it not reserved for the blob.
    store.write("payload-3", b"next payload!").expect("write");
    let (folder, mut leftovers) = folders.take().expect("take");
    let copies = folders.copies();
    assert!(!leftovers.is_empty(), "the files stayed in place");
    let file_inode = |name: &str| {
        std::fs::metadata(folder.path().join(name))
            .expect("stat")
            .ino()
    };
    let blob = file_inode("blob");
    let others = [file_inode("payload-2"), file_inode("output")];
    // The payload listed first: it must not take the blob's file.
    folders
        .copy_inputs(&store, ["payload-3", "blob"], &folder, &mut leftovers)
        .expect("copy");
    folders.settle(leftovers, &folder, copies).expect("settle");
    let mut names = folder.file_names().expect("names");
    names.sort();
    assert_eq!(names, ["blob", "payload-3"]);
    assert_eq!(folder.read("blob").expect("read"), b"the component");
    assert_eq!(folder.read("payload-3").expect("read"), b"next payload!");
    assert_eq!(
        file_inode("blob"),
        blob,
        "the blob's copy is written where it was"
    );
    assert!(
        others.contains(&file_inode("payload-3")),
        "the payload is written over a file kept in place"
    );
    let spares = std::fs::read_dir(dir.path().join("spares"))
        .expect("spares")
        .count();
    assert_eq!(spares, 1, "the file not used is a spare");
}

/// Results' data deleted while a folder waits in the pool: the files it kept are emptied
/// at once (they may copy that data), and the folder still serves.
#[test]
fn files_kept_in_place_are_emptied_when_data_is_deleted() {
    let (dir, _root, folders) = folders();
    let folder = take(&folders);
    let path = folder.path().to_owned();
    folder.write("input", b"deleted data").expect("write");
    folders.give_back(folder, true, folders.copies());
    folders.forget_copies();
    assert_kept_input_emptied(dir.path(), &folders, &path);
}

/// Results' data deleted while an attempt's inputs are copied: the files its folder kept
/// that it did not use go to the spares emptied.
#[test]
fn files_kept_in_place_and_not_used_are_emptied_when_data_is_deleted_meanwhile() {
    let (dir, root, folders) = folders();
    let store = ResultStore::new(root.subfolder("results").expect("results"));
    store.write("payload", b"p").expect("write");
    let (folder, mut leftovers) = taken_with_kept(&folders, &["one", "two"], b"deleted data");
    let copies = folders.copies();
    folders
        .copy_inputs(&store, ["payload"], &folder, &mut leftovers)
        .expect("copy");
    folders.forget_copies();
    folders.settle(leftovers, &folder, copies).expect("settle");
    assert_eq!(folder.file_names().expect("names"), ["payload"]);
    assert_no_spare_keeps_data(dir.path());
}

#[test]
fn a_folder_whose_listing_grew_long_is_made_anew() {
    // In the repository's file system rather than `TMPDIR`, which is often a tmpfs, where
    // a listing shrinks as its entries go and the folder is rightly reused.
    let (dir, root, folders) = folders_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let folder = take(&folders);
    let path = folder.path().to_owned();
    // The inputs of a fan-in, named as results are.
    let inputs: Vec<String> = (0..1_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    for input in &inputs {
        folder.write(input, b"1").expect("write");
    }
    let grown = folder.listing_size().expect("size");
    // Whether this file system keeps a directory's size once its entries are gone.
    let probe = root.subfolder("probe").expect("probe");
    let new = probe.listing_size().expect("size");
    for input in &inputs[..500] {
        probe.write(input, b"").expect("write");
    }
    for input in &inputs[..500] {
        probe.remove_file(input).expect("remove");
    }
    let keeps_size = probe.listing_size().expect("size") > new;
    folders.give_back(folder, true, folders.copies());
    let next = take(&folders);
    assert!(is_empty(&next));
    assert_eq!(
        std::fs::read_dir(dir.path().join("spares"))
            .expect("spares")
            .count(),
        inputs.len(),
        "the inputs' files become spares"
    );
    if keeps_size {
        assert_ne!(next.path(), path, "a folder of {grown} bytes is reused");
        assert!(!path.exists(), "{} is left", path.display());
        let size = next.listing_size().expect("size");
        assert!(
            size <= new,
            "the next attempt lists {size} bytes, a new folder {new}"
        );
    } else {
        assert_eq!(next.path(), path, "a folder whose listing shrank is reused");
    }
}

#[test]
fn a_folder_whose_guest_did_not_return_is_removed() {
    let (_dir, _root, folders) = folders();
    let folder = take(&folders);
    let path = folder.path().to_owned();
    folder.write("out", b"partial").expect("write");
    folders.give_back(folder, false, folders.copies());
    assert!(!path.exists(), "{} is left", path.display());
    let next = take(&folders);
    assert!(is_empty(&next));
}

/// Results' data deleted while an attempt ran: the copies in its folder may hold that
/// data, so they are removed with the folder instead of kept as spares (which keep their
/// bytes until they serve again).
#[test]
fn copies_taken_before_data_was_deleted_do_not_become_spares() {
    let (dir, _root, folders) = folders();
    let copies = folders.copies();
    let folder = take(&folders);
    let path = folder.path().to_owned();
    folder.write("input", b"deleted data").expect("write");
    folders.forget_copies();
    folders.give_back(folder, true, copies);
    assert!(!path.exists(), "{} is left", path.display());
    assert_no_spare_keeps_data(dir.path());
    // A folder taken after the deletion is kept as before.
    let folder = take(&folders);
    let kept = inode(&folder);
    folder.write("input", b"data").expect("write");
    folders.give_back(folder, true, folders.copies());
    assert_eq!(inode(&take(&folders)), kept);
}

/// Results' data deleted while a folder given back is being emptied (after `give_back`
/// checked its generation, before the folder joins the pool): the file it kept in place is
/// emptied, and the folder still serves.
#[test]
fn data_deleted_while_a_folder_is_emptied_does_not_stay_in_its_files() {
    let (dir, _root, folders) = folders();
    let copies = folders.copies();
    let folder = take(&folders);
    let path = folder.path().to_owned();
    folder.write("input", b"deleted data").expect("write");
    let emptied = folders.empty(&folder).expect("empty");
    assert!(!emptied.0.is_empty(), "the file stays in place");
    folders.forget_copies();
    folders.keep(folder, emptied, copies);
    assert_kept_input_emptied(dir.path(), &folders, &path);
}

/// A folder given back gets fresh times: those its guest set (ahead of now, which
/// `relatime` keeps) do not reach its next attempt, even when its files stay in place.
#[test]
fn a_folder_given_back_does_not_keep_the_times_its_guest_set() {
    let (_dir, _root, folders) = folders();
    let folder = take(&folders);
    folder.write("kept", b"x").expect("write");
    let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(1 << 20);
    std::fs::File::open(folder.path())
        .and_then(|dir| {
            let times = std::fs::FileTimes::new()
                .set_accessed(ahead)
                .set_modified(ahead);
            dir.set_times(times)
        })
        .expect("set times");
    folders.give_back(folder, true, folders.copies());
    let (folder, leftovers) = folders.take().expect("take");
    assert!(!leftovers.is_empty(), "the file stayed in place");
    let meta = std::fs::metadata(folder.path()).expect("stat");
    for time in [meta.accessed(), meta.modified()] {
        assert!(
            time.expect("time") < ahead,
            "the folder kept its guest's time"
        );
    }
    drop(leftovers);
}

/// Results' data deleted while an attempt's inputs are copied, and a leftover that can
/// neither be moved nor removed: settling fails, and the spares are emptied all the same.
#[test]
fn a_failed_settle_still_empties_the_spares_after_a_deletion() {
    let (dir, _root, folders) = folders();
    let (folder, leftovers) = taken_with_kept(&folders, &["kept"], b"x");
    let copies = folders.copies();
    folders.forget_copies();
    // Spares holding data, made after the deletion: more files than stay in place.
    let other = take(&folders);
    for i in 0..=IN_PLACE {
        other.write(&i.to_string(), b"data").expect("write");
    }
    folders.give_back(other, true, folders.copies());
    // A folder in the leftover's place, not removed as a file, and every name a spare
    // could take next already used (spares are numbered): it cannot move either.
    std::fs::remove_file(folder.path().join("kept")).expect("remove");
    std::fs::create_dir(folder.path().join("kept")).expect("folder");
    let spares = dir.path().join("spares");
    for n in 1..=1_000 {
        if !spares.join(n.to_string()).exists() {
            std::fs::create_dir(spares.join(n.to_string())).expect("taken name");
        }
    }
    folders
        .settle(leftovers, &folder, copies)
        .expect_err("a folder is not removed as a file");
    let spares = spare_contents(dir.path());
    assert_eq!(spares.len(), IN_PLACE + 1);
    assert!(
        spares.iter().all(Vec::is_empty),
        "a spare keeps data: {spares:?}"
    );
}

/// An input listed twice (a payload that is also a data dependency) is copied once: it
/// uses one kept file, and the other goes to the spares.
#[test]
fn an_input_listed_twice_is_copied_once() {
    let (dir, root, folders) = folders();
    let store = ResultStore::new(root.subfolder("results").expect("results"));
    store.write("input", b"i").expect("write");
    let (folder, mut leftovers) = taken_with_kept(&folders, &["one", "two"], b"x");
    let copies = folders.copies();
    folders
        .copy_inputs(&store, ["input", "input"], &folder, &mut leftovers)
        .expect("copy");
    folders.settle(leftovers, &folder, copies).expect("settle");
    assert_eq!(folder.file_names().expect("names"), ["input"]);
    assert_eq!(folder.read("input").expect("read"), b"i");
    let spares = std::fs::read_dir(dir.path().join("spares"))
        .expect("spares")
        .count();
    assert_eq!(spares, 1, "one kept file served, the other is a spare");
}
