use std::io::{Seek as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;

use super::*;

pub(super) fn folders() -> (tempfile::TempDir, Folder, Folder) {
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

pub(super) fn is_empty(folder: &Folder) -> bool {
    std::fs::read_dir(folder.path())
        .expect("list")
        .next()
        .is_none()
}

pub(super) fn inode(folder: &Folder, name: &str) -> u64 {
    std::fs::metadata(folder.path().join(name))
        .expect("stat")
        .ino()
}

/// Plain files become spares; a reused spare holds exactly its new content, whether it
/// held more or less before.
#[test]
fn plain_files_are_reused_holding_only_the_new_bytes() {
    let (_root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    task.write("long", &[7; 10_000]).expect("write");
    let long = inode(&task, "long");
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    assert!(is_empty(&task));
    assert_eq!(spares.list().names, [("1".to_owned(), 10_000)]);
    assert_eq!(spares.list().bytes, 10_000);

    // The next write in a folder given the spares is that file, holding only the new bytes.
    let task = task.with_spares(spares.clone());
    task.write("input", b"short").expect("write");
    assert_eq!(task.read("input").expect("read"), b"short");
    assert_eq!(inode(&task, "input"), long, "a new file was made");
    assert!(is_empty(&spares.folder), "the spare was used");
    assert!(spares.take(None).is_none());
    assert_eq!(spares.list().bytes, 0);

    // Longer content over a shorter spare, and a copy through `write_with`.
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    let mut source = io::Cursor::new(vec![9u8; 20_000]);
    let copied = task
        .write_with("copy", None, |f| io::copy(&mut source, f))
        .expect("copy");
    assert_eq!(copied, 20_000);
    assert_eq!(task.read("copy").expect("read"), vec![9u8; 20_000]);
    assert_eq!(inode(&task, "copy"), long);
}

/// Past `MAX_KEPT_BYTES` of content in all, spares are emptied: a large input's copy does
/// not keep its disk space once its task ended.
#[test]
fn spares_keep_a_bounded_number_of_bytes() {
    let (_root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    let large = MAX_KEPT_BYTES - 10;
    task.write("small", b"0123456789abcdef").expect("write");
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    std::fs::File::create(task.path().join("large"))
        .and_then(|f| f.set_len(large))
        .expect("sparse file");
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    let list = spares.list();
    assert_eq!(list.names.len(), 2);
    assert_eq!(list.bytes, 16, "{:?}", list.names);
    for (name, size) in &list.names {
        assert_eq!(spares.folder.file_size(name), Some(*size));
    }
}

/// A spare that cannot serve is dropped: removed behind the list's back, the next one or
/// a new file serves; a `fill` that fails leaves the target untouched and the spare gone.
#[test]
fn a_spare_that_cannot_serve_is_dropped() {
    let (_root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    task.write("one", b"1").expect("write");
    task.write("two", b"2").expect("write");
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    let task = task.with_spares(spares.clone());
    spares.folder.remove_contents().expect("remove the spares");
    task.write("gone", b"written")
        .expect("write without spares");
    assert_eq!(task.read("gone").expect("read"), b"written");
    assert!(spares.list().names.is_empty());

    task.write("kept", b"before").expect("write");
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    task.write("kept", b"before").expect("write");
    let failed = task.write_with("kept", None, |file| {
        file.write_all(b"half")?;
        Err::<(), _>(io::Error::other("the source broke"))
    });
    assert_eq!(
        failed.expect_err("fill failed").to_string(),
        "the source broke"
    );
    assert_eq!(task.read("kept").expect("read"), b"before");
    assert!(is_empty(&spares.folder), "the spare was removed");
}

/// Emptying every spare (results deleted) keeps them as files, holding nothing.
#[test]
fn emptied_spares_hold_nothing() {
    let (_root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    task.write("secret", b"deleted data").expect("write");
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    spares.empty_all();
    assert_eq!(spares.list().bytes, 0);
    let (name, _) = spares.list().names[0].clone();
    assert_eq!(spares.folder.file_size(&name), Some(0));
    spares.release_all().expect("release");
    assert!(is_empty(&spares.folder));
}

/// A spare of the size to be written is taken first, among the last ones kept.
#[test]
fn a_spare_of_the_right_size_is_preferred() {
    let (_root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    task.write("blob", &[1; 4096]).expect("write");
    task.write("small", b"s").expect("write");
    let blob = inode(&task, "blob");
    let small = inode(&task, "small");
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    let task = task.with_spares(spares.clone());
    task.write("again", &[2; 4096]).expect("write");
    assert_eq!(inode(&task, "again"), blob);
    task.write("tiny", b"t").expect("write");
    assert_eq!(inode(&task, "tiny"), small);
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
    // Read-only descriptors count too: a reader must not see the next task's bytes.
    task.write("read", b"r").expect("write");
    let reader = std::fs::File::open(task.path().join("read")).expect("reader");

    let mut n = 0;
    // At most 16 entries, but not all reusable files: none stays in place.
    let recycled = task
        .recycle_contents(&spares, names(&mut n), 16, 10)
        .expect("recycle");
    assert!(recycled.in_place.is_empty());
    let kept = recycled.spares;
    // `plain`, and `again` or `twice` if it came after the other name was removed.
    assert!((1..=2).contains(&kept.len()), "{kept:?}");
    assert!(is_empty(&task));
    // The held file's late write lands in a file no task will ever see.
    writer.seek(io::SeekFrom::Start(0)).expect("seek");
    writer.write_all(b"late").expect("late write");
    for (spare, size) in &kept {
        let bytes = spares.read(spare).expect("spare");
        assert!(bytes == b"p" || bytes == b"x", "{bytes:?}");
        assert_eq!(bytes.len() as u64, *size);
    }
    assert!(root.path().exists());
    drop(reader);
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
        .recycle_contents(&spares, names(&mut n), 0, 2)
        .expect("recycle")
        .spares;
    assert_eq!(kept.len(), 2);
    assert!(is_empty(&task));
    assert_eq!(std::fs::read_dir(spares.path()).expect("list").count(), 2);
}

/// A spare replaces a file or a link at its name atomically, never writing through the
/// link, and is gone when it cannot serve (a directory at the name).
#[test]
fn a_spare_replaces_what_is_there_atomically() {
    let (root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    std::fs::write(root.path().join("outside"), b"secret").expect("outside");
    std::os::unix::fs::symlink(root.path().join("outside"), task.path().join("link"))
        .expect("symlink");
    task.write("file", b"a longer earlier content")
        .expect("write");
    std::fs::create_dir(task.path().join("dir")).expect("dir");
    std::fs::write(task.path().join("dir/inner"), b"x").expect("inner");
    for name in ["link", "file", "dir"] {
        std::fs::write(spares.folder.path().join(name), b"").expect("spare");
        spares.list().names.push((name.to_owned(), 0));
    }
    let task = task.with_spares(spares.clone());
    task.write("dir", b"new").expect_err("a directory is there");
    task.write("file", b"new").expect("over a file");
    task.write("link", b"new").expect("over a link");
    assert_eq!(task.read("file").expect("read"), b"new");
    assert_eq!(task.read("link").expect("read"), b"new");
    assert_eq!(
        std::fs::read(root.path().join("outside")).expect("outside"),
        b"secret"
    );
    assert!(task.path().join("dir/inner").is_file());
    assert!(is_empty(&spares.folder), "every spare used or removed");
    // Without spares left, a write makes a new file.
    task.write("more", b"more").expect("write");
    assert_eq!(task.read("more").expect("read"), b"more");
}

/// Files that cannot all stay (one is still open elsewhere, or there are more than
/// `in_place`) all leave the folder: the reusable ones as spares.
#[test]
fn a_folder_keeps_its_files_only_when_all_can_stay() {
    let (_root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    task.write("one", b"1").expect("write");
    task.write("held", b"held").expect("write");
    let reader = std::fs::File::open(task.path().join("held")).expect("reader");
    let leftovers = spares.recycle(&task, 16).expect("recycle");
    assert!(leftovers.is_empty());
    assert!(is_empty(&task));
    assert_eq!(
        spares.list().names.len(),
        1,
        "the file no one holds is a spare"
    );
    drop(reader);

    for i in 0..3 {
        task.write(&format!("f{i}"), b"x").expect("write");
    }
    let leftovers = spares.recycle(&task, 2).expect("recycle");
    assert!(leftovers.is_empty());
    assert!(is_empty(&task));
    assert_eq!(spares.list().names.len(), 4);
    assert_eq!(spares.list().bytes, 4);
}

/// A file past `MAX_KEPT_BYTES` stays in place emptied, counting nothing.
#[test]
fn a_large_file_stays_in_place_emptied() {
    let (_root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    std::fs::File::create(task.path().join("large"))
        .and_then(|f| f.set_len(MAX_KEPT_BYTES + 1))
        .expect("sparse file");
    let leftovers = spares.recycle(&task, 16).expect("recycle");
    assert!(leftovers.holds("large"));
    assert_eq!(task.file_size("large"), Some(0));
    assert_eq!(spares.list().bytes, 0);
}

/// Times a guest set on a file do not reach the task its file serves next, whether it
/// stayed in place or was a spare.
#[test]
fn reused_files_do_not_keep_the_times_a_guest_set() {
    let (_root, task, spares) = folders();
    let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
    let chosen = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(0xabcd);
    let set = |name: &str| {
        let file = std::fs::File::options()
            .write(true)
            .open(task.path().join(name))
            .expect("open");
        let times = std::fs::FileTimes::new()
            .set_accessed(chosen)
            .set_modified(chosen);
        file.set_times(times).expect("set times");
    };
    task.write("kept", b"x").expect("write");
    set("kept");
    let mut leftovers = spares.recycle(&task, 16).expect("recycle");
    leftovers
        .write(&task, "next", Some(0), |_| Ok(()))
        .expect("write");
    leftovers.settle(&task).expect("settle");
    let fresh = |task: &Folder, name: &str| {
        let meta = std::fs::metadata(task.path().join(name)).expect("stat");
        for time in [meta.accessed(), meta.modified()] {
            assert!(
                time.expect("time") > chosen,
                "{name} kept a time a guest set"
            );
        }
    };
    fresh(&task, "next");
    task.write("spare", b"y").expect("write");
    set("spare");
    set("next");
    assert!(spares.recycle(&task, 0).expect("recycle").is_empty());
    let task = task.with_spares(spares.clone());
    task.write("new", b"").expect("write");
    task.write("other", b"").expect("write");
    assert!(is_empty(&spares.folder), "both were spares");
    // The folder too: a time set ahead stays under `relatime`, and one set when nothing
    // in it is then removed or renamed (the next attempt's inputs over their own names).
    let folder = std::fs::File::open(task.path()).expect("open the folder");
    let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(1 << 20);
    for time in [chosen, ahead] {
        let times = std::fs::FileTimes::new()
            .set_accessed(time)
            .set_modified(time);
        folder.set_times(times).expect("set times");
        let leftovers = spares.recycle(&task, 16).expect("recycle");
        drop(leftovers);
        let meta = std::fs::metadata(task.path()).expect("stat");
        for got in [meta.accessed(), meta.modified()] {
            let got = got.expect("time");
            assert!(
                got > chosen && got < ahead,
                "the folder kept a time a guest set"
            );
        }
    }
    fresh(&task, "new");
    fresh(&task, "other");
}

/// Past the bound on open leftover files, a folder keeps none in place: its files become
/// spares, closed; once leftovers are settled or dropped, folders keep theirs again.
#[test]
fn folders_keep_files_in_place_within_the_open_files_bound() {
    let (root, task, spares) = folders();
    let mut spares = Spares::new(spares, 10, None).expect("spares");
    spares.max_open = 3;
    let spares = Arc::new(spares);
    let other = Folder::create(&root.path().join("other"), true).expect("other");
    for name in ["a", "b"] {
        task.write(name, b"x").expect("write");
        other.write(name, b"y").expect("write");
    }
    let first = spares.recycle(&task, 16).expect("recycle");
    assert!(first.holds("a") && first.holds("b"));
    let second = spares.recycle(&other, 16).expect("recycle");
    assert!(second.is_empty(), "4 files open would pass 3");
    assert!(is_empty(&other));
    assert_eq!(spares.list().names.len(), 2);
    assert_eq!(spares.list().open, 2);
    first.settle(&task).expect("settle");
    assert_eq!(spares.list().open, 0);
    for name in ["c", "d"] {
        other.write(name, b"z").expect("write");
    }
    let third = spares.recycle(&other, 16).expect("recycle");
    assert!(third.holds("c") && third.holds("d"));
    drop(third);
    assert_eq!(spares.list().open, 0, "dropped leftovers are closed");
}
