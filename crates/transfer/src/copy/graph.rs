//! The manifest graph a copy moves: read from the source, leaves first.

use std::collections::{HashMap, HashSet};

use acr_import_reference::Digest;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{Copier, Endpoint, ManifestRole, invalid};
use crate::TransferError;
use crate::manifest::{Descriptor, Manifest, ManifestContent, Platform, is_index};

/// A manifest of the graph being copied.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) manifest: Manifest,
    pub(super) content: ManifestContent,
    pub(super) role: ManifestRole,
    pub(super) platform: Option<String>,
    /// Longest path to a leaf: leaves are 0, pushed first.
    pub(super) height: usize,
}

/// The manifests (in push order) and the blobs (deduplicated) a copy moves.
#[derive(Debug, Default)]
pub(super) struct Graph {
    pub(super) nodes: Vec<Node>,
    pub(super) blobs: Vec<Descriptor>,
    pub(super) foreign: Vec<Descriptor>,
}

impl Copier {
    /// Reads the manifest graph below `top`: children concurrently, level by level; then
    /// orders it leaves first.
    pub(super) async fn walk(
        &self,
        src: &Endpoint,
        top: Manifest,
        role: ManifestRole,
        platform: Option<String>,
    ) -> Result<Graph, TransferError> {
        let mut nodes: HashMap<Digest, Node> = HashMap::new();
        let mut edges: HashMap<Digest, Vec<Digest>> = HashMap::new();
        let top_digest = top.digest.clone();
        let content = top
            .parse()
            .map_err(|reason| invalid(src, &top.digest, reason))?;
        let mut frontier = vec![(top, content, role, platform)];
        let mut depth = 0;
        while !frontier.is_empty() {
            depth += 1;
            if depth > self.options.max_depth + 1 {
                return Err(TransferError::GraphTooDeep {
                    limit: self.options.max_depth,
                });
            }
            let mut wanted: Vec<Descriptor> = Vec::new();
            for (manifest, content, role, platform) in frontier.drain(..) {
                let children: Vec<Digest> =
                    if is_index(&manifest.media_type) || !content.manifests.is_empty() {
                        content.manifests.iter().map(|d| d.digest.clone()).collect()
                    } else {
                        Vec::new()
                    };
                if children.contains(&manifest.digest) {
                    return Err(invalid(
                        src,
                        &manifest.digest,
                        crate::ManifestError::ListsItself,
                    ));
                }
                for d in &content.manifests {
                    if !nodes.contains_key(&d.digest)
                        && !wanted.iter().any(|w| w.digest == d.digest)
                    {
                        wanted.push(d.clone());
                    }
                }
                edges.insert(manifest.digest.clone(), children);
                nodes.insert(
                    manifest.digest.clone(),
                    Node {
                        manifest,
                        content,
                        role,
                        platform,
                        height: 0,
                    },
                );
                if nodes.len() + wanted.len() > self.options.max_manifests {
                    return Err(TransferError::TooManyManifests {
                        limit: self.options.max_manifests,
                    });
                }
            }
            wanted.retain(|d| !nodes.contains_key(&d.digest));
            let fetched: Vec<(Manifest, Descriptor)> =
                stream::iter(wanted.into_iter().map(|d| async move {
                    let m = src.get_by_digest(&d.digest).await?;
                    if m.bytes.len() as u64 != d.size {
                        return Err(TransferError::SizeMismatch {
                            what: format!("manifest {} (the index's descriptor)", d.digest),
                            expected: d.size,
                            actual: m.bytes.len() as u64,
                        });
                    }
                    Ok((m, d))
                }))
                .buffer_unordered(self.options.jobs.max(1))
                .try_collect()
                .await?;
            for (m, d) in fetched {
                let content = m
                    .parse()
                    .map_err(|reason| invalid(src, &m.digest, reason))?;
                let child_role = match role {
                    ManifestRole::Referrer | ManifestRole::DigestTag => role,
                    ManifestRole::Top | ManifestRole::Child => ManifestRole::Child,
                };
                frontier.push((
                    m,
                    content,
                    child_role,
                    d.platform.as_ref().map(Platform::to_string),
                ));
            }
        }
        let (order, heights) = leaves_first(&top_digest, &edges)
            .map_err(|reason| invalid(src, &top_digest, reason))?;
        let mut graph = Graph::default();
        let mut seen_blobs: HashSet<Digest> = HashSet::new();
        for d in order {
            let mut node = nodes.remove(&d).expect("every ordered digest was fetched");
            node.height = heights[&d];
            if !is_index(&node.manifest.media_type) && node.content.manifests.is_empty() {
                for b in node.content.config.iter().chain(node.content.layers.iter()) {
                    if b.is_foreign() && !self.options.foreign_layers {
                        if !graph.foreign.iter().any(|f| f.digest == b.digest) {
                            graph.foreign.push(b.clone());
                        }
                        continue;
                    }
                    if seen_blobs.insert(b.digest.clone()) {
                        graph.blobs.push(b.clone());
                    }
                }
            }
            graph.nodes.push(node);
        }
        Ok(graph)
    }
}

/// Post-order from the top: children before parents, each once, with each manifest's height
/// (longest path to a leaf). A loop is an error.
fn leaves_first(
    top: &Digest,
    edges: &HashMap<Digest, Vec<Digest>>,
) -> Result<(Vec<Digest>, HashMap<Digest, usize>), crate::ManifestError> {
    fn visit(
        d: &Digest,
        edges: &HashMap<Digest, Vec<Digest>>,
        heights: &mut HashMap<Digest, usize>,
        order: &mut Vec<Digest>,
        stack: &mut Vec<Digest>,
    ) -> Result<usize, crate::ManifestError> {
        if let Some(h) = heights.get(d) {
            return Ok(*h);
        }
        if stack.contains(d) {
            return Err(crate::ManifestError::Loop { through: d.clone() });
        }
        stack.push(d.clone());
        let mut h = 0;
        for c in edges.get(d).map(Vec::as_slice).unwrap_or_default() {
            h = h.max(visit(c, edges, heights, order, stack)? + 1);
        }
        stack.pop();
        heights.insert(d.clone(), h);
        order.push(d.clone());
        Ok(h)
    }
    let mut order = Vec::new();
    let mut heights = HashMap::new();
    visit(top, edges, &mut heights, &mut order, &mut Vec::new())?;
    Ok((order, heights))
}
