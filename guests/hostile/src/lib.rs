//! `hostile`: misbehaving guests, for the host's sandbox tests.
//!
//! Payload: UTF-8 text, the mode, then its argument if any (`<mode> [<arg>]`):
//!
//! - `panic`: a Rust panic (prints to stderr, then traps).
//! - `unreachable`: executes the wasm `unreachable` instruction (trap).
//! - `divide-by-zero`: an integer division by zero that reaches the wasm `i32.div_u`
//!   instruction (trap), not Rust's checked division (which would panic).
//! - `out-of-bounds`: reads 8 bytes at address `0xFFFF_FFF0`, past any memory (trap).
//! - `loop`: spins forever (for time limits / epoch interruption).
//! - `alloc`: allocates, touches and keeps 16 MiB blocks forever (for memory limits). When
//!   `memory.grow` is refused, Rust prints `memory allocation of 16777216 bytes failed` to
//!   stderr and aborts (an `unreachable` trap), unless the host traps on the failed grow.
//! - `recurse`: unbounded non-tail recursion with small frames: the wasm call stack runs out
//!   (`call stack exhausted` trap) before Rust's shadow stack in linear memory does.
//! - `escape`: tries to read `<data folder>/../../etc/passwd`, `/data/../../etc/passwd`,
//!   `/etc/passwd`, `../x`, the symlink `<data folder>/link` (when present), to list `/`
//!   and to write `/tmp/armonik-wasm-escape`; writes one line per attempt,
//!   `<action> <path>: ok <details>` or `<action> <path>: err <message>`, to the first
//!   expected output. Never panics.
//! - `env`: writes `vars=<count of env vars>`, `args=<count>`, `home=<$HOME or unset>` and
//!   `tcp=<ok or err <message>>` (connecting to `127.0.0.1:1`), one per line, to the first
//!   expected output.
//! - `sleep-then-notify <ms>`: busy-waits `<ms>` milliseconds, then writes `late` to the first
//!   expected output and notifies it (for calls made after the task's deadline).
//! - `huge-output <MiB>`: streams `<MiB>` MiB of zeros to the first expected output in 1 MiB
//!   writes, then notifies it.
//! - `residue [<MiB>]`: looks for what an earlier task left in memory. Counts the nonzero
//!   bytes of a 4 MiB static buffer (zero in a fresh instance) and of `<MiB>` (default 4) MiB
//!   of memory grown with `memory.grow` (zero in any instance), then fills both with `0xA5`;
//!   writes
//!   `static=<count> heap=<count>` to the first expected output.
//!
//! The modes below probe the host's side of the boundary: what the host does with files,
//! names and ids a task chose. Those that report write it to every expected output (one
//! `send_results`); a failed step is a report line, never a panic. An outcome is written
//! `ok[ <details>]` or `err <error>`, `<error>` being the SDK's message (for an agent call,
//! `agent call <call> failed: <kind>: <message>`, `<kind>` being the agent error's case:
//! `invalid-argument`, `not-found`...).
//!
//! - `plant <link|dir|file|kept> [<link target>]`: for the first data dependency `<dep>`,
//!   removes whatever is at `/data/<dep>` and plants there a symlink to `<link target>`
//!   (as given: WASI refuses absolute targets, `../../x` ones are made), a directory with a
//!   file `inner` in it, or a regular file longer than any test result, of other bytes;
//!   `kept` leaves whatever is there (something the test planted). Then calls
//!   `get-resource-data(<dep>)` and reports four lines: `plant=<outcome>`,
//!   `get=<outcome>`, `type=<file|dir|symlink|other>` (of `/data/<dep>`, not followed) and
//!   `data=<the bytes now at /data/<dep>, lossy UTF-8>` (`type=err ...` / `data=err ...` when
//!   they cannot be read).
//! - `get-bad-ids`: calls `get-resource-data` directly (without the SDK's id check) with
//!   `../x`, `a/b`, `/etc/passwd` and the empty id, one line each: `get <id:?>: <outcome>`.
//! - `names <name>\n<name>...`: `create-results` with the names of the payload's lines after
//!   the first (any text but a line break: NUL, `/`, empty...), the data of the i-th being
//!   `i` in decimal; reports the created result ids, one per line, in order.
//! - `write <text>`: writes `<text>` to every expected output.
//! - `copy`: writes the first data dependency's bytes to every expected output.
//! - `notify <which>...`: for each `<which>` (below), writes `evil` to `/data/<id>`, then
//!   notifies `<id>`; one line each: `<which>: <outcome>`.
//! - `submit <which>...`: creates a payload result holding `write forged`, then for each
//!   `<which>` submits one task over it whose expected output is `<id>`; one line each:
//!   `<which>: <outcome>`.
//!
//!   `<which>` is `payload` (the task's payload), `dep` (its first data dependency),
//!   `created` (a result it creates now with `create-results`, data `created`), `metadata`
//!   (a result it creates now with `create-results-metadata`), or else a result id, taken as
//!   is. (The report itself notifies the task's own expected outputs.)
//! - `siblings <notify|submit>`: creates results `A` and `B` (metadata only), then submits
//!   three tasks: the forger, expected output `A`, payload `<notify|submit> <B's id>` (it
//!   tries to produce its sibling's `B`, and reports into `A`); the honest one, depending on
//!   `A`, expected output `B`, payload `write honest`; the copier, depending on `B`, payload
//!   `copy`, to which the root task delegates its first expected output. Whatever the forger
//!   does, the root's output must be `honest`.
//! - `streams <count> <KiB> [notify-first]`: opens the first expected output through the
//!   preopened data folder (`wasi:filesystem/types`), takes `<count>` output streams with
//!   `write-via-stream` at offsets `i × <KiB> KiB`, and on each calls `check-write`, `write`
//!   (`<KiB>` KiB of the byte `0xA5`, in as many writes as `check-write` allows) and
//!   `flush`, leaving every stream (and the file) open; then notifies the output (with
//!   `notify-first`, notifies it before the first write, so the task returns right after
//!   its last write). The host must see all `<count> × <KiB>` KiB, without a zero byte,
//!   before it replies.
//!
//! The modes below probe what a task may cost the host: time past its deadline, writes that
//! hold a thread, files it leaves behind, logs and agent calls at the edges. Those that
//! produce something write it to every expected output (one `send_results`) unless said
//! otherwise; a bad argument fails the task with `err(...)`, never a panic.
//!
//! - `sleep <ms>`: `std::thread::sleep` for `<ms>` milliseconds (a WASI monotonic-clock wait,
//!   not guest code the epoch deadline can stop), then writes `slept`.
//! - `poll-clock <ms>`: subscribes to the monotonic clock `<ms>` milliseconds ahead
//!   (`wasi:clocks/monotonic-clock.subscribe-duration`, imported by hand: the SDK's world
//!   does not name that interface) and waits on it with `wasi:io/poll.poll`, then writes
//!   `polled`.
//! - `big-writes <MiB total> <MiB per write>`: opens the first expected output through the
//!   preopened data folder and fills it with `<MiB total>` MiB of the byte `0xA5`, in
//!   positional `write`s (`wasi:filesystem/types.descriptor.write`) of `<MiB per write>` MiB
//!   each (the last one shorter if it does not divide), then `sync`s it and notifies it.
//! - `one-write <MiB>`: writes `<MiB>` MiB of the byte `0xA5` to the first expected output
//!   in a single positional `write` call of one buffer, then notifies it; a short write fails
//!   the task with `err("one-write: wrote <n> of <m> bytes")`.
//! - `litter <files> <depth> <sparse GiB>`: leaves in the data folder `<files>` one-byte files
//!   `litter-<i>`, a directory tree `deep/d/d/...` `<depth>` levels deep (made one level at a
//!   time through directory descriptors, so no path is long) and a sparse file `sparse` of
//!   `<sparse GiB>` GiB (`set-len`, nothing written), then writes
//!   `littered files=<files> depth=<depth> sparse=<bytes>`.
//! - `forge-log`: prints six lines that try to pass for the host's log records or to carry
//!   other ids, each holding `evil` (forged `session_id=evil task_id=evil` fields, a forged
//!   record line, a carriage return, ANSI escapes `\x1b[2K`, a NUL, a quote closing the
//!   host's quoted field) to stdout, the same prefixed `stderr ` to stderr, then to stdout a
//!   seventh without its newline, ending in a carriage return; then writes `forged`.
//! - `empty-lists`: calls every agent function that takes a list with an empty one
//!   (`create-results-metadata`, `create-results`, `notify-result-data`, `submit-tasks`,
//!   `create-tasks`, in that order) and reports one line each: `<call>: <outcome>`, the
//!   outcome of a call that succeeded being `ok <count of items returned>`.
//!
//! - `taint`: first surveys its data folder: one line per entry, sorted by name,
//!   `<name> <length> <FNV-1a 64 of the bytes, 16 hex digits>` (`<name> not-a-file` for
//!   anything but a regular file); that survey goes to every expected output at the end.
//!   Then spoils the folder for whoever could come after: overwrites every input file with
//!   64 KiB of `T`, gives the payload a second name `taint-link`, leaves files `taint-<i>`
//!   and a directory `taint-dir` with a file in it, and starts a 1 MiB write to the first
//!   data dependency (or the payload) through an output stream it never finishes nor drops
//!   (the host's blocking write may still run when the task has returned).
//! - `taint-files`: the same survey, then spoils the folder with plain files only, which a
//!   host may keep in place for the next task: overwrites every input with 64 KiB of `T` and
//!   leaves files `taint-<i>`.
//!
//! - `data-folder [<link target>]`: calls the world's `data-folder` interface straight (without
//!   the SDK's id check), one report line each, `<call> <name:?>[ <detail>]: <outcome>`, the
//!   outcome of a failed call being `err <case>: <message>` (`not-found`, `invalid-name`,
//!   `too-large`, `io`): `read` of names that are not plain (`../x`, `a/b`, `/etc/passwd`, ``,
//!   `.`, `..`, 256 `n`s, `nul\0`) and of a missing name, then of a 4 MiB name of `\u{1f}`
//!   (its line cut to 200 bytes); after planting `link` (a symlink to `<link target>`,
//!   default the payload's id), `dir` (a directory), `sparse` (a sparse file of 64 GiB,
//!   nothing written) and `sparse-over` (2 GiB and one byte: one past the default memory
//!   limit, below the 4 GiB a list can hold): `read` of each, `read` of `sparse-small` (1 MiB, all hole: `ok <n>
//!   bytes zero`), `read` of the payload with a max-size one byte short of it and of exactly
//!   its size (`ok <n> bytes <same|differs>`, against the payload read through WASI); `write` of `../x`, `` and `a/b`, of `dir`,
//!   of `link` (`link-now=<file|symlink|...>` after), and of `fresh` (then read back:
//!   `fresh-back=<same|differs>`); then `read-part` (lines `read-part <name:?> <offset>+<length>:
//!   <outcome>`) of `../x`, `link-part` (planted then, a symlink to `<link target>`), `dir` and
//!   `missing`, of 1 MiB at 40 GiB into `sparse`
//!   (`ok <n> bytes zero`: a part of a file too large to read whole), and of parts of `fresh`
//!   and of the payload, at offsets in and past them, unaligned (`ok <n> bytes <same|differs>`
//!   against the bytes written or read through WASI). Every report line goes to every
//!   expected output.
//! - `data-folder-raw <read|write>`: calls `data-folder`'s `read` (max-size 64) or `write`
//!   (data `evil`) through its core import, as the canonical ABI lowers it, with a name whose
//!   bytes are not UTF-8 (`ff fe 6e`), which no bindings would pass: the host traps. If the
//!   call returns instead, fails the task with
//!   `err("data-folder <call> took a name that is not UTF-8: <ok|err>")`.
//!
//! Any other payload fails the task with `err("hostile: unknown mode ...")`.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, io, net};

