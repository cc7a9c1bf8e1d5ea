//! Generated image graphs: copy, then compare.

use crate::Names;
use acr_import_testsupport::Registry as TestRegistry;
use acr_import_transfer::{Copier, CopyOptions, Endpoint, Source, Target};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::fixtures::*;
use crate::transport;

/// One generated image: platforms with layers (some shared), plus artifacts attached.
#[derive(Debug, Clone)]
struct Spec {
    platforms: Vec<Vec<(u64, usize)>>,
    shared: Option<(u64, usize)>,
    artifacts: usize,
    docker: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::collection::vec(
            proptest::collection::vec((0u64..1000, 0usize..20_000), 1..4),
            1..4,
        ),
        proptest::option::of((1000u64..2000, 1usize..30_000)),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(platforms, shared, artifacts, docker)| Spec {
            platforms,
            shared,
            artifacts,
            docker,
        })
}

#[test]
fn generated_graphs_copy_exactly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = rt.block_on(async { tokio::join!(TestRegistry::start(), TestRegistry::start()) });
    let (a, b) = (a.unwrap(), b.unwrap());
    let t = transport();
    let (src, dst) = (t.registry(&a.url()).unwrap(), t.registry(&b.url()).unwrap());
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&spec(), |spec| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let repo = format!("gen/case{n}");
            rt.block_on(async {
                let archs = ["amd64", "arm64", "ppc64le"];
                let shared = spec.shared.map(|(s, n)| Blob::layer(s, n));
                let mut children = Vec::new();
                for (i, layers) in spec.platforms.iter().enumerate() {
                    let own: Vec<Blob> = layers.iter().map(|(s, n)| Blob::layer(*s, *n)).collect();
                    let mut refs: Vec<&Blob> = own.iter().collect();
                    if let Some(s) = &shared {
                        refs.push(s);
                    }
                    let m = image(&src, &repo, "linux", archs[i], &refs, spec.docker)
                        .await
                        .unwrap();
                    children.push((m, archs[i]));
                }
                let platforms: Vec<String> = children
                    .iter()
                    .map(|(_, arch)| format!("linux/{arch}"))
                    .collect();
                let entries: Vec<_> = children
                    .iter()
                    .zip(&platforms)
                    .map(|((m, _), p)| (m, Some(p.as_str()), None))
                    .collect();
                let top = index(&src, &repo, Some("v1"), &entries, spec.docker)
                    .await
                    .unwrap();
                let mut attached = Vec::new();
                for k in 0..spec.artifacts {
                    attached.push(
                        artifact(
                            &src,
                            &repo,
                            "application/vnd.example.sig",
                            5000 + k as u64,
                            Some(&top),
                        )
                        .await
                        .unwrap(),
                    );
                }
                if !attached.is_empty() {
                    let list: Vec<_> = attached
                        .iter()
                        .map(|m| (m, "application/vnd.example.sig"))
                        .collect();
                    attach(&src, &repo, &top, &list).await.unwrap();
                }
                let report = Copier::new(CopyOptions::default())
                    .copy(
                        &Source {
                            endpoint: Endpoint::registry(src.clone(), repo.repo()),
                            reference: "v1".parse().unwrap(),
                        },
                        &[Target {
                            endpoint: Endpoint::registry(dst.clone(), repo.repo()),
                            tag: Some("v1".parse().unwrap()),
                        }],
                    )
                    .await
                    .unwrap();
                assert_eq!(report.digest, top.digest.to_string());
                assert_same(&src, &repo, &dst, &repo, "v1", true).await;
            });
            Ok(())
        })
        .unwrap();
}
