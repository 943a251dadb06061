//! The `wasi_snapshot_preview1` subset Redpanda gives transforms, as
//! `src/v/wasm/wasi.cc` implements it: arguments and environment, a
//! virtual clock, constant randomness, stdout and stderr as log events.
//! Files and sockets answer ENOSYS.
//!
//! Like wasmtime-wasi's `add_to_linker`, the functions reach their state
//! through an accessor on the store's data, so any host state can carry a
//! [`WasiState`].

use std::sync::Arc;
use std::time::SystemTime;

use wasmtime::{format_err, Caller, FuncType, Linker, Result, Val, ValType};

use crate::memory::{check, guest_range, memory_and_data, put};

const MODULE: &str = "wasi_snapshot_preview1";

/// Redpanda's own errno values (`src/v/wasm/wasi.h`): its EINVAL is 16,
/// where the WASI specification has 28.
const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EINVAL: i32 = 16;
const ENOSYS: i32 = 52;

/// The longest log event, in bytes (`data_transforms_logging_line_max_bytes`).
pub const LOG_EVENT_MAX_BYTES: usize = 1024;

/// Where a log event was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    /// The OpenTelemetry severity Redpanda gives it: INFO (9) for stdout,
    /// WARN (13) for stderr.
    pub fn severity_number(self) -> u8 {
        match self {
            LogStream::Stdout => 9,
            LogStream::Stderr => 13,
        }
    }
}

/// What the guest wrote to stdout or stderr in one `fd_write` call: one
/// event, its buffers joined, never split on newlines.
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a> {
    pub transform: &'a str,
    pub stream: LogStream,
    pub message: &'a str,
    /// When it was written.
    pub time: SystemTime,
}