use armonik_wasm_sdk::bindings::armonik::worker::agent;
use armonik_wasm_sdk::bindings::armonik::worker::data_folder::{self, FileError};
use armonik_wasm_sdk::bindings::wasi::filesystem::preopens;
use armonik_wasm_sdk::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, OpenFlags, PathFlags,
};
use armonik_wasm_sdk::bindings::wasi::io::poll;
use armonik_wasm_sdk::{Task, TaskDefinition, TaskError, TaskHandler, TaskRequest, export_task};

/// The hostile task.
struct Hostile;

impl Task for Hostile {
    fn process(h: &mut TaskHandler) -> Result<(), TaskError> {
        let payload = String::from_utf8(h.payload()?)?;
        let (mode, arg) = payload
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((payload.trim(), ""));
        match mode {
            "panic" => panic!("hostile: panicking on purpose"),
            #[cfg(target_arch = "wasm32")]
            "unreachable" => core::arch::wasm32::unreachable(),
            "divide-by-zero" => {
                let divisor = black_box(0u32);
                // SAFETY: deliberately false, and the point of this mode: promising a non-zero
                // divisor removes Rust's zero check, so the division is a bare `i32.div_u`,
                // which traps (the only way to reach that instruction from stable Rust).
                unsafe { std::hint::assert_unchecked(divisor != 0) };
                black_box(black_box(1u32) / divisor);
            }
            "out-of-bounds" => {
                let address = black_box(0xFFFF_FFF0usize);
                // SAFETY: none, on purpose: the address is past the end of linear memory, so
                // the load traps before anything is read.
                black_box(unsafe { std::ptr::read_volatile(address as *const u64) });
            }
            "loop" => {
                let mut i = 0u64;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut kept = Vec::new();
                loop {
                    let mut block = vec![0u8; 16 << 20];
                    block.iter_mut().step_by(4096).for_each(|b| *b = 1);
                    kept.push(black_box(block));
                }
            }
            "recurse" => {
                black_box(recurse(0));
            }
            "escape" => return h.send_result(h.first_expected_result()?, escape(h).as_bytes()),
            "env" => {
                let tcp = match net::TcpStream::connect("127.0.0.1:1") {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => format!("err {e}"),
                };
                let home = env::var("HOME").unwrap_or_else(|_| "unset".to_owned());
                let (vars, args) = (env::vars().count(), env::args().count());
                let report = format!("vars={vars}\nargs={args}\nhome={home}\ntcp={tcp}");
                return h.send_result(h.first_expected_result()?, report.as_bytes());
            }
            "sleep-then-notify" => {
                let until = Instant::now() + Duration::from_millis(arg.trim().parse()?);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                return h.send_result(h.first_expected_result()?, b"late");
            }
            "huge-output" => {
                let (mib, output) = (arg.trim().parse::<u64>()?, h.first_expected_result()?);
                let mut file = fs::File::create(h.path_of(output))?;
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..mib {
                    file.write_all(&zeros)?;
                }
                drop(file);
                h.notify_result_data(&[output])?;
                return Ok(());
            }
            "residue" => {
                let heap_mib = if arg.trim().is_empty() {
                    4
                } else {
                    arg.trim().parse()?
                };
                let report = residue(heap_mib);
                return h.send_result(h.first_expected_result()?, report.as_bytes());
            }
            "plant" => {
                let (kind, target) = arg.trim().split_once(' ').unwrap_or((arg.trim(), ""));
                return send_to_all(h, plant(h, kind, target)?);
            }
            "get-bad-ids" => return send_to_all(h, get_bad_ids()),
            "names" => return send_to_all(h, names(h, arg)?),
            "write" => return send_to_all(h, arg),
            "copy" => {
                let data = h.data_dependency(first_dependency(h)?)?;
                return send_to_all(h, data);
            }
            "notify" => return send_to_all(h, notify(h, arg)),
            "submit" => return send_to_all(h, submit(h, arg)?),
            "siblings" => return siblings(h, arg.trim()),
            "streams" => {
                let args: Vec<&str> = arg.split_whitespace().collect();
                let (count, kib, notify_first) = match args.as_slice() {
                    [count, kib] => (count, kib, false),
                    [count, kib, "notify-first"] => (count, kib, true),
                    _ => return Err("usage: streams <count> <KiB> [notify-first]".into()),
                };
                return streams(h, count.parse()?, kib.parse()?, notify_first);
            }
            "sleep" => {
                std::thread::sleep(Duration::from_millis(arg.trim().parse()?));
                return send_to_all(h, "slept");
            }
            "poll-clock" => {
                let ms: u64 = arg.trim().parse()?;
                let until = subscribe_duration(ms.saturating_mul(1_000_000));
                poll::poll(&[&until]);
                return send_to_all(h, "polled");
            }
            "big-writes" => {
                let args: Vec<&str> = arg.split_whitespace().collect();
                let [total, per_write] = args.as_slice() else {
                    return Err("usage: big-writes <MiB total> <MiB per write>".into());
                };
                return big_writes(h, total.parse()?, per_write.parse()?);
            }
            "one-write" => return one_write(h, arg.trim().parse()?),
            "litter" => {
                let args: Vec<&str> = arg.split_whitespace().collect();
                let [files, depth, sparse_gib] = args.as_slice() else {
                    return Err("usage: litter <files> <depth> <sparse GiB>".into());
                };
                let report = litter(h, files.parse()?, depth.parse()?, sparse_gib.parse()?)?;
                return send_to_all(h, report);
            }
            "forge-log" => {
                forge_log();
                return send_to_all(h, "forged");
            }
            "empty-lists" => return send_to_all(h, empty_lists(h)),
            "data-folder" => return send_to_all(h, probe_data_folder(h, arg.trim())?),
            "data-folder-raw" => return raw_data_folder_call(arg.trim()),
            "taint" => {
                let survey = survey(h)?;
                taint(h)?;
                return send_to_all(h, survey);
            }
            "taint-files" => {
                let survey = survey(h)?;
                overwrite_inputs(h)?;
                return send_to_all(h, survey);
            }
            _ => {}
        }
        Err(TaskError::failed(format!(
            "hostile: unknown mode {payload:?}, or it did not trap"
        )))
    }
}

