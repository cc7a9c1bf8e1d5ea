//! Seeding with test support's own client.

use acr_import_testsupport::{Registry, basic_auth, seed, sha256_digest};
use bytes::Bytes;

use super::*;

#[tokio::test]
async fn seeding_pushes_exact_bytes_with_its_own_client() -> anyhow::Result<()> {
    assert!(
        seed::Seeder::new("example.com:443").is_err(),
        "loopback only"
    );
    let reg = Registry::builder()
        .htpasswd(&[("alice", "s3cret")])
        .start()
        .await?;
    let anonymous = seed::Seeder::new(&reg.host())?;
    let refused = seed::multi_arch(&anonymous, "lib/app", "1.0", 3).await;
    assert!(refused.is_err(), "a 401 fails the seeding");
    let seeder = anonymous.basic("alice", "s3cret");
    let top = seed::multi_arch(&seeder, "lib/app", "1.0", 3).await?;
    let sig_type = "application/vnd.example.sig";
    let sig = seed::artifact(&seeder, "lib/app", sig_type, 9, Some(&top)).await?;
    let fallback = seed::attach(&seeder, "lib/app", &top, &[(&sig, sig_type)]).await?;

    let auth = basic_auth("alice", "s3cret");
    let base = format!("{}/v2/lib/app", reg.url());
    let get = |path: String, accept: &'static str| {
        let auth = auth.clone();
        async move {
            let headers = [("Authorization", auth.as_str()), ("Accept", accept)];
            send("GET", &path, &headers, Bytes::new()).await
        }
    };
    for (reference, m) in [("1.0".to_owned(), &top), (top.referrers_tag(), &fallback)] {
        let r = get(format!("{base}/manifests/{reference}"), seed::OCI_INDEX).await?;
        assert_eq!(r.status, 200, "{reference}");
        assert_eq!(r.body, m.bytes, "{reference}: the bytes seeded");
        assert_eq!(r.header("docker-content-digest"), Some(m.digest.as_str()));
    }
    let index: serde_json::Value = serde_json::from_slice(&top.bytes)?;
    let children = index["manifests"].as_array().expect("manifests");
    assert_eq!(children.len(), 4, "three platforms and an attestation");
    for child in children {
        let digest = child["digest"].as_str().expect("digest");
        let r = get(format!("{base}/manifests/{digest}"), OCI_MANIFEST).await?;
        assert_eq!(r.status, 200, "{digest}");
        assert_eq!(sha256_digest(&r.body), digest);
        let image: serde_json::Value = serde_json::from_slice(&r.body)?;
        let layers = image["layers"].as_array().expect("layers");
        for blob in std::iter::once(&image["config"]).chain(layers) {
            let digest = blob["digest"].as_str().expect("digest");
            let r = get(format!("{base}/blobs/{digest}"), "*/*").await?;
            assert_eq!(sha256_digest(&r.body), digest, "blob {digest}");
            assert_eq!(Some(r.body.len() as u64), blob["size"].as_u64());
        }
    }
    Ok(())
}
