//! The command line, flag for flag with `az acr` where Azure has the flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Import container images into Azure Container Registry or any OCI registry, without Docker.
///
/// Every `az acr import` example works by dropping the leading `az `.
#[derive(Debug, Parser)]
#[command(name = "acr", version, propagate_version = true)]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

pub const EXIT_CODES: &str = "Exit codes: 0 ok, 1 import failed, 2 usage error, 3 preflight says it will fail, \
4 authentication or authorization failed, 130 interrupted.\n`--query` (JMESPath) is not supported: pipe -o json to jq instead.";

/// Flags every command takes, as `az` has them.
#[derive(Debug, Args)]
pub struct Global {
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum)]
    pub output: Option<OutputFormat>,
    /// Only show errors, suppressing warnings and progress.
    #[arg(long, global = true)]
    pub only_show_errors: bool,
    /// More logging (per-blob lines).
    #[arg(long, global = true)]
    pub verbose: bool,
    /// Full debug logging (`RUST_LOG` is honoured too).
    #[arg(long, global = true)]
    pub debug: bool,
    /// Name or ID of the subscription (also `AZURE_SUBSCRIPTION_ID`).
    #[arg(long, global = true, env = "AZURE_SUBSCRIPTION_ID")]
    pub subscription: Option<String>,
    /// A PEM CA bundle to trust in addition to the platform's roots (also `SSL_CERT_FILE`).
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
    /// A registry that may be reached over plain http or with an unverified certificate:
    /// `host` (any port) or `host:port` (that port only). Loopback hosts never need this.
    /// Repeatable.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// The Azure cloud: AzureCloud, AzureChinaCloud, AzureUSGovernment.
    #[arg(long, global = true, default_value = "AzureCloud")]
    pub cloud: String,
    /// The audience of Azure AD tokens traded at ACR login servers: auto (the ACR audience,
    /// the ARM one only where the registry accepts it), acr, or arm (also
    /// `ACR_IMPORT_ACR_AUDIENCE`).
    #[arg(
        long,
        global = true,
        value_name = "AUDIENCE",
        env = "ACR_IMPORT_ACR_AUDIENCE"
    )]
    pub acr_audience: Option<String>,
}

/// A whole number of 1 or more.
fn positive<T: std::str::FromStr + PartialEq + From<u8>>(text: &str) -> Result<T, String> {
    match text.parse::<T>() {
        Ok(n) if n != T::from(0) => Ok(n),
        _ => Err("expected a whole number of 1 or more".to_owned()),
    }
}

/// `az`'s output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// JSON.
    Json,
    /// JSON with colours (no colour here; same as json).
    Jsonc,
    /// A table.
    Table,
    /// Tab-separated values.
    Tsv,
    /// YAML.
    Yaml,
    /// Nothing.
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import an image to a registry from another registry or an OCI layout.
    Import(Box<ImportArgs>),
    /// Manage repositories (show-tags, show-manifests, list).
    #[command(subcommand)]
    Repository(RepositoryCommand),
    /// Manage manifests (list-metadata).
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// How the import runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Mode {
    /// Server-side when the target is an ACR reachable through ARM and the request is one ARM
    /// supports; client-side otherwise. Says which and why.
    #[default]
    Auto,
    /// The ACR `importImage` operation: no bytes through this machine.
    Server,
    /// The streaming copy engine: any registry to any registry.
    Client,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  acr import -n myregistry --source docker.io/library/hello-world:latest -t hello-world:latest\n  \
