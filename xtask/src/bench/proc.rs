//! Running contender processes: wall time, and peak RSS from `/proc/<pid>/status`.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often the wait loop looks at its children.
const TICK: Duration = Duration::from_millis(1);
/// How often it reads their `VmHWM`.
const RSS_EVERY: Duration = Duration::from_millis(5);

/// `VmHWM` (peak resident set) of a live process, in KiB; `None` once it exited.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The peak RSS of a set of processes: the largest `VmHWM` any one of them reached.
#[derive(Debug, Default)]
pub struct Peak {
    kib: u64,
    /// Also look at descendants (for commands run through a shell).
    tree: bool,
}

impl Peak {
    /// Also counts the descendants of the watched processes (a few levels deep).
    pub fn with_descendants() -> Self {
        Self { kib: 0, tree: true }
    }

    /// Folds in one reading.
    fn see(&mut self, pid: u32) {
        self.see_at(pid, 0);
    }

    fn see_at(&mut self, pid: u32, depth: usize) {
        if let Some(k) = vm_hwm_kib(pid) {
            self.kib = self.kib.max(k);
        }
        if self.tree && depth < 4 {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                self.see_at(c, depth + 1);
            }
        }
    }

    /// The peak, `None` if no reading was ever taken.
    pub fn kib(&self) -> Option<u64> {
        (self.kib > 0).then_some(self.kib)
    }
}

/// Waits for every child, polling their peak RSS, killing them all at `deadline`.
/// Returns their exit statuses in order.
pub fn wait_all(
    children: &mut [Child],
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<Vec<ExitStatus>> {
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut last_rss = Instant::now();
    for c in children.iter() {
        peak.see(c.id());
    }
    loop {
        let read_rss = last_rss.elapsed() >= RSS_EVERY;
        if read_rss {
            last_rss = Instant::now();
        }
        let mut running = false;
        for (c, s) in children.iter_mut().zip(statuses.iter_mut()) {
            if s.is_some() {
                continue;
            }
            if read_rss {
                peak.see(c.id());
            }
            match c.try_wait()? {
                Some(status) => *s = Some(status),
                None => running = true,
            }
        }
        if !running {
            break;
        }
        if Instant::now() >= deadline {
            for c in children.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            anyhow::bail!("timed out; killed");
        }
        std::thread::sleep(TICK);
    }
    Ok(statuses.into_iter().flatten().collect())
}

/// What one measured process did.
#[derive(Debug)]
pub struct Outcome {
    /// Wall time from spawn to exit.
    pub secs: f64,
    /// Its peak RSS in KiB.
    pub peak_kib: Option<u64>,
    /// Its standard output.
    pub stdout: String,
}

/// Runs `cmd` to completion with stdout and stderr in files under `scratch`; an error when it
/// fails (with the tail of its stderr) or exceeds `timeout`. `peak` decides whose RSS counts.
pub fn run(
    mut cmd: Command,
    scratch: &std::path::Path,
    timeout: Duration,
    mut peak: Peak,
) -> anyhow::Result<Outcome> {
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {:?}: {e}", cmd.get_program()))?;
    let mut children = [child];
    let result = wait_all(&mut children, &mut peak, started + timeout);
    let secs = started.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let status = result.map_err(|e| anyhow::anyhow!("{e}: {}", tail(&stderr)))?;
    if let Some(s) = status.first().filter(|s| !s.success()) {
        anyhow::bail!("exited with {s}: {}", tail(&stderr));
    }
    Ok(Outcome {
        secs,
        peak_kib: peak.kib(),
        stdout,
    })
}

/// The last few lines of `s`.
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(6)..].join("\n")
}

/// Removes proxy settings so every client talks to loopback directly.
pub fn no_proxy_env(cmd: &mut Command) -> &mut Command {
    for v in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

/// Stdout of a short command (its first line), for version strings.
pub fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .into_owned();
    text.lines().next().map(|l| l.trim().to_owned())
}
