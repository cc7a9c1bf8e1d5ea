//! Checks on seeded content (the seeding itself is `acr_import_testsupport::seed`).

use acr_import_transfer::Registry;

pub use acr_import_testsupport::seed::{
    Blob, DOCKER_LAYER, OCI_LAYER, artifact, attach, helm_chart, image, index, manifest_of,
    multi_arch, push_blobs, push_manifest,
};

/// Every manifest and blob reachable from `reference` in `repo`, compared byte for byte
/// between two registries, following referrers too when `referrers` is set.
pub async fn assert_same(
    src: &Registry,
    src_repo: &str,
    dst: &Registry,
    dst_repo: &str,
    reference: &str,
    referrers: bool,
) -> usize {
    let mut todo = vec![reference.to_owned()];
    let mut seen = std::collections::HashSet::new();
    let mut blobs = 0;
    while let Some(r) = todo.pop() {
        if !seen.insert(r.clone()) {
            continue;
        }
        let a = src.get_manifest(src_repo, &r).await.unwrap();
        let b = dst
            .get_manifest(dst_repo, &r)
            .await
            .unwrap_or_else(|e| panic!("target lacks {r}: {e}"));
        assert_eq!(a, b, "manifest {r}: bytes, media type and digest");
        let content = a.parse().unwrap();
        for c in &content.manifests {
            todo.push(c.digest.to_string());
        }
        for l in content.config.iter().chain(content.layers.iter()) {
            if l.is_foreign() {
                continue;
            }
            assert_eq!(
                dst.head_blob(dst_repo, &l.digest).await.unwrap(),
                Some(l.size),
                "blob {}",
                l.digest
            );
            blobs += 1;
        }
        if referrers {
            for d in src
                .referrers(src_repo, &a.digest, None)
                .await
                .unwrap()
                .descriptors
            {
                let found = dst.referrers(dst_repo, &a.digest, None).await.unwrap();
                assert!(
                    found.descriptors.iter().any(|x| x.digest == d.digest),
                    "referrer {} of {} is on the target",
                    d.digest,
                    a.digest
                );
                todo.push(d.digest.to_string());
            }
        }
    }
    blobs
}

/// `skopeo inspect --raw` of a reference on a plain-http loopback registry (a test without
/// skopeo fails, saying so in one line).
pub fn skopeo_raw(host: &str, repo: &str, reference: &str) -> Vec<u8> {
    let sep = if reference.contains(':') { "@" } else { ":" };
    acr_import_testsupport::run_tool(
        &acr_import_testsupport::skopeo(),
        [
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/{repo}{sep}{reference}"),
        ],
    )
}
