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
//!   bytes of a 4 MiB static buffer (zero in a fresh instance) and of `<MiB>` (default 4)
//!   new 1 MiB zeroed heap blocks, then fills both with `0xA5`; writes
//!   `static=<count> heap=<count>` to the first expected output.
//!
//! Any other payload fails the task with `err("hostile: unknown mode ...")`.

use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, net};

use armonik_wasm_sdk::{Task, TaskError, TaskHandler, export_task};

/// The hostile task.
struct Hostile;

impl Task for Hostile {
    fn process(h: &mut TaskHandler) -> Result<(), TaskError> {
        let payload = String::from_utf8(h.payload()?)?;
        let (mode, arg) = payload
            .trim()
            .split_once(' ')
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

export_task!(Hostile);

/// A buffer in the component's zero-initialised data: a task sees it all zero unless memory
/// written by an earlier task survived. Atomics, so it is plain safe code.
static RESIDUE: [AtomicU8; 4 << 20] = [const { AtomicU8::new(0) }; 4 << 20];

/// Counts what an earlier task left in the static buffer and in fresh heap memory, then
/// leaves its own marks for the next task to find. The heap blocks are `vec![0; n]`: on wasm
/// the allocator takes fresh memory from `memory.grow`, which the spec guarantees zeroed, so it
/// does not clear it again; a host that reused memory without resetting it shows here.
fn residue(heap_mib: usize) -> String {
    let left_static = RESIDUE
        .iter()
        .filter(|b| b.load(Ordering::Relaxed) != 0)
        .count();
    RESIDUE
        .iter()
        .for_each(|b| b.store(0xA5, Ordering::Relaxed));
    let mut left_heap = 0;
    let mut blocks = Vec::with_capacity(heap_mib);
    for _ in 0..heap_mib {
        let mut block = black_box(vec![0u8; 1 << 20]);
        left_heap += block.iter().filter(|&&b| b != 0).count();
        block.fill(0xA5);
        // Kept until the end, so that each block is new memory.
        blocks.push(black_box(block));
    }
    format!("static={left_static} heap={left_heap}")
}