/// Recurses forever, with a small frame: the wasm call stack runs out (a stack-overflow trap)
/// long before Rust's shadow stack in linear memory would.
fn recurse(depth: u64) -> u64 {
    if black_box(true) {
        recurse(depth + 1).wrapping_add(black_box(depth))
    } else {
        0
    }
}

/// Tries to reach outside the data folder; one report line per attempt.
fn escape(h: &TaskHandler) -> String {
    let folder = h.data_folder().display().to_string();
    let mut paths = vec![
        format!("{folder}/../../etc/passwd"),
        "/data/../../etc/passwd".into(),
    ];
    paths.dedup();
    paths.extend(["/etc/passwd".into(), "../x".into()]);
    let link = h.path_of("link");
    let link_present = fs::symlink_metadata(&link).is_ok();
    if link_present {
        paths.push(link.display().to_string());
    }
    let outcome =
        |r: std::io::Result<String>| r.map_or_else(|e| format!("err {e}"), |s| format!("ok {s}"));
    let mut report: Vec<String> = (paths.iter())
        .map(|p| {
            format!(
                "read {p}: {}",
                outcome(fs::read(p).map(|d| format!("{} bytes", d.len())))
            )
        })
        .collect();
    if !link_present {
        report.push(format!("read {}: absent", link.display()));
    }
    let listing = fs::read_dir("/").map(|d| format!("{} entries", d.count()));
    report.push(format!("list /: {}", outcome(listing)));
    let write = fs::write("/tmp/armonik-wasm-escape", b"escaped").map(|()| "written".to_owned());
    report.push(format!(
        "write /tmp/armonik-wasm-escape: {}",
        outcome(write)
    ));
    report.join("\n")
}

