//! `acr repository …` and `acr manifest list-metadata`, through the OCI API.

use acr_import_acr::RegistryTarget;
use serde::Serialize;

use crate::{Failure, render};
use acr_import_cli::args::{
    Global, ManifestCommand, OutputFormat, RepoArgs, RepositoryCommand, ShowManifestsArgs,
};

fn registry(g: &Global, name: &str) -> Result<acr_import_transfer::Registry, Failure> {
    let cloud = crate::settings::cloud(g)?;
    let target = RegistryTarget::parse(name, &cloud).map_err(|e| Failure::usage(e.to_string()))?;
    let transport = crate::settings::transport(g, acr_import_auth::StaticCredentials::new())?;
    Ok(transport.registry(target.host())?)
}

pub async fn run_repository(cmd: RepositoryCommand, g: &Global) -> Result<(), Failure> {
    match cmd {
        RepositoryCommand::ShowTags(a) => {
            let mut tags = registry(g, &a.name)?
                .list_tags(&a.repository, Some(100))
                .await?;
            tags.sort();
            tags.truncate(a.top.unwrap_or(usize::MAX));
            render::print(&tags, g.output.unwrap_or(OutputFormat::Json))
        }
        RepositoryCommand::List(a) => {
            let mut repos = registry(g, &a.name)?.catalog(Some(100)).await?;
            repos.sort();
            repos.truncate(a.top.unwrap_or(usize::MAX));
            render::print(&repos, g.output.unwrap_or(OutputFormat::Json))
        }
        RepositoryCommand::ShowManifests(a) => show_manifests(a, g).await,
    }
}

pub async fn run_manifest(cmd: ManifestCommand, g: &Global) -> Result<(), Failure> {
    match cmd {
        ManifestCommand::ListMetadata(a) => show_manifests(a, g).await,
    }
}

/// `az`'s shape: `{digest, tags, timestamp}`; `--detail` adds what the OCI API can tell.
#[derive(Serialize)]
struct ManifestRow {
    digest: String,
    tags: Vec<String>,
    timestamp: String,
    #[serde(rename = "mediaType", skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(rename = "imageSize", skip_serializing_if = "Option::is_none")]
    image_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<String>,
}

/// The manifests of a repository through the OCI API: one row per digest, its tags, and
/// with `detail` what its manifest and config say.
async fn oci_rows(
    reg: &acr_import_transfer::Registry,
    repository: &acr_import_reference::Repository,
    detail: bool,
) -> Result<Vec<ManifestRow>, Failure> {
    let tags = reg.list_tags(repository, Some(100)).await?;
    let mut rows: Vec<ManifestRow> = Vec::new();
    for tag in tags {
        let m = reg.get_manifest(repository, &typed_tag(&tag)?).await?;
        let digest = m.digest.to_string();
        if let Some(row) = rows.iter_mut().find(|r| r.digest == digest) {
            row.tags.push(tag);
            continue;
        }
        let mut row = ManifestRow {
            digest,
            tags: vec![tag],
            timestamp: String::new(),
            media_type: None,
            image_size: None,
            architecture: None,
            os: None,
        };
        if detail {
            row.media_type = Some(m.media_type.clone());
            if let Ok(content) = m.parse() {
                let size: u64 = content
                    .config
                    .iter()
                    .chain(content.layers.iter())
                    .map(|d| d.size)
                    .sum::<u64>()
                    + m.bytes.len() as u64;
                row.image_size = Some(size);
                if let Some(cfg) = content.config.filter(|c| c.size < 1 << 20)
                    && let Ok(blob) = reg
                        .get_blob(repository, &cfg.digest, Some(cfg.size), true)
                        .await
                    && let Ok(bytes) = blob.collect(1 << 20).await
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
                {
                    row.architecture = v
                        .get("architecture")
                        .and_then(|x| x.as_str())
                        .map(str::to_owned);
                    row.os = v.get("os").and_then(|x| x.as_str()).map(str::to_owned);
                }
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A tag the registry listed, as the transport reads it by.
fn typed_tag(tag: &str) -> Result<acr_import_reference::TagOrDigest, Failure> {
    let tag: acr_import_reference::Tag = tag.parse().map_err(|e| {
        Failure::new(
            crate::exit::FAILED,
            format!("the registry listed `{tag}`, which is not a tag: {e}"),
        )
    })?;
    Ok(tag.into())
}

async fn show_manifests(a: ShowManifestsArgs, g: &Global) -> Result<(), Failure> {
    let RepoArgs {
        name,
        repository,
        top,
    } = a.repo;
    let reg = registry(g, &name)?;
    let order = match a.orderby.as_deref() {
        None => None,
        Some(o) => Some(
            acr_import_acr::metadata::ManifestOrder::parse(o).ok_or_else(|| {
                Failure::usage(format!("--orderby `{o}`: use time_asc or time_desc"))
            })?,
        ),
    };
    // An ACR answers through its metadata API (tags, timestamps, sizes); any other registry
    // through the OCI API below.
    if let Some(entries) =
        acr_import_acr::metadata::list_manifests(&reg, &repository, order, top).await?
    {
        let format = g.output.unwrap_or(OutputFormat::Json);
        if a.detail {
            return render::print(&entries, format);
        }
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(acr_import_acr::metadata::summary)
            .collect();
        return render::print(&rows, format);
    }
    let mut rows = oci_rows(&reg, &repository, a.detail).await?;
    for r in &mut rows {
        r.tags.sort();
    }
    if a.orderby.as_deref() == Some("time_desc") {
        rows.reverse();
    }
    rows.truncate(top.unwrap_or(usize::MAX));
    render::print(&rows, g.output.unwrap_or(OutputFormat::Json))
}
