//! The `wasi_snapshot_preview1` subset Redpanda gives transforms: arguments
//! and environment, a virtual clock, constant randomness, stdout and stderr
//! as log lines. Files and sockets answer ENOSYS.

use wasmtime::{format_err, Result};
use wasmtime::{Caller, FuncType, Linker, ValType};

use crate::state::{guest_range, memory_and_state, put, HostState, LogLine, LogStream, Logger};

const MODULE: &str = "wasi_snapshot_preview1";

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;

/// Calls that exist only to say "not here", with their parameter types
/// (`i` = i32, `I` = i64); each returns an errno.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("fd_advise", "iIIi"),
    ("fd_allocate", "iII"),
    ("fd_close", "i"),
    ("fd_datasync", "i"),
    ("fd_fdstat_get", "ii"),
    ("fd_fdstat_set_flags", "ii"),
    ("fd_filestat_get", "ii"),
    ("fd_filestat_set_size", "iI"),
    ("fd_filestat_set_times", "iIIi"),
    ("fd_pread", "iiiIi"),
    ("fd_prestat_dir_name", "iii"),
    ("fd_pwrite", "iiiIi"),
    ("fd_read", "iiii"),
    ("fd_readdir", "iiiIi"),
    ("fd_renumber", "ii"),
    ("fd_seek", "iIii"),
    ("fd_sync", "i"),
    ("fd_tell", "ii"),
    ("path_create_directory", "iii"),
    ("path_filestat_get", "iiiii"),
    ("path_filestat_set_times", "iiiiIIi"),
    ("path_link", "iiiiiii"),
    ("path_open", "iiiiiIIii"),
    ("path_readlink", "iiiiii"),
    ("path_remove_directory", "iii"),
    ("path_rename", "iiiiii"),
    ("path_symlink", "iiiii"),
    ("path_unlink_file", "iii"),
    ("sock_accept", "iii"),
    ("sock_recv", "iiiiii"),
    ("sock_send", "iiiii"),
    ("sock_shutdown", "ii"),
];

/// The guest's view of the process around it.
pub(crate) struct WasiState {
    pub args: Vec<String>,
    pub environ: Vec<String>,
    /// The current record's timestamp: the realtime clock (0 before the first batch).
    pub now_ms: i64,
    pub monotonic_ns: u64,
    pub logger: Logger,
    partial: [Vec<u8>; 2],
}

impl WasiState {
    pub fn new(args: Vec<String>, environ: Vec<String>, logger: Logger) -> WasiState {
        WasiState {
            args,
            environ,
            now_ms: 0,
            monotonic_ns: 0,
            logger,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Emits what is left of unfinished lines, so a crash loses no log text.
    pub fn flush_logs(&mut self, transform: &str) {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let buf = std::mem::take(&mut self.partial[stream as usize]);
            if !buf.is_empty() {
                self.log(transform, stream, &buf);
            }
        }
    }

    fn log(&self, transform: &str, stream: LogStream, line: &[u8]) {
        (self.logger)(LogLine {
            transform,
            stream,
            line: &String::from_utf8_lossy(line),
        });
    }

    fn write(&mut self, transform: &str, stream: LogStream, mut data: &[u8]) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[stream as usize]);
            line.extend_from_slice(&data[..nl]);
            self.log(transform, stream, &line);
            data = &data[nl + 1..];
        }
        self.partial[stream as usize].extend_from_slice(data);
        // A guest that never ends its line must not grow host memory.
        if self.partial[stream as usize].len() > 64 << 10 {
            let line = std::mem::take(&mut self.partial[stream as usize]);
            self.log(transform, stream, &line);
        }
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        MODULE,
        "args_sizes_get",
        |c: Caller<'_, HostState>, n: i32, size: i32| strings_sizes(c, n, size, |w| &w.args),
    )?;
    linker.func_wrap(
        MODULE,
        "args_get",
        |c: Caller<'_, HostState>, ptrs: i32, buf: i32| strings_get(c, ptrs, buf, |w| &w.args),
    )?;
    linker.func_wrap(
        MODULE,
        "environ_sizes_get",
        |c: Caller<'_, HostState>, n: i32, size: i32| strings_sizes(c, n, size, |w| &w.environ),
    )?;
    linker.func_wrap(
        MODULE,
        "environ_get",
        |c: Caller<'_, HostState>, ptrs: i32, buf: i32| strings_get(c, ptrs, buf, |w| &w.environ),
    )?;
    linker.func_wrap(MODULE, "clock_res_get", HostState::clock_res_get)?;
    linker.func_wrap(MODULE, "clock_time_get", HostState::clock_time_get)?;
    linker.func_wrap(MODULE, "fd_write", HostState::fd_write)?;
    linker.func_wrap(MODULE, "fd_prestat_get", |fd: i32, _buf: i32| {
        // wasi-libc walks preopens until EBADF; 0-2 exist but are not directories.
        if (0..=2).contains(&fd) {
            ENOSYS
        } else {
            EBADF
        }
    })?;
    linker.func_wrap(MODULE, "poll_oneoff", HostState::poll_oneoff)?;
    linker.func_wrap(MODULE, "proc_exit", |code: i32| -> Result<()> {
        Err(format_err!(
            "the transform exited (proc_exit with code {code})"
        ))
    })?;
    linker.func_wrap(MODULE, "sched_yield", || SUCCESS)?;
    linker.func_wrap(
        MODULE,
        "random_get",
        |mut c: Caller<'_, HostState>, buf: i32, len: i32| {
            let (memory, _) = memory_and_state(&mut c)?;
            // Deterministic, as in Redpanda: the same input gives the same output.
            let range = guest_range(memory, buf, len as u32 as usize)?;
            memory[range].fill(0x09);
            Ok(SUCCESS)
        },
    )?;
    let engine = linker.engine().clone();
    for (name, params) in UNSUPPORTED {
        let params = params
            .chars()
            .map(|c| if c == 'I' { ValType::I64 } else { ValType::I32 });
        let ty = FuncType::new(&engine, params, [ValType::I32]);
        linker.func_new(MODULE, name, ty, |_, _, results| {
            results[0] = ENOSYS.into();
            Ok(())
        })?;
    }
    Ok(())
}