/// No ids, as a list (a task without data dependencies).
const NONE: [&str; 0] = [];

/// Writes `data` to every expected output of the task.
fn send_to_all(h: &TaskHandler, data: impl AsRef<[u8]>) -> Result<(), TaskError> {
    let results: Vec<(&str, &[u8])> = (h.expected_results().iter())
        .map(|id| (id.as_str(), data.as_ref()))
        .collect();
    h.send_results(&results)
}

/// `ok[ <details>]` or `err <error>`.
fn outcome(result: Result<String, TaskError>) -> String {
    match result {
        Ok(details) => format!("ok {details}").trim_end().to_owned(),
        Err(e) => format!("err {e}"),
    }
}

/// The task's first data dependency.
fn first_dependency(h: &TaskHandler) -> Result<&str, TaskError> {
    (h.data_dependencies().first())
        .map(String::as_str)
        .ok_or_else(|| TaskError::failed("this task has no data dependency"))
}

/// The data folder as the preopened WASI directory.
fn data_dir(h: &TaskHandler) -> Result<Descriptor, TaskError> {
    (preopens::get_directories().into_iter())
        .find_map(|(dir, path)| (Path::new(&path) == h.data_folder()).then_some(dir))
        .ok_or_else(|| TaskError::failed("the data folder is not a preopened directory"))
}

/// A WASI error as a task error.
fn wasi_error(call: &str, error: impl std::fmt::Debug) -> TaskError {
    TaskError::failed(format!("{call}: {error:?}"))
}

