//! Helpers the `acr` binary's test files share: running it, reading its output, and the
//! registries it runs against.
// Each test file uses some of them.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use acr_import_testsupport::seed::{Blob, Seeder, image, push_manifest};
use acr_import_testsupport::{
    FaultAction, FaultRule, Proxy, ProxyOptions, Registry, RegistryBuilder, TokenServer,
    TokenServerBuilder,
};

/// The `acr` binary under test.
pub const ACR: &str = env!("CARGO_BIN_EXE_acr");

/// Runs `acr` with `args`, without source credentials from the environment.
pub fn acr(args: &[&str]) -> Output {
    Command::new(ACR)
        .args(args)
        .env_remove("ACR_IMPORT_SOURCE_PASSWORD")
        .env_remove("ACR_IMPORT_SOURCE_USERNAME")
        .output()
        .expect("run acr")
}

/// Standard output of a finished `acr`, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error of a finished `acr`, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A multi-threaded runtime for the registries and clients a test drives.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// An `acr` command line built flag by flag, run without source credentials from the
/// environment (as [`acr`]).
#[derive(Debug, Clone, Default)]
pub struct Acr {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
}

impl Acr {
    /// `acr import -n <target> --source <source>`.
    pub fn import(target: &str, source: &str) -> Self {
        Self::default().args(&["import", "-n", target, "--source", source])
    }

    /// `acr <command…> -n <registry> --repository <repo>`, e.g. `repository show-tags`.
    pub fn on_repository(command: &[&str], registry: &str, repo: &str) -> Self {
        Self::default()
            .args(command)
            .args(&["-n", registry, "--repository", repo])
    }

    /// `acr import -n <target> --from-file <file>`.
    pub fn batch(target: &str, file: impl AsRef<Path>) -> Self {
        let file = file.as_ref().to_str().expect("a UTF-8 path");
        Self::default().args(&["import", "-n", target, "--from-file", file])
    }

    /// Adds `-t <image>` for each of `images`.
    pub fn images(mut self, images: &[&str]) -> Self {
        for image in images {
            self = self.args(&["-t", image]);
        }
        self
    }

    /// Adds `-o <format>`.
    pub fn format(self, format: &str) -> Self {
        self.args(&["-o", format])
    }

    /// Adds `args` as they are.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets the environment variable `key` to `value` for the run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Writes `text` and a newline to the standard input of the run.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(format!("{text}\n"));
        self
    }

    /// The command, its output not yet directed anywhere, no standard input.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(ACR);
        cmd.args(&self.args)
            .env_remove("ACR_IMPORT_SOURCE_PASSWORD")
            .env_remove("ACR_IMPORT_SOURCE_USERNAME")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Starts it with standard output and error captured, and its standard input written.
    pub fn spawn(&self) -> Child {
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("run acr");
        if let Some(text) = &self.stdin {
            let mut input = child.stdin.take().expect("stdin");
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        child
    }

    /// Runs it to the end.
    pub fn run(&self) -> Output {
        self.spawn().wait_with_output().expect("acr output")
    }

    /// Runs it to the end and asserts it succeeded, showing its standard error if not.
    pub fn run_ok(&self) -> Output {
        let o = self.run();
        assert!(o.status.success(), "{}", stderr(&o));
        o
    }

    /// Runs it to the end, asserts it exited with `code` (showing its standard error if
    /// not) and returns its standard error.
    pub fn expect_exit(&self, code: i32) -> String {
        let o = self.run();
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        stderr(&o)
    }
}

/// `acr repository show-tags -n <registry> --repository <repo>`.
pub fn show_tags(registry: &str, repo: &str) -> Output {
    Acr::on_repository(&["repository", "show-tags"], registry, repo).run()
}

/// Standard output of `acr` parsed as JSON; a panic showing both outputs if it is not.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(o)
        )
    })
}

/// Asserts that `text` contains each of `parts`, naming the one missing.
pub fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
}

/// Sends SIGINT to `child` (what Ctrl-C sends) and waits for it to end.
pub fn interrupt(child: Child) -> Output {
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait_with_output().unwrap()
}