/// Where log events go.
pub type Logger = Arc<dyn Fn(LogEvent<'_>) + Send + Sync>;

/// A parameter of a call that only says "not here", and how Redpanda
/// checks it before answering ENOSYS: a bad pointer still traps.
#[derive(Clone, Copy)]
enum Param {
    I32,
    I64,
    /// A pointer to this many bytes.
    Out(usize),
    /// A pointer and a count of elements of this many bytes (two params).
    Array(usize),
}

use Param::{Array, Out, I32, I64};

/// Every call that answers ENOSYS, with its parameters (`wasi.cc`, the ENOSYS stubs of `preview1_module`).
const UNSUPPORTED: &[(&str, &[Param])] = &[
    ("fd_advise", &[I32, I64, I64, I32]),
    ("fd_allocate", &[I32, I64, I64]),
    ("fd_close", &[I32]),
    ("fd_datasync", &[I32]),
    ("fd_fdstat_get", &[I32, I32]),
    ("fd_fdstat_set_flags", &[I32, I32]),
    ("fd_filestat_get", &[I32, I32]),
    ("fd_filestat_set_size", &[I32, I64]),
    ("fd_filestat_set_times", &[I32, I64, I64, I32]),
    ("fd_pread", &[I32, Array(8), I64, Out(4)]),
    ("fd_prestat_dir_name", &[I32, Out(1), I32]),
    ("fd_pwrite", &[I32, Array(8), I64, Out(4)]),
    ("fd_read", &[I32, Array(8), Out(4)]),
    ("fd_readdir", &[I32, Array(1), I64, Out(4)]),
    ("fd_renumber", &[I32, I32]),
    ("fd_seek", &[I32, I64, I32, Out(8)]),
    ("fd_sync", &[I32]),
    ("fd_tell", &[I32, Out(8)]),
    ("path_create_directory", &[I32, Array(1)]),
    ("path_filestat_get", &[I32, I32, Array(1), I32]),
    (
        "path_filestat_set_times",
        &[I32, I32, Array(1), I64, I64, I32],
    ),
    ("path_link", &[I32, I32, Array(1), I32, Array(1)]),
    (
        "path_open",
        &[I32, I32, Array(1), I32, I64, I64, I32, Out(4)],
    ),
    ("path_readlink", &[I32, Array(1), Array(1), Out(4)]),
    ("path_remove_directory", &[I32, Array(1)]),
    ("path_rename", &[I32, Array(1), I32, Array(1)]),
    ("path_symlink", &[Array(1), I32, Array(1)]),
    ("path_unlink_file", &[I32, Array(1)]),
    ("sock_accept", &[I32, I32, Out(4)]),
    ("sock_recv", &[I32, Array(8), I32, Out(4), Out(2)]),
    ("sock_send", &[I32, Array(8), I32, Out(4)]),
    ("sock_shutdown", &[I32, I32]),
];

/// The guest's view of the process around it.
pub struct WasiState {
    name: String,
    args: Vec<String>,
    environ: Vec<String>,
    /// The realtime clock: the current record's (or batch's) timestamp.
    now_ms: i64,
    /// Shared by the monotonic and CPU-time clocks.
    monotonic_ms: u64,
    logger: Logger,
}

impl WasiState {
    /// Arguments are the transform's name alone, as in Redpanda.
    pub fn new(name: &str, environ: Vec<String>, logger: Logger) -> WasiState {
        WasiState {
            name: name.to_string(),
            args: vec![name.to_string()],
            environ,
            now_ms: 0,
            monotonic_ms: 0,
            logger,
        }
    }

    /// The transform's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the realtime clock, in milliseconds since the epoch.
    pub fn set_realtime(&mut self, ms: i64) {
        self.now_ms = ms;
    }

    /// Redpanda's log manager (`src/v/transform/logging/log_manager.cc`):
    /// the message cut to [`LOG_EVENT_MAX_BYTES`], then dropped whole if it
    /// is not UTF-8 or holds a control character other than `\n` and `\t`
    /// (a cut inside a character drops it too).
    fn log(&self, stream: LogStream, data: &[u8]) {
        let data = &data[..data.len().min(LOG_EVENT_MAX_BYTES)];
        let Ok(message) = std::str::from_utf8(data) else {
            return;
        };
        if message
            .bytes()
            .any(|b| (b < 0x20 || b == 0x7f) && b != b'\n' && b != b'\t')
        {
            return;
        }
        (self.logger)(LogEvent {
            transform: &self.name,
            stream,
            message,
            time: SystemTime::now(),
        });
    }
}

/// Adds every WASI function; `get` finds the [`WasiState`] in the store's data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut WasiState,
) -> Result<()> {
    linker.func_wrap(
        MODULE,
        "args_sizes_get",
        move |mut c: Caller<'_, T>, count: i32, size: i32| {
            let (memory, data) = memory_and_data(&mut c)?;
            strings_sizes(memory, &get(data).args, count, size)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "args_get",
        move |mut c: Caller<'_, T>, ptrs: i32, buf: i32| {
            let (memory, data) = memory_and_data(&mut c)?;
            Ok(strings_get(memory, &get(data).args, ptrs, buf))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_sizes_get",
        move |mut c: Caller<'_, T>, count: i32, size: i32| {
            let (memory, data) = memory_and_data(&mut c)?;
            strings_sizes(memory, &get(data).environ, count, size)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_get",
        move |mut c: Caller<'_, T>, ptrs: i32, buf: i32| {
            let (memory, data) = memory_and_data(&mut c)?;
            Ok(strings_get(memory, &get(data).environ, ptrs, buf))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_res_get",
        |mut c: Caller<'_, T>, id: i32, out: i32| -> Result<i32> {
            let (memory, _) = memory_and_data(&mut c)?;
            check(memory, &[(out, 8)])?;
            if !(0..=3).contains(&id) {
                return Ok(EINVAL);
            }
            put(memory, out, 1_000_000u64.to_le_bytes())?;
            Ok(SUCCESS)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        move |mut c: Caller<'_, T>, id: i32, _precision: i64, out: i32| -> Result<i32> {
            let (memory, data) = memory_and_data(&mut c)?;
            check(memory, &[(out, 8)])?;
            let wasi = get(data);
            let ns = match id {
                0 => (wasi.now_ms as u64).wrapping_mul(1_000_000),
                // The monotonic and CPU-time clocks share one counter that
                // starts at 0 and advances 1 ms a read, so that retry loops
                // and timers make progress.
                1..=3 => {
                    let now = wasi.monotonic_ms * 1_000_000;
                    wasi.monotonic_ms += 1;
                    now
                }
                _ => return Ok(EINVAL),
            };
            put(memory, out, ns.to_le_bytes())?;
            Ok(SUCCESS)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_write",
        move |mut c: Caller<'_, T>, fd: i32, iovs: i32, count: i32, written: i32| {
            let (memory, data) = memory_and_data(&mut c)?;
            fd_write(memory, get(data), fd, iovs, count, written)
        },
    )?;
    linker.func_wrap(MODULE, "fd_prestat_get", |fd: i32, _buf: i32| {
        // wasi-libc walks preopens until EBADF; 0-2 exist but are not directories.
        if (0..=2).contains(&fd) {
            ENOSYS
        } else {
            EBADF
        }
    })?;
    linker.func_wrap(MODULE, "poll_oneoff", poll_oneoff::<T>)?;
    linker.func_wrap(MODULE, "proc_exit", |code: i32| -> Result<()> {
        Err(format_err!("exited with code: {code}"))
    })?;
    linker.func_wrap(MODULE, "sched_yield", || SUCCESS)?;
    linker.func_wrap(
        MODULE,
        "random_get",
        |mut c: Caller<'_, T>, buf: i32, len: i32| -> Result<i32> {
            let (memory, _) = memory_and_data(&mut c)?;
            // Deterministic, as in Redpanda: the same input gives the same output.
            let range = guest_range(memory, buf, len as u32 as usize)?;
            memory[range].fill(0x09);
            Ok(SUCCESS)
        },
    )?;
    let engine = linker.engine().clone();
    for &(name, params) in UNSUPPORTED {
        let types = params.iter().flat_map(|p| match p {
            I64 => vec![ValType::I64],
            Array(_) => vec![ValType::I32, ValType::I32],
            I32 | Out(_) => vec![ValType::I32],
        });
        let ty = FuncType::new(&engine, types, [ValType::I32]);
        linker.func_new(MODULE, name, ty, move |mut c, args, results| {
            let (memory, _) = memory_and_data(&mut c)?;
            check(memory, &ranges(params, args))?;
            results[0] = ENOSYS.into();
            Ok(())
        })?;
    }
    Ok(())
}