/// Removes whatever is at `path` (a directory with its content; a link, not its target).
fn clear(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Plants a `kind` of thing at the first dependency's name, asks the host for the
/// dependency's data, and says what is at that name afterwards.
fn plant(h: &TaskHandler, kind: &str, target: &str) -> Result<String, TaskError> {
    let dep = first_dependency(h)?;
    let path = h.path_of(dep);
    let planted = match kind {
        "kept" => Ok(()),
        "link" => clear(&path).map_err(TaskError::from).and_then(|()| {
            (data_dir(h)?.symlink_at(target, dep)).map_err(|e| wasi_error("symlink-at", e))
        }),
        "dir" => clear(&path)
            .and_then(|()| fs::create_dir(&path))
            .and_then(|()| fs::write(path.join("inner"), b"planted inside"))
            .map_err(TaskError::from),
        "file" => clear(&path)
            .and_then(|()| {
                fs::write(
                    &path,
                    "planted: a file longer than the result, of other bytes",
                )
            })
            .map_err(TaskError::from),
        _ => Err(TaskError::failed(format!("plant: unknown kind {kind:?}"))),
    };
    let got = get_resource_data(dep);
    let kind_now = kind_of(&path);
    let data = fs::read(&path).map_or_else(
        |e| format!("err {e}"),
        |data| String::from_utf8_lossy(&data).into_owned(),
    );
    Ok(format!(
        "plant={}\nget={got}\ntype={kind_now}\ndata={data}",
        outcome(planted.map(|()| String::new())),
    ))
}

/// Asks for the data of ids that are not plain file names, bypassing the SDK's check.
fn get_bad_ids() -> String {
    let lines: Vec<String> = ["../x", "a/b", "/etc/passwd", ""]
        .iter()
        .map(|id| format!("get {id:?}: {}", get_resource_data(id)))
        .collect();
    lines.join("\n")
}

/// What is at `path`, not followed: `file`, `dir`, `symlink`, `other` or `err <error>`.
fn kind_of(path: &Path) -> String {
    fs::symlink_metadata(path).map_or_else(
        |e| format!("err {e}"),
        |meta| {
            let kind = meta.file_type();
            if kind.is_symlink() {
                "symlink"
            } else if kind.is_dir() {
                "dir"
            } else if kind.is_file() {
                "file"
            } else {
                "other"
            }
            .to_owned()
        },
    )
}

/// `get-resource-data(id)`, straight to the host (the SDK would check the id first): its
/// outcome.
fn get_resource_data(id: &str) -> String {
    let got = agent::get_resource_data(id).map_err(|e| TaskError::agent("get-resource-data", e));
    outcome(got.map(|()| String::new()))
}

/// The result id a `<which>` of `notify` / `submit` names (see the module documentation).
fn target(h: &TaskHandler, which: &str) -> Result<String, TaskError> {
    let created = |r: Vec<armonik_wasm_sdk::ResultMetadata>| {
        r.into_iter()
            .next()
            .map(|r| r.result_id)
            .ok_or_else(|| TaskError::failed("the agent created no result"))
    };
    match which {
        "payload" => Ok(h.payload_id().to_owned()),
        "dep" => first_dependency(h).map(str::to_owned),
        "created" => created(h.create_results(&[("created", "created")])?),
        "metadata" => created(h.create_results_metadata(&["metadata"])?),
        id => Ok(id.to_owned()),
    }
}

/// Creates one result per line of `lines`, named by it, with its index as data; returns
/// their ids, one per line.
fn names(h: &TaskHandler, lines: &str) -> Result<String, TaskError> {
    let results: Vec<(&str, String)> = (lines.split('\n').enumerate())
        .map(|(i, name)| (name, i.to_string()))
        .collect();
    let created = h.create_results(&results)?;
    let ids: Vec<&str> = created.iter().map(|r| r.result_id.as_str()).collect();
    Ok(ids.join("\n"))
}

/// Writes `evil` over each target's file, then notifies it.
fn notify(h: &TaskHandler, whiches: &str) -> String {
    for_each_target(h, whiches, |id| {
        fs::write(h.path_of(id), b"evil").map_err(|e| TaskError::io(h.path_of(id), e))?;
        h.notify_result_data(&[id]).map(|ids| ids.join(" "))
    })
}

/// Submits, for each target, a task (payload `write forged`) that is to produce it.
fn submit(h: &TaskHandler, whiches: &str) -> Result<String, TaskError> {
    let payload = h.create_results(&[("forged-payload", "write forged")])?;
    let payload = payload.first().ok_or("create-results returned nothing")?;
    Ok(for_each_target(h, whiches, |id| {
        let task = TaskDefinition::new(&payload.result_id, NONE, [id]);
        let tasks = h.submit_tasks([task], None)?;
        let ids: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        Ok(ids.join(" "))
    }))
}

/// Runs `act` on the id of each `<which>` of `whiches`; one line `<which>: <outcome>` each.
fn for_each_target(
    h: &TaskHandler,
    whiches: &str,
    act: impl Fn(&str) -> Result<String, TaskError>,
) -> String {
    let lines: Vec<String> = whiches
        .split_whitespace()
        .map(|which| {
            format!(
                "{which}: {}",
                outcome(target(h, which).and_then(|id| act(&id)))
            )
        })
        .collect();
    lines.join("\n")
}

/// The forger, the honest producer and the copier (see the module documentation).
fn siblings(h: &TaskHandler, how: &str) -> Result<(), TaskError> {
    let created = h.create_results_metadata(&["A", "B"])?;
    let [a, b] = created.as_slice() else {
        return Err(TaskError::failed(
            "create-results-metadata did not create A and B",
        ));
    };
    let (a, b) = (&a.result_id, &b.result_id);
    let payloads = h.create_results(&[
        ("forger", format!("{how} {b}")),
        ("honest", "write honest".to_owned()),
        ("copier", "copy".to_owned()),
    ])?;
    let [forger, honest, copier] = payloads.as_slice() else {
        return Err(TaskError::failed(
            "create-results did not create three payloads",
        ));
    };
    let output = h.first_expected_result()?;
    h.submit_tasks(
        [
            TaskDefinition::new(&forger.result_id, NONE, [a]),
            TaskDefinition::new(&honest.result_id, [a], [b]),
            TaskDefinition::new(&copier.result_id, [b], [output]),
        ],
        None,
    )?;
    Ok(())
}

/// Writes `count` blocks of `kib` KiB to the first expected output, each through its own
/// output stream left open with its write possibly still in flight, and notifies it (before
/// the first write, or after the last).
fn streams(h: &TaskHandler, count: u64, kib: u64, notify_first: bool) -> Result<(), TaskError> {
    let output = h.first_expected_result()?;
    if notify_first {
        h.notify_result_data(&[output])?;
    }
    let file = create_file(h, output)?;
    let block = vec![0xA5u8; usize::try_from(kib * 1024).map_err(|e| e.to_string())?];
    for i in 0..count {
        let stream = file
            .write_via_stream(i * kib * 1024)
            .map_err(|e| wasi_error("write-via-stream", e))?;
        let mut rest = block.as_slice();
        while !rest.is_empty() {
            let permitted = stream
                .check_write()
                .map_err(|e| wasi_error("check-write", e))?;
            if permitted == 0 {
                stream.subscribe().block();
                continue;
            }
            let n = rest
                .len()
                .min(usize::try_from(permitted).unwrap_or(usize::MAX));
            stream
                .write(&rest[..n])
                .map_err(|e| wasi_error("write", e))?;
            rest = &rest[n..];
        }
        stream.flush().map_err(|e| wasi_error("flush", e))?;
        // Kept open: the host must still see the write land before it replies.
        std::mem::forget(stream);
    }
    std::mem::forget(file);
    if !notify_first {
        h.notify_result_data(&[output])?;
    }
    Ok(())
}

/// `wasi:clocks/monotonic-clock.subscribe-duration`, imported by hand: the SDK's world does
/// not name the monotonic clock, but `std` imports it (for `sleep`) at the version below,
/// with its `pollable` from the same `wasi:io/poll` as the SDK's bindings.
#[cfg(target_arch = "wasm32")]
fn subscribe_duration(nanoseconds: u64) -> poll::Pollable {
    #[link(wasm_import_module = "wasi:clocks/monotonic-clock@0.2.6")]
    unsafe extern "C" {
        #[link_name = "subscribe-duration"]
        fn subscribe_duration(when: i64) -> i32;
    }
    // The canonical ABI passes a u64 as an i64 and a handle as an i32, bit for bit.
    #[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
    // SAFETY: the import has the canonical ABI signature of `subscribe-duration` (a u64 in,
    // an owned `pollable` handle out), and the handle is owned by the `Pollable` made of it.
    unsafe {
        poll::Pollable::from_handle(subscribe_duration(nanoseconds as i64) as u32)
    }
}

/// Off wasm (unit builds of the crate) there is no clock to subscribe to.
#[cfg(not(target_arch = "wasm32"))]
fn subscribe_duration(_nanoseconds: u64) -> poll::Pollable {
    unreachable!("poll-clock runs only as a component")
}

/// Bytes in a MiB.
const MIB: u64 = 1 << 20;

/// `mib` MiB as a buffer length.
fn mib_len(mib: u64) -> Result<usize, TaskError> {
    usize::try_from(mib.saturating_mul(MIB)).map_err(|e| TaskError::failed(e.to_string()))
}

/// Opens file `name` of the data folder for writing (created or truncated), through the
/// preopened directory.
fn create_file(h: &TaskHandler, name: &str) -> Result<Descriptor, TaskError> {
    data_dir(h)?
        .open_at(
            PathFlags::empty(),
            name,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )
        .map_err(|e| wasi_error("open-at", e))
}

/// Fills the first expected output with `total` MiB in positional writes of `per_write` MiB,
/// syncs it, then notifies it.
fn big_writes(h: &TaskHandler, total: u64, per_write: u64) -> Result<(), TaskError> {
    if per_write == 0 {
        return Err("big-writes: <MiB per write> must be at least 1".into());
    }
    let output = h.first_expected_result()?;
    let file = create_file(h, output)?;
    let block = vec![0xA5u8; mib_len(per_write.min(total))?];
    let end = total.saturating_mul(MIB);
    let mut offset = 0u64;
    while offset < end {
        let want = usize::try_from(end - offset)
            .unwrap_or(usize::MAX)
            .min(block.len());
        let written = file
            .write(&block[..want], offset)
            .map_err(|e| wasi_error("write", e))?;
        if written == 0 {
            return Err(TaskError::failed("big-writes: a write wrote nothing"));
        }
        offset += written;
    }
    file.sync().map_err(|e| wasi_error("sync", e))?;
    drop(file);
    h.notify_result_data(&[output])?;
    Ok(())
}

/// Writes `mib` MiB to the first expected output in one positional write, then notifies it.
fn one_write(h: &TaskHandler, mib: u64) -> Result<(), TaskError> {
    let output = h.first_expected_result()?;
    let file = create_file(h, output)?;
    let buffer = vec![0xA5u8; mib_len(mib)?];
    let written = file.write(&buffer, 0).map_err(|e| wasi_error("write", e))?;
    if written != buffer.len() as u64 {
        return Err(TaskError::failed(format!(
            "one-write: wrote {written} of {} bytes",
            buffer.len()
        )));
    }
    drop(file);
    h.notify_result_data(&[output])?;
    Ok(())
}

/// Leaves `files` small files, a `depth`-deep directory tree and a sparse file of
/// `sparse_gib` GiB in the data folder; says what it left.
fn litter(h: &TaskHandler, files: u64, depth: u64, sparse_gib: u64) -> Result<String, TaskError> {
    for i in 0..files {
        let path = h.path_of(&format!("litter-{i}"));
        fs::write(&path, b"x").map_err(|e| TaskError::io(path, e))?;
    }
    if depth > 0 {
        let mut level = data_dir(h)?;
        for i in 0..depth {
            let name = if i == 0 { "deep" } else { "d" };
            level
                .create_directory_at(name)
                .map_err(|e| wasi_error("create-directory-at", e))?;
            level = level
                .open_at(
                    PathFlags::empty(),
                    name,
                    OpenFlags::DIRECTORY,
                    DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
                )
                .map_err(|e| wasi_error("open-at", e))?;
        }
    }
    let sparse = sparse_gib.saturating_mul(1 << 30);
    let path = h.path_of("sparse");
    fs::File::create(&path)
        .and_then(|file| file.set_len(sparse))
        .map_err(|e| TaskError::io(path, e))?;
    Ok(format!(
        "littered files={files} depth={depth} sparse={sparse}"
    ))
}

/// The `data-folder` mode (see the module documentation).
fn probe_data_folder(h: &TaskHandler, link_target: &str) -> Result<String, TaskError> {
    fn outcome<T>(result: Result<T, FileError>, ok: impl FnOnce(T) -> String) -> String {
        match result {
            Ok(value) => ok(value),
            Err(error) => format!("err {}", armonik_wasm_sdk::file_error_text(&error)),
        }
    }
    let read = |name: &str, max_size: u64| {
        outcome(data_folder::read(name, max_size), |data| {
            format!("ok {} bytes", data.len())
        })
    };
    let write = |name: &str, data: &[u8]| outcome(data_folder::write(name, data), |()| "ok".into());
    let mut lines = Vec::new();
    let long = "n".repeat(256);
    let bad = [
        "../x",
        "a/b",
        "/etc/passwd",
        "",
        ".",
        "..",
        &long,
        "nul\0",
        "missing",
    ];
    for name in bad {
        lines.push(format!("read {name:?}: {}", read(name, u64::MAX)));
    }
    // A 4 MiB name of control characters: refused without the host copying or echoing it.
    let huge = "\u{1f}".repeat(4 << 20);
    let refused = outcome(data_folder::read(&huge, u64::MAX), |_| "ok".into());
    lines.push(format!(
        "read <4 MiB of \\u{{1f}}>: {}",
        refused.get(..200).unwrap_or(&refused)
    ));

    let payload_id = h.payload_id().to_owned();
    let target = if link_target.is_empty() {
        payload_id.as_str()
    } else {
        link_target
    };
    let dir = data_dir(h)?;
    dir.symlink_at(target, "link")
        .map_err(|e| wasi_error("symlink-at", e))?;
    dir.create_directory_at("dir")
        .map_err(|e| wasi_error("create-directory-at", e))?;
    for (name, size) in [
        ("sparse", 64 << 30),
        ("sparse-over", (2 << 30) + 1),
        ("sparse-small", 1 << 20),
    ] {
        let path = h.path_of(name);
        fs::File::create(&path)
            .and_then(|file| file.set_len(size))
            .map_err(|e| TaskError::io(path, e))?;
    }
    for name in ["link", "dir", "sparse", "sparse-over"] {
        lines.push(format!("read {name:?}: {}", read(name, u64::MAX)));
    }
    let zeros = outcome(data_folder::read("sparse-small", u64::MAX), |data| {
        let zero = data.iter().all(|&b| b == 0);
        format!(
            "ok {} bytes {}",
            data.len(),
            if zero { "zero" } else { "not zero" }
        )
    });
    lines.push(format!("read \"sparse-small\": {zeros}"));
    let payload_path = h.path_of(&payload_id);
    let on_disk = fs::read(&payload_path).map_err(|e| TaskError::io(payload_path, e))?;
    let size = on_disk.len() as u64;
    for max_size in [size.saturating_sub(1), size] {
        let got = outcome(data_folder::read(&payload_id, max_size), |data| {
            let same = if data == on_disk { "same" } else { "differs" };
            format!("ok {} bytes {same}", data.len())
        });
        lines.push(format!("read {payload_id:?} max-size={max_size}: {got}"));
    }

    for name in ["../x", "", "a/b", "dir", "link"] {
        lines.push(format!("write {name:?}: {}", write(name, b"evil")));
    }
    lines.push(format!("link-now={}", kind_of(&h.path_of("link"))));
    let fresh: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    lines.push(format!("write \"fresh\": {}", write("fresh", &fresh)));
    let back = data_folder::read("fresh", u64::MAX)
        .map_or("err", |data| if data == fresh { "same" } else { "differs" });
    lines.push(format!("fresh-back={back}"));

    let part = |name: &str, offset: u64, length: u64, whole: Option<&[u8]>| {
        let got = outcome(data_folder::read_part(name, offset, length), |data| {
            let verdict = match whole {
                None if data.iter().all(|&b| b == 0) => "zero",
                None => "not zero",
                Some(whole) => {
                    let start = usize::try_from(offset)
                        .unwrap_or(usize::MAX)
                        .min(whole.len());
                    let end = start.saturating_add(usize::try_from(length).unwrap_or(usize::MAX));
                    if data == whole[start..end.min(whole.len())] {
                        "same"
                    } else {
                        "differs"
                    }
                }
            };
            format!("ok {} bytes {verdict}", data.len())
        });
        format!("read-part {name:?} {offset}+{length}: {got}")
    };
    // `link` is a file by now: a second link to the same target.
    dir.symlink_at(target, "link-part")
        .map_err(|e| wasi_error("symlink-at", e))?;
    for name in ["../x", "link-part", "dir", "missing"] {
        lines.push(part(name, 0, 16, None));
    }
    lines.push(part("sparse", 40 << 30, 1 << 20, None));
    for (offset, length) in [
        (0, u64::MAX),
        (4097, 150_000),
        (199_990, u64::MAX),
        (200_000, 1),
        (300_000, 5),
    ] {
        lines.push(part("fresh", offset, length, Some(&fresh)));
    }
    for (offset, length) in [(0, 3), (1, u64::MAX), (size, 1), (0, 0)] {
        lines.push(part(&payload_id, offset, length, Some(&on_disk)));
    }
    Ok(lines.join("\n"))
}

// `data-folder`'s core imports, declared as the canonical ABI lowers them (as the SDK's
// bindings declare them): the name as a pointer and a length, whatever its bytes, the outcome
// written to `ret` (a `result` case byte, then its payload).
#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "armonik:worker/data-folder@0.1.0")]
unsafe extern "C" {
    /// `read(name, max-size)`.
    #[link_name = "read"]
    fn raw_read(name: *const u8, name_len: usize, max_size: i64, ret: *mut u8);
    /// `write(name, data)`.
    #[link_name = "write"]
    fn raw_write(name: *const u8, name_len: usize, data: *const u8, data_len: usize, ret: *mut u8);
}

/// The `data-folder-raw` mode (see the module documentation).
#[cfg(target_arch = "wasm32")]
fn raw_data_folder_call(call: &str) -> Result<(), TaskError> {
    /// Not UTF-8: `ff` never appears in it.
    const NAME: &[u8] = b"\xff\xfen";
    // The return area of either call: a `result` of a list or of a `file-error` (a case and
    // a string), 16 bytes aligned to 4.
    let mut ret = [0u32; 4];
    let ret_ptr = ret.as_mut_ptr().cast::<u8>();
    match call {
        // SAFETY: the arguments are what the lowered signature takes: a name and data that
        // live through the call, and a return area large and aligned enough for the result.
        "read" => unsafe { raw_read(NAME.as_ptr(), NAME.len(), 64, ret_ptr) },
        // SAFETY: as above.
        "write" => unsafe { raw_write(NAME.as_ptr(), NAME.len(), b"evil".as_ptr(), 4, ret_ptr) },
        _ => return Err("usage: data-folder-raw <read|write>".into()),
    }
    // The `result`'s case is its first byte (0: ok, 1: err).
    let case = if ret[0] & 0xff == 0 { "ok" } else { "err" };
    Err(TaskError::failed(format!(
        "data-folder {call} took a name that is not UTF-8: {case}"
    )))
}

/// Off wasm (the crate checked natively), there is no host to call.
#[cfg(not(target_arch = "wasm32"))]
fn raw_data_folder_call(call: &str) -> Result<(), TaskError> {
    Err(TaskError::failed(format!(
        "data-folder-raw {call}: only in a component"
    )))
}

/// Prints lines that try to pass for host log records or to carry other ids.
fn forge_log() {
    let forged = [
        "INFO guest: x session_id=evil task_id=evil",
        "2030-01-01T00:00:00.000000Z  INFO task{session_id=evil task_id=evil}: armonik_wasm::task_runner: task completed evil",
        "before a carriage return\rINFO guest: cr session_id=evil task_id=evil",
        "\x1b[2K\x1b[1G INFO guest: ansi session_id=evil task_id=evil",
        "nul\0 INFO guest: nul session_id=evil task_id=evil",
        "quote\" session_id=evil task_id=evil line=\"evil",
    ];
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    for line in forged {
        // Nothing to do if the host refuses the guest's output: the test reads the log.
        let _ = writeln!(stdout, "{line}");
        let _ = writeln!(stderr, "stderr {line}");
    }
    let _ = write!(
        stdout,
        "WARN guest: no newline at the end session_id=evil\r"
    );
    let _ = stdout.flush();
    let _ = stderr.flush();
}

/// Calls every agent function that takes a list with an empty one; one line each.
fn empty_lists(h: &TaskHandler) -> String {
    let count = |n: usize| n.to_string();
    let lines = [
        (
            "create-results-metadata",
            (h.create_results_metadata(&NONE)).map(|r| count(r.len())),
        ),
        (
            "create-results",
            (h.create_results::<&str, &[u8]>(&[])).map(|r| count(r.len())),
        ),
        (
            "notify-result-data",
            (h.notify_result_data(&NONE)).map(|r| count(r.len())),
        ),
        (
            "submit-tasks",
            (h.submit_tasks(Vec::<TaskDefinition>::new(), None)).map(|r| count(r.len())),
        ),
        (
            "create-tasks",
            (h.create_tasks(Vec::<TaskRequest>::new(), None)).map(|r| count(r.len())),
        ),
    ];
    let lines: Vec<String> = (lines.into_iter())
        .map(|(call, result)| format!("{call}: {}", outcome(result)))
        .collect();
    lines.join("\n")
}

export_task!(Hostile);

/// A buffer in the component's zero-initialised data: a task sees it all zero unless memory
/// written by an earlier task survived. Atomics, so it is plain safe code.
static RESIDUE: [AtomicU8; 4 << 20] = [const { AtomicU8::new(0) }; 4 << 20];

/// Counts what an earlier task left in the static buffer and in memory the task grows, then
/// leaves its own marks for the next task to find. The grown memory comes straight from
/// `memory.grow`, which the spec guarantees zeroed, and is read as it is: through the
/// allocator, `vec![0; n]` would clear it itself (wasi-libc's calloc does) and hide a host
/// that reused memory without resetting it. The memory grown stays the task's (nothing frees
/// it), so each call grows past the memory it starts with.
fn residue(heap_mib: usize) -> String {
    let left_static = RESIDUE
        .iter()
        .filter(|b| b.load(Ordering::Relaxed) != 0)
        .count();
    RESIDUE
        .iter()
        .for_each(|b| b.store(0xA5, Ordering::Relaxed));
    const PAGE: usize = 64 << 10;
    let bytes = heap_mib << 20;
    let first_page = std::arch::wasm32::memory_grow(0, bytes / PAGE);
    if first_page == usize::MAX {
        return format!("static={left_static} heap=cannot-grow");
    }
    let base = (first_page * PAGE) as *mut u8;
    let mut left_heap = 0;
    for offset in 0..bytes {
        // SAFETY: `base..base + bytes` is the memory just grown, which no Rust object owns:
        // this function alone reads and writes it.
        unsafe {
            let byte = base.add(offset);
            left_heap += usize::from(std::ptr::read_volatile(byte) != 0);
            std::ptr::write_volatile(byte, 0xA5);
        }
    }
    format!("static={left_static} heap={left_heap}")
}

/// One line per entry of the data folder, sorted: `<name> <length> <FNV-1a 64>`.
fn survey(h: &TaskHandler) -> Result<String, TaskError> {
    let folder = h.data_folder();
    let mut lines = Vec::new();
    for entry in fs::read_dir(folder).map_err(|e| TaskError::io(folder, e))? {
        let entry = entry.map_err(|e| TaskError::io(folder, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry
            .file_type()
            .map_err(|e| TaskError::io(entry.path(), e))?
            .is_file();
        if !is_file {
            lines.push(format!("{name} not-a-file"));
            continue;
        }
        let bytes = fs::read(entry.path()).map_err(|e| TaskError::io(entry.path(), e))?;
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        lines.push(format!("{name} {} {hash:016x}", bytes.len()));
    }
    lines.sort();
    Ok(lines.join("\n"))
}

/// Overwrites every input with 64 KiB of `T` and leaves plain files `taint-<i>` (see
/// `taint-files` in the module documentation).
fn overwrite_inputs(h: &TaskHandler) -> Result<(), TaskError> {
    let inputs =
        std::iter::once(h.payload_id()).chain(h.data_dependencies().iter().map(String::as_str));
    for id in inputs {
        let path = h.path_of(id);
        fs::write(&path, vec![b'T'; 64 * 1024]).map_err(|e| TaskError::io(path, e))?;
    }
    for i in 0..3 {
        let path = h.path_of(&format!("taint-{i}"));
        fs::write(&path, b"taint").map_err(|e| TaskError::io(path, e))?;
    }
    Ok(())
}

/// Spoils the data folder (see `taint` in the module documentation).
fn taint(h: &TaskHandler) -> Result<(), TaskError> {
    overwrite_inputs(h)?;
    let link = h.path_of("taint-link");
    fs::hard_link(h.path_of(h.payload_id()), &link).map_err(|e| TaskError::io(link, e))?;
    let dir = h.path_of("taint-dir");
    fs::create_dir(&dir).map_err(|e| TaskError::io(&dir, e))?;
    let inner = dir.join("inner");
    fs::write(&inner, b"taint").map_err(|e| TaskError::io(inner, e))?;
    let target = h
        .data_dependencies()
        .first()
        .map_or(h.payload_id(), String::as_str);
    let file = data_dir(h)?
        .open_at(
            PathFlags::empty(),
            target,
            OpenFlags::empty(),
            DescriptorFlags::WRITE,
        )
        .map_err(|e| wasi_error("open-at", e))?;
    let stream = file
        .write_via_stream(0)
        .map_err(|e| wasi_error("write-via-stream", e))?;
    let permitted = stream
        .check_write()
        .map_err(|e| wasi_error("check-write", e))?;
    let block = vec![b'W'; usize::try_from(permitted.min(1 << 20)).unwrap_or(0)];
    stream.write(&block).map_err(|e| wasi_error("write", e))?;
    // Never finished, never dropped: the write may still be running when the task returns.
    std::mem::forget(stream);
    std::mem::forget(file);
    Ok(())
}