/// Checks `done` every `every` until it holds or `limit` has passed.
pub fn wait_until(limit: Duration, every: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(every);
    }
}

/// Writes `text` to the file `name` in `dir`; returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file.to_str().expect("a UTF-8 path").to_owned()
}

/// Starts the registries of `a` and `b` at once.
pub fn start_both(
    rt: &tokio::runtime::Runtime,
    a: RegistryBuilder,
    b: RegistryBuilder,
) -> (Registry, Registry) {
    let (a, b) = rt.block_on(async { tokio::join!(a.start(), b.start()) });
    (a.unwrap(), b.unwrap())
}

/// A new temporary directory holding the file `name` with `text`, and that file's path.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), name, text);
    (dir, file)
}

/// The token server `tokens` started, a source registry that takes its tokens, and a target
/// without auth.
pub fn token_source_and_target(
    rt: &tokio::runtime::Runtime,
    tokens: TokenServerBuilder,
) -> (TokenServer, Registry, Registry) {
    let tokens = rt.block_on(tokens.start()).unwrap();
    let (src, dst) = start_both(
        rt,
        Registry::builder().token_auth(&tokens),
        Registry::builder(),
    );
    (tokens, src, dst)
}

/// A source and a target registry, both empty and without auth.
pub fn pair(rt: &tokio::runtime::Runtime) -> (Registry, Registry) {
    start_both(rt, Registry::builder(), Registry::builder())
}

/// A source and a target registry, the source seeded with each `(repo, tag, seed)` as by
/// [`seed`].
pub fn seeded_pair(
    rt: &tokio::runtime::Runtime,
    images: &[(&str, &str, u8)],
) -> (Registry, Registry) {
    let (src, dst) = pair(rt);
    for (repo, tag, n) in images {
        seed(&src, repo, tag, *n);
    }
    (src, dst)
}

/// Seeds `repo:tag` in `reg` (a one-layer image) with the test support's own client.
pub fn seed(reg: &Registry, repo: &str, tag: &str, seed: u8) {
    seed_with(Seeder::new(&reg.host()).unwrap(), repo, tag, seed);
}

/// Seeds `repo:tag` (a one-layer image of 50,000 bytes) through `reg`.
pub fn seed_with(reg: Seeder, repo: &str, tag: &str, seed: u8) {
    rt().block_on(push_image(&reg, repo, tag, [u64::from(seed)], 50_000));
}

/// Pushes a linux/amd64 image to `repo:tag` through `reg`, with a layer of `size` bytes
/// made from each of `seeds`.
pub async fn push_image(
    reg: &Seeder,
    repo: &str,
    tag: &str,
    seeds: impl IntoIterator<Item = u64>,
    size: usize,
) {
    let blobs: Vec<Blob> = seeds.into_iter().map(|s| Blob::layer(s, size)).collect();
    let layers: Vec<&Blob> = blobs.iter().collect();
    let m = image(reg, repo, "linux", "amd64", &layers, false)
        .await
        .unwrap();
    push_manifest(reg, repo, Some(tag), &m).await.unwrap();
}

/// A proxy (recording, no faults) in front of each of `a` and `b`.
pub fn proxies(rt: &tokio::runtime::Runtime, a: &Registry, b: &Registry) -> (Proxy, Proxy) {
    let (pa, pb) = rt.block_on(async {
        tokio::join!(
            Proxy::start(a.addr(), ProxyOptions::default()),
            Proxy::start(b.addr(), ProxyOptions::default())
        )
    });
    (pa.unwrap(), pb.unwrap())
}

/// A proxy in front of `reg` whose blob downloads each stall for `duration`: after
/// `after_bytes` bytes of the body, or before forwarding when `None`.
pub fn stalling_blobs(
    rt: &tokio::runtime::Runtime,
    reg: &Registry,
    duration: Duration,
    after_bytes: Option<u64>,
) -> Proxy {
    rt.block_on(Proxy::start(
        reg.addr(),
        ProxyOptions::with_rules([FaultRule::new(FaultAction::Stall {
            duration,
            after_bytes,
        })
        .method("GET")
        .path_contains("/blobs/")
        .every()]),
    ))
    .unwrap()
}
