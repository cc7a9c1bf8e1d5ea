//! A real CNCF distribution registry (`docker-registry serve`) on loopback.

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::token::TokenServer;
use crate::tools::find_tool;
use crate::util::random_hex;

/// Environment variable naming the registry binary (default: `docker-registry` on `PATH`).
pub const REGISTRY_BIN_ENV: &str = "ACR_IMPORT_REGISTRY_BIN";

/// How many fresh ports to try when the chosen one turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registry binary (`$ACR_IMPORT_REGISTRY_BIN`, or `docker-registry` on `PATH`), or a
/// clear error naming the Debian package.
pub fn registry_binary() -> anyhow::Result<PathBuf> {
    let named = std::env::var_os(REGISTRY_BIN_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    named
        .or_else(|| find_tool("docker-registry"))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "docker-registry not found: install it with `apt-get install -y docker-registry` \
             (or set {REGISTRY_BIN_ENV})"
            )
        })
}

/// One bcrypt htpasswd line (`user:$2b$...`), as distribution's htpasswd auth reads it. Made
/// here (cost 5: the registry checks it on every request) so no `htpasswd` tool is needed.
pub fn htpasswd_line(user: &str, password: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !user.contains(':') && !user.contains('\n'),
        "an htpasswd user name cannot contain `:` or a newline: {user:?}"
    );
    let hash = bcrypt::hash(password, 5).context("bcrypt hashing failed")?;
    Ok(format!("{user}:{hash}"))
}

/// The `auth.token` settings of a token-auth registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAuthSettings {
    /// Token endpoint URL the registry names in its challenge.
    pub realm: String,
    /// Service name (must equal the tokens' `aud`).
    pub service: String,
    /// Issuer (must equal the tokens' `iss`).
    pub issuer: String,
    /// PEM certificate(s) the registry trusts for token signatures.
    pub root_cert_pem: String,
}

impl From<&TokenServer> for TokenAuthSettings {
    fn from(ts: &TokenServer) -> Self {
        Self {
            realm: ts.realm(),
            service: ts.service().to_string(),
            issuer: ts.issuer().issuer().to_string(),
            root_cert_pem: ts.issuer().root_cert_pem().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Htpasswd {
        realm: String,
        users: Vec<(String, String)>,
    },
    Token(TokenAuthSettings),
}

/// Configures and starts a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryBuilder {
    auth: Auth,
    access_log: bool,
    relative_urls: bool,
    read_only: bool,
    log_level: String,
    startup_timeout: Duration,
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        Self {
            auth: Auth::None,
            access_log: false,
            relative_urls: false,
            read_only: false,
            log_level: "warn".into(),
            startup_timeout: Duration::from_secs(15),
        }
    }
}

impl RegistryBuilder {
    /// Basic auth from an htpasswd file with these users (bcrypt lines made here, see
    /// [`htpasswd_line`]).
    pub fn htpasswd(mut self, users: &[(&str, &str)]) -> Self {
        self.auth = Auth::Htpasswd {
            realm: "acr-import-test".into(),
            users: users
                .iter()
                .map(|(u, p)| ((*u).to_string(), (*p).to_string()))
                .collect(),
        };
        self
    }

    /// Token auth against `settings` — usually `&token_server` (anything
    /// convertible into [`TokenAuthSettings`]).
    pub fn token_auth(mut self, settings: impl Into<TokenAuthSettings>) -> Self {
        self.auth = Auth::Token(settings.into());
        self
    }

    /// Enables the registry's access log (off by default).
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// `http.relativeurls`: `Location` headers become relative paths.
    pub fn relative_urls(mut self, on: bool) -> Self {
        self.relative_urls = on;
        self
    }

    /// `storage.maintenance.readonly`: every write is refused.
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// `log.level` (default `warn`).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.into();
        self
    }

    /// How long to wait for `GET /v2/` to answer (default 15 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Writes the config, spawns `docker-registry serve` and waits until it
    /// answers `GET /v2/` with 200 or 401.
    pub async fn start(self) -> anyhow::Result<Registry> {
        let bin = registry_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("acr-import-registry-")
            .tempdir()
            .context("creating the registry temp dir")?;
        let storage_dir = dir.path().join("storage");
        std::fs::create_dir_all(&storage_dir)?;
        let log_path = dir.path().join("registry.log");
        let config_path = dir.path().join("config.yml");

        let auth_yaml = match &self.auth {
            Auth::None => String::new(),
            Auth::Htpasswd { realm, users } => {
                let mut file = String::new();
                for (u, p) in users {
                    file.push_str(&htpasswd_line(u, p)?);
                    file.push('\n');
                }
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, file)?;
                format!(
                    "auth:\n  htpasswd:\n    realm: {}\n    path: {}\n",
                    yaml_str(realm),
                    yaml_str(&path.to_string_lossy())
                )
            }
            Auth::Token(t) => {
                let path = dir.path().join("token-root.pem");
                std::fs::write(&path, &t.root_cert_pem)?;
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    yaml_str(&t.realm),
                    yaml_str(&t.service),
                    yaml_str(&t.issuer),
                    yaml_str(&path.to_string_lossy())
                )
            }
        };

        let mut registry = Registry {
            child: Mutex::new(None),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage_dir,
            log_path,
            config_path,
            bin,
            startup_timeout: self.startup_timeout,
            secret: random_hex(16),
            settings: self,
            auth_yaml,
            dir,
        };
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            registry.addr = free_port()?;
            match registry.spawn_and_wait().await {
                Ok(()) => return Ok(registry),
                Err(StartError::PortInUse) => {
                    last_err = Some(anyhow::anyhow!("port {} was taken", registry.addr));
                }
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow::anyhow!("no port"))
            .context("could not find a free port for the registry"))
    }
}

fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = StdTcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

enum StartError {
    PortInUse,
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

/// A running `docker-registry` with filesystem storage in a temp dir.
///
/// Dropping it kills the process (SIGKILL, then waits for it) and removes the
/// temp dir with the storage, the config and the log — also when the test
/// panics. Methods take `&self`, so it can be shared (e.g. in an `Arc`) with
/// a task that restarts it while a client is busy.
#[derive(Debug)]
pub struct Registry {
    child: Mutex<Option<Child>>,
    addr: SocketAddr,
    storage_dir: PathBuf,
    log_path: PathBuf,
    config_path: PathBuf,
    bin: PathBuf,
    startup_timeout: Duration,
    secret: String,
    settings: RegistryBuilder,
    auth_yaml: String,
    // Declared last: removed after the child is gone (Drop kills it first anyway).
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill_child();
    }
}

impl Registry {
    /// A builder: no auth, warn-level log, absolute `Location` URLs.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// Starts a registry without auth (`Registry::builder().start()`).
    pub async fn start() -> anyhow::Result<Self> {
        Self::builder().start().await
    }

    /// `127.0.0.1:PORT` — what goes in an image reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The filesystem storage root (`storage.filesystem.rootdirectory`).
    pub fn storage_dir(&self) -> &Path {
        &self.storage_dir
    }

    /// The temp dir holding config, storage, log and auth files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's stdout+stderr log (appended across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The generated `config.yml`.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The log's contents so far (empty if unreadable) — print it when a
    /// test fails.
    pub fn log_contents(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        match lock(&self.child).as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process (SIGKILL) and waits for it. Storage is kept; the
    /// port stops answering. No-op when already stopped.
    pub fn stop(&self) {
        self.kill_child();
    }

    /// Starts the process again after [`Self::stop`], on the same port with
    /// the same storage and `http.secret` (so upload sessions survive).
    /// Retries while the port is briefly unavailable. No-op when running.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let deadline = Instant::now() + self.startup_timeout;
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(()),
                Err(StartError::PortInUse) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(StartError::PortInUse) => {
                    anyhow::bail!(
                        "port {} stayed in use; cannot restart the registry",
                        self.addr
                    )
                }
                Err(StartError::Other(e)) => return Err(e),
            }
        }
    }

    /// [`Self::stop`] then [`Self::start_again`].
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.stop();
        self.start_again().await
    }

    fn kill_child(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config_yaml(&self) -> String {
        let s = &self.settings;
        format!(
            "version: 0.1
log:
  level: {level}
  formatter: text
  accesslog:
    disabled: {no_access_log}
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: {read_only}
http:
  addr: {addr}
  secret: {secret}
  relativeurls: {relative}
health:
  storagedriver:
    enabled: false
validation:
  manifests:
    urls:
      allow:
        - '^https?://'
{auth}",
            level = s.log_level,
            no_access_log = !s.access_log,
            storage = yaml_str(&self.storage_dir.to_string_lossy()),
            read_only = s.read_only,
            addr = self.addr,
            secret = yaml_str(&self.secret),
            relative = s.relative_urls,
            auth = self.auth_yaml,
        )
    }

    async fn spawn_and_wait(&self) -> Result<(), StartError> {
        std::fs::write(&self.config_path, self.config_yaml())
            .with_context(|| format!("writing {}", self.config_path.display()))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let log_len_before = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err: File = log.try_clone().context("cloning the log file handle")?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // Environment overrides (REGISTRY_HTTP_ADDR, ...) would silently change the config.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {} serve", self.bin.display()))?;
        *lock(&self.child) = Some(child);

        let deadline = Instant::now() + self.startup_timeout;
        loop {
            let exited = lock(&self.child)
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                lock(&self.child).take();
                let log = self.log_contents();
                let new_part = log.get(log_len_before as usize..).unwrap_or(&log);
                if new_part.contains("address already in use") {
                    return Err(StartError::PortInUse);
                }
                return Err(StartError::Other(anyhow::anyhow!(
                    "docker-registry exited with {status} during startup; log {}:\n{new_part}",
                    self.log_path.display()
                )));
            }
            if let Some(status) = probe_v2(self.addr).await
                && (status == 200 || status == 401)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill_child();
                return Err(StartError::Other(anyhow::anyhow!(
                    "docker-registry did not answer GET /v2/ on {} within {:?}; log {}:\n{}",
                    self.addr,
                    self.startup_timeout,
                    self.log_path.display(),
                    self.log_contents()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `GET /v2/` over a fresh connection; the status code, or `None` if the
/// port does not answer HTTP.
async fn probe_v2(addr: SocketAddr) -> Option<u16> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        line.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
}
