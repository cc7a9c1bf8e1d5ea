//! External programs the tests use (`skopeo`, `docker-registry`), found on `PATH` (never by
//! a fixed path), and what a test does when one is missing: it fails, in one line naming the
//! package to install. A cross-check that did not run is not a pass.
//!
//! Also [`tcp_connections`]: a process's established TCP connections to a port, read from
//! `/proc` (no `ss`, no `netstat`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The executable `name` in a directory of `PATH` (never the current directory), if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// The tool a test needs, from `PATH`; missing, the test fails here in one line naming
/// `package`, the Debian package that installs it (`.ci/run` installs them).
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not on PATH: this test needs it; install it with \
             `apt-get install -y {package}` (.ci/run does)"
        )
    })
}

/// `skopeo`, the independent client the tests cross-check with (see [`require_tool`]).
pub fn skopeo() -> PathBuf {
    require_tool("skopeo", "skopeo")
}

/// Runs `tool` with `args` and returns what it printed on stdout; a tool that cannot start
/// or exits unsuccessfully fails the test, with its stderr.
pub fn run_tool<I, S>(tool: &Path, args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        tool.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out.stdout
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// How many established TCP connections process `pid` holds to `remote_port` (any address,
/// IPv4 or IPv6): its socket inodes from `/proc/<pid>/fd`, matched in its network
/// namespace's `/proc/<pid>/net/tcp` and `tcp6`. An error when `/proc` cannot be read (the
/// process has exited, or this is not Linux), never a silent zero.
pub fn tcp_connections(pid: u32, remote_port: u16) -> std::io::Result<usize> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(proc.join("fd"))? {
        // A descriptor closed while listing is simply gone.
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        if let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let mut count = 0;
    for table in ["tcp", "tcp6"] {
        let text = match std::fs::read_to_string(proc.join("net").join(table)) {
            Ok(text) => text,
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if table == "tcp6" && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        count += established_to(&text, remote_port, &inodes);
    }
    Ok(count)
}

/// The rows of a `/proc/net/tcp` table that are established (`st` `01`), to `remote_port`,
/// with one of `inodes`.
fn established_to(table: &str, remote_port: u16, inodes: &HashSet<String>) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields
                .get(2)
                .and_then(|remote| remote.rsplit_once(':'))
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok());
            port == Some(remote_port)
                && fields.get(3) == Some(&"01")
                && fields.get(9).is_some_and(|inode| inodes.contains(*inode))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_on_path_only() {
        let sh = find_tool("sh").expect("a POSIX system has sh on PATH");
        assert!(sh.is_absolute());
        assert_eq!(run_tool(&sh, ["-c", "printf ok"]), b"ok");
        let failed = std::panic::catch_unwind(|| run_tool(&sh, ["-c", "echo why >&2; exit 3"]));
        assert!(failed.is_err(), "a failing tool fails the test");
        assert_eq!(find_tool("no-such-tool-acr-import"), None);
        assert_eq!(find_tool("../sh"), None, "a name, not a path");
    }

    #[test]
    fn proc_net_tcp_rows() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0 20 4 30 10 -1
   1: 0100007F:9C41 0100007F:1F90 06 00000000:00000000 00:00000000 00000000     0        0 112 1 0 20 4 30 10 -1
   2: 0100007F:9C42 0100007F:1F91 01 00000000:00000000 00:00000000 00000000     0        0 113 1 0 20 4 30 10 -1
   3: 0100007F:9C43 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0 20 4 30 10 -1
";
        let ours: HashSet<String> = ["111", "112", "113"].map(String::from).into();
        // Port 0x1F90 = 8080: row 0 only (row 1 is TIME_WAIT, row 2 another port, row 3
        // another process's socket).
        assert_eq!(established_to(table, 8080, &ours), 1);
    }

    #[test]
    fn this_process_connections_are_counted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let before = tcp_connections(std::process::id(), port).unwrap();
        let a = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let b = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_sa, _) = listener.accept().unwrap();
        let (_sb, _) = listener.accept().unwrap();
        assert_eq!(
            tcp_connections(std::process::id(), port).unwrap(),
            before + 2
        );
        drop((a, b));
        assert!(tcp_connections(u32::MAX, port).is_err(), "no such process");
    }
}