/// The guest ranges a call's parameters name.
fn ranges(params: &[Param], args: &[Val]) -> Vec<(i32, usize)> {
    let mut ranges = Vec::new();
    let mut i = 0;
    for param in params {
        match *param {
            Out(bytes) => ranges.push((args[i].unwrap_i32(), bytes)),
            Array(size) => {
                let count = args[i + 1].unwrap_i32() as u32 as usize;
                ranges.push((args[i].unwrap_i32(), count * size));
                i += 1;
            }
            I32 | I64 => {}
        }
        i += 1;
    }
    ranges
}

fn strings_sizes(memory: &mut [u8], strings: &[String], count: i32, size: i32) -> Result<i32> {
    check(memory, &[(count, 4), (size, 4)])?;
    let total: usize = strings.iter().map(|s| s.len() + 1).sum();
    put(memory, count, (strings.len() as u32).to_le_bytes())?;
    put(memory, size, (total as u32).to_le_bytes())?;
    Ok(SUCCESS)
}

/// Writes NUL-terminated strings at `buf` and a pointer to each at `ptrs`.
/// Unlike other calls, a bad pointer here is EINVAL, not a trap
/// (`wasi.cc`: `preview1_module::args_get` and `environ_get` catch the exception).
fn strings_get(memory: &mut [u8], strings: &[String], ptrs: i32, buf: i32) -> i32 {
    let total: usize = strings.iter().map(|s| s.len() + 1).sum();
    if check(memory, &[(ptrs, 4 * strings.len()), (buf, total)]).is_err() {
        return EINVAL;
    }
    let mut at = buf as u32 as usize;
    for (i, s) in strings.iter().enumerate() {
        let slot = ptrs as u32 as usize + 4 * i;
        memory[slot..slot + 4].copy_from_slice(&(at as u32).to_le_bytes());
        memory[at..at + s.len()].copy_from_slice(s.as_bytes());
        memory[at + s.len()] = 0;
        at += s.len() + 1;
    }
    SUCCESS
}

/// One log event per call, its buffers joined; other descriptors ENOSYS.
fn fd_write(
    memory: &mut [u8],
    wasi: &WasiState,
    fd: i32,
    iovs: i32,
    count: i32,
    written: i32,
) -> Result<i32> {
    let count = count as u32 as usize;
    check(memory, &[(iovs, 8 * count), (written, 4)])?;
    let stream = match fd {
        1 => LogStream::Stdout,
        2 => LogStream::Stderr,
        _ => return Ok(ENOSYS),
    };
    let mut message = Vec::new();
    for i in 0..count {
        let iov = iovs as u32 as usize + 8 * i;
        let ptr = i32::from_le_bytes(memory[iov..iov + 4].try_into()?);
        let len = u32::from_le_bytes(memory[iov + 4..iov + 8].try_into()?);
        let data = guest_range(memory, ptr, len as usize)?;
        message.extend_from_slice(&memory[data]);
    }
    wasi.log(stream, &message);
    put(memory, written, (message.len() as u32).to_le_bytes())?;
    Ok(SUCCESS)
}

/// Every clock subscription fires at once, with no sleep and no clock
/// moved; fd subscriptions get ENOSYS; an unknown tag ends the call with
/// ENOSYS; no subscriptions at all is a success (`wasi.cc`, `preview1_module::poll_oneoff`).
fn poll_oneoff<T>(
    mut c: Caller<'_, T>,
    subs: i32,
    events: i32,
    n: i32,
    nevents: i32,
) -> Result<i32> {
    let (memory, _) = memory_and_data(&mut c)?;
    let n = n as u32 as usize;
    check(memory, &[(nevents, 4), (subs, 48 * n), (events, 32 * n)])?;
    for i in 0..n {
        let sub = subs as u32 as usize + 48 * i;
        let event = events as u32 as usize + 32 * i;
        let userdata: [u8; 8] = memory[sub..sub + 8].try_into()?;
        let tag = memory[sub + 8];
        memory[event..event + 8].copy_from_slice(&userdata);
        memory[event + 10] = tag;
        let error: u16 = match tag {
            0 => 0,
            1 | 2 => ENOSYS as u16,
            _ => return Ok(ENOSYS),
        };
        memory[event + 8..event + 10].copy_from_slice(&error.to_le_bytes());
    }
    put(memory, nevents, (n as u32).to_le_bytes())?;
    Ok(SUCCESS)
}