acr import -n myregistry --source myreg.azurecr.io/app@sha256:… --repository app\n  \
acr import -n 127.0.0.1:5000 --source oci:./layout:v1 -t app:v1\n\nFor larger images consider using --no-wait."
)]
pub struct ImportArgs {
    /// Import status of a `--no-wait` server-side import: `acr import status OPERATION-URL`.
    #[command(subcommand)]
    pub status: Option<ImportSubcommand>,
    /// The target registry: an ACR name, a login server, any host[:port], or oci:PATH.
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// The source image: a full reference (docker.io/library/nginx:1.25, host/repo@sha256:…,
    /// oci:PATH[:TAG]), or repo[:tag|@digest] inside --registry.
    #[arg(long)]
    pub source: Option<String>,
    /// Target repo[:tag]. Repeatable. Default: the source's repository and tag.
    #[arg(long = "image", short = 't')]
    pub images: Vec<String>,
    /// Target repository for an untagged copy (by digest only). Repeatable.
    #[arg(long = "repository")]
    pub repositories: Vec<String>,
    /// The source registry: a login server or host (client-side), or an ACR name or ARM
    /// resource ID (needs Azure Resource Manager).
    #[arg(long, short = 'r')]
    pub registry: Option<String>,
    /// Source registry username (also `ACR_IMPORT_SOURCE_USERNAME`).
    #[arg(long, short = 'u', env = "ACR_IMPORT_SOURCE_USERNAME")]
    pub username: Option<String>,
    /// Source registry password or token (prefer --password-stdin or `ACR_IMPORT_SOURCE_PASSWORD`).
    #[arg(
        long,
        short = 'p',
        env = "ACR_IMPORT_SOURCE_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Read the source password from standard input.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// Overwrite existing target tags. A plain switch; `--force true|false` is accepted too.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub force: Option<bool>,
    /// Return once a server-side import is accepted (prints the operation URL).
    #[arg(long)]
    pub no_wait: bool,
    /// The target's resource group.
    #[arg(long, short = 'g')]
    pub resource_group: Option<String>,
    /// auto, server or client.
    #[arg(long, value_enum, default_value_t)]
    pub mode: Mode,
    /// Copy only this platform of a multi-arch image (os/arch[/variant]). Repeatable.
    #[arg(long = "platform")]
    pub platforms: Vec<String>,
    /// Copy what is attached to the image (signatures, SBOMs, attestations: OCI referrers and
    /// cosign's `sha256-<hex>.sig/.att/.sbom` tags) — the default, server-side too (copied from
    /// this machine after importImage); `--include-referrers false` or `--no-referrers` skips
    /// them.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub include_referrers: Option<bool>,
    /// Leave signatures, SBOMs and attestations behind (referrers and digest tags).
    #[arg(long, conflicts_with = "include_referrers")]
    pub no_referrers: bool,
    /// Copy foreign / non-distributable layers as ordinary blobs.
    #[arg(long)]
    pub include_foreign_layers: bool,
    /// Client-side copy: also hash every blob here while streaming it to the target registry
    /// (the target checks each digest itself; this catches a corrupted source one step
    /// earlier, for about 0.8 CPU-s per GiB).
    #[arg(long)]
    pub verify_blobs: bool,
    /// Show what would be copied, mounted and skipped; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// When a source's rate limit is spent (Docker Hub's pull budget) and resets later than a
    /// retry waits, wait for the reset with a countdown instead of failing at once.
    #[arg(long)]
    pub wait_rate_limit: bool,
    /// Check network rules and say whether the import can work, then exit.
    #[arg(long)]
    pub preflight_only: bool,
    /// Blob transfers in flight at most (1 or more).
    #[arg(long, default_value_t = 8, value_parser = positive::<usize>)]
    pub jobs: usize,
    /// Give up after this many seconds (1 or more).
    #[arg(long, value_parser = positive::<u64>)]
    pub timeout: Option<u64>,
    /// A mirror file: a YAML or JSON list of single images ({source, images, repositories,
    /// registry, credentials-env, platforms, referrers, force}) and repositories ({source,
    /// target, tags: {semver, include, exclude, latest}, …}).
    #[arg(long, conflicts_with_all = ["source", "images", "repositories"])]
    pub from_file: Option<PathBuf>,
    /// With --from-file: run only the I-th of N disjoint parts of the plan (0 <= I < N), by a
    /// stable hash of each target tag, e.g. --shard 0/4 … --shard 3/4 in four processes.
    #[arg(long, value_name = "I/N", requires = "from_file")]
    pub shard: Option<acr_import_acr::mirror::Shard>,
}

#[derive(Debug, Subcommand)]
pub enum ImportSubcommand {
    /// Resume polling a `--no-wait` server-side import.
    Status {
        /// The operation URL `--no-wait` printed.
        operation_url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepositoryCommand {
    /// List the tags of a repository.
    ShowTags(RepoArgs),
    /// List the manifests of a repository (deprecated in az for `manifest list-metadata`).
    ShowManifests(ShowManifestsArgs),
    /// List the repositories of a registry.
    List(RegistryArgs),
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// List the manifests of a repository with their tags and timestamps.
    ListMetadata(ShowManifestsArgs),
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The registry: an ACR name, a login server or any host[:port].
    #[arg(long, short = 'n')]
    pub name: String,
    /// Most results.
    #[arg(long)]
    pub top: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The registry: an ACR name, a login server or any host[:port].
    #[arg(long, short = 'n')]
    pub name: String,
    /// The repository (checked as it is read: lowercase path components).
    #[arg(long)]
    pub repository: acr_import_reference::Repository,
    /// Most results.
    #[arg(long)]
    pub top: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ShowManifestsArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Full objects instead of {digest, tags, timestamp}.
    #[arg(long)]
    pub detail: bool,
    /// time_asc or time_desc.
    #[arg(long)]
    pub orderby: Option<String>,
}