fn strings_sizes(
    mut c: Caller<'_, HostState>,
    count_ptr: i32,
    size_ptr: i32,
    which: fn(&WasiState) -> &Vec<String>,
) -> Result<i32> {
    let (memory, state) = memory_and_state(&mut c)?;
    let strings = which(&state.wasi);
    let size: usize = strings.iter().map(|s| s.len() + 1).sum();
    put(memory, count_ptr, (strings.len() as u32).to_le_bytes())?;
    put(memory, size_ptr, (size as u32).to_le_bytes())?;
    Ok(SUCCESS)
}

/// Writes NUL-terminated strings at `buf` and a pointer to each at `ptrs`.
fn strings_get(
    mut c: Caller<'_, HostState>,
    ptrs: i32,
    buf: i32,
    which: fn(&WasiState) -> &Vec<String>,
) -> Result<i32> {
    let (memory, state) = memory_and_state(&mut c)?;
    let mut at = buf as u32;
    for (i, s) in which(&state.wasi).iter().enumerate() {
        put(memory, ptrs.wrapping_add(4 * i as i32), at.to_le_bytes())?;
        let range = guest_range(memory, at as i32, s.len() + 1)?;
        memory[range.start..range.end - 1].copy_from_slice(s.as_bytes());
        memory[range.end - 1] = 0;
        at += s.len() as u32 + 1;
    }
    Ok(SUCCESS)
}

impl HostState {
    fn clock_res_get(mut c: Caller<'_, HostState>, id: i32, out: i32) -> Result<i32> {
        if !(0..=3).contains(&id) {
            return Ok(EINVAL);
        }
        let (memory, _) = memory_and_state(&mut c)?;
        put(memory, out, 1_000_000u64.to_le_bytes())?;
        Ok(SUCCESS)
    }

    /// Realtime is the current record's timestamp; the other clocks advance
    /// 1 ms per call, so that retry loops and timers make progress.
    fn clock_time_get(
        mut c: Caller<'_, HostState>,
        id: i32,
        _precision: i64,
        out: i32,
    ) -> Result<i32> {
        let (memory, state) = memory_and_state(&mut c)?;
        let ns = match id {
            0 => (state.wasi.now_ms as u64).wrapping_mul(1_000_000),
            1..=3 => {
                state.wasi.monotonic_ns += 1_000_000;
                state.wasi.monotonic_ns
            }
            _ => return Ok(EINVAL),
        };
        put(memory, out, ns.to_le_bytes())?;
        Ok(SUCCESS)
    }

    fn fd_write(
        mut c: Caller<'_, HostState>,
        fd: i32,
        iovs: i32,
        iovs_len: i32,
        written: i32,
    ) -> Result<i32> {
        let stream = match fd {
            1 => LogStream::Stdout,
            2 => LogStream::Stderr,
            _ => return Ok(ENOSYS),
        };
        let (memory, state) = memory_and_state(&mut c)?;
        let mut total = 0u32;
        for i in 0..iovs_len as u32 as usize {
            let iov = guest_range(memory, iovs.wrapping_add(8 * i as i32), 8)?;
            let ptr = i32::from_le_bytes(memory[iov.start..iov.start + 4].try_into()?);
            let len = u32::from_le_bytes(memory[iov.start + 4..iov.end].try_into()?);
            let data = guest_range(memory, ptr, len as usize)?;
            state.wasi.write(&state.name, stream, &memory[data]);
            total += len;
        }
        put(memory, written, total.to_le_bytes())?;
        Ok(SUCCESS)
    }

    /// Every subscription fires at once: sleeps return immediately and
    /// there is nothing to read or write.
    fn poll_oneoff(
        mut c: Caller<'_, HostState>,
        subs: i32,
        events: i32,
        n: i32,
        nevents: i32,
    ) -> Result<i32> {
        if n <= 0 {
            return Ok(EINVAL);
        }
        let (memory, _) = memory_and_state(&mut c)?;
        for i in 0..n {
            let sub = guest_range(memory, subs.wrapping_add(48 * i), 48)?;
            let userdata: [u8; 8] = memory[sub.start..sub.start + 8].try_into()?;
            let tag = memory[sub.start + 8];
            let mut event = [0u8; 32];
            event[..8].copy_from_slice(&userdata);
            let errno: u16 = if tag == 0 { 0 } else { ENOSYS as u16 };
            event[8..10].copy_from_slice(&errno.to_le_bytes());
            event[10] = tag;
            put(memory, events.wrapping_add(32 * i), event)?;
        }
        put(memory, nevents, (n as u32).to_le_bytes())?;
        Ok(SUCCESS)
    }
}
