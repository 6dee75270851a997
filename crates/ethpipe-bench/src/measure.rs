//! Running a measured program: wall time, and from the kernel's own
//! accounting (`wait4`'s rusage) its peak resident set and CPU time; plus the
//! machine's CPU use over the same interval (`/proc/stat`), which includes
//! PostgreSQL's backends and the BigQuery-compatible server.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    pub wall_s: f64,
    /// Peak resident set size (VmHWM) of the process, MB (10^6 bytes).
    pub peak_rss_mb: f64,
    /// CPU seconds of the process (user + system).
    pub cpu_s: f64,
    /// CPU seconds the whole machine spent busy meanwhile (all cores).
    pub machine_cpu_s: f64,
}

/// The argument that makes `ethpipe-bench` a launcher (see [`launch`]).
pub const LAUNCH: &str = "__measure";

/// Runs `command` to completion with stdout/stderr in `log`; fails with the
/// log's tail if it exits non-zero.
///
/// The command is started by a fresh copy of this binary ([`launch`]), not
/// by this process: a child's `ru_maxrss` counts the memory of the process
/// that forked it (the forked copy's pages are its own until `exec`), and
/// this process may hold hundreds of MB of rows to compare by then. The
/// launcher has a few MB.
pub fn run(command: Command, log: &Path) -> anyhow::Result<Measured> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let usage_file = log.with_extension("rusage");
    let _ = std::fs::remove_file(&usage_file);
    let mut launcher = Command::new(std::env::current_exe()?);
    launcher
        .arg(LAUNCH)
        .arg(&usage_file)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => launcher.env(key, value),
            None => launcher.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        launcher.current_dir(dir);
    }
    launcher
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    let busy_before = machine_busy_seconds();
    let started = Instant::now();
    let status = launcher
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    let wall = started.elapsed();
    let busy_after = machine_busy_seconds();
    let exited_ok = status.success();
    let status = status
        .code()
        .map(|c| format!("exit {c}"))
        .unwrap_or_else(|| format!("{status}"));
    let usage = std::fs::read_to_string(&usage_file).unwrap_or_default();
    let _ = std::fs::remove_file(&usage_file);
    if !exited_ok {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        bail!(
            "{command:?} failed (status {status}); last lines of {}:\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let numbers: Vec<f64> = usage
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [max_rss_kb, cpu_s] = numbers[..] else {
        bail!("the launcher of {command:?} reported no resource use: {usage:?}");
    };
    Ok(Measured {
        wall_s: wall.as_secs_f64(),
        peak_rss_mb: max_rss_kb * 1024.0 / 1e6,
        cpu_s,
        machine_cpu_s: (busy_after - busy_before).max(0.0),
    })
}

/// `ethpipe-bench __measure USAGE_FILE PROGRAM ARGS…`, run by [`run`] before
/// anything else in `main`: runs the program (environment, folder and
/// output inherited), writes its peak RSS in kB and its CPU seconds to
/// USAGE_FILE, and exits as it did (128 + the signal if killed by one).
pub fn launch(args: &[std::ffi::OsString]) -> std::process::ExitCode {
    let [usage_file, program, rest @ ..] = args else {
        eprintln!("usage: ethpipe-bench {LAUNCH} USAGE_FILE PROGRAM [ARGS…]");
        return std::process::ExitCode::from(2);
    };
    let child = match Command::new(program).args(rest).spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("starting {program:?}: {error}");
            return std::process::ExitCode::from(127);
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, status and usage point at live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    // The child is reaped; do not let `Child` wait for it again.
    std::mem::forget(child);
    if reaped != pid {
        eprintln!("wait4 failed for {program:?}");
        return std::process::ExitCode::from(125);
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    if let Err(error) = std::fs::write(usage_file, format!("{} {cpu_s}\n", usage.ru_maxrss)) {
        eprintln!("writing {usage_file:?}: {error}");
        return std::process::ExitCode::from(125);
    }
    if libc::WIFEXITED(status) {
        std::process::ExitCode::from(libc::WEXITSTATUS(status) as u8)
    } else {
        std::process::ExitCode::from((128 + libc::WTERMSIG(status)) as u8)
    }
}

/// Busy CPU seconds of the machine since boot: everything but idle and iowait.
pub fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .take(8)
        .map(|(_, t)| t)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    busy as f64 / hz
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Waits (up to `limit`) for the machine to be quiet: 1-minute load below
/// `threshold` and no compiler running. Returns the load seen at the end.
pub fn wait_for_quiet(threshold: f64, limit: Duration) -> f64 {
    let started = Instant::now();
    loop {
        let load = load_average();
        let compiling = compilers_running();
        if (load < threshold && !compiling) || started.elapsed() > limit {
            if started.elapsed() > limit {
                eprintln!(
                    "bench: the machine is still busy (load {load:.2}{}); measuring anyway",
                    if compiling {
                        ", a compiler is running"
                    } else {
                        ""
                    }
                );
            }
            return load;
        }
        eprintln!(
            "bench: waiting for a quiet machine (load {load:.2}{})…",
            if compiling {
                ", a compiler is running"
            } else {
                ""
            }
        );
        std::thread::sleep(Duration::from_secs(30));
    }
}

/// Whether a rustc/cargo/clippy process is running (by executable name).
pub fn compilers_running() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read_to_string(entry.path().join("comm"))
            .map(|comm| {
                let comm = comm.trim();
                comm == "rustc" || comm == "cargo" || comm == "clippy-driver" || comm == "cc1"
            })
            .unwrap_or(false)
    })
}
