//! Resolving `--source` and `--registry` into a [`ResolvedSource`]: an Azure registry by
//! resource ID, an Azure registry found by name or login server, any other registry by host,
//! or an OCI layout.

use acr_import_auth::Secret;
use acr_import_reference::{AnyReference, Digest, ReferenceError, Repository, Tag};

use super::AzureContext;
use super::source::{ResolvedSource, SourceArgs, SourceResolution, is_acr_candidate};
use crate::arm::normalize_login_server;
use crate::model::Registry;
use crate::preflight::Unreadable;
use crate::{AcrError, Cloud, RegistryResourceId};

/// Resolves the source (see the crate docs for the rules). `azure` is `None` when ARM cannot
/// be reached; then only registries named by host work.
pub async fn resolve_source(
    azure: Option<&AzureContext>,
    cloud: &Cloud,
    args: &SourceArgs,
) -> Result<SourceResolution, AcrError> {
    if args.username.is_some() && args.password.is_none() {
        return Err(AcrError::InvalidRequest {
            message: "Authentication failed. Please provide password.".into(),
            hint: "add --password-stdin and pipe the password, or set ACR_IMPORT_SOURCE_PASSWORD"
                .into(),
        });
    }
    let mut resolver = Resolver {
        azure,
        cloud,
        args,
        credentials: args.password.clone().map(|p| (args.username.clone(), p)),
        target_tenant: azure.and_then(|a| a.tenant_of(&a.subscription).map(str::to_owned)),
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    let source = match args.registry.as_deref() {
        Some(registry) if RegistryResourceId::looks_like(registry) => {
            resolver.by_resource_id(registry).await?
        }
        Some(registry) => resolver.by_registry(registry).await?,
        None => resolver.by_reference().await?,
    };
    Ok(SourceResolution {
        source,
        warnings: resolver.warnings,
        notes: resolver.notes,
    })
}

/// One resolution: its inputs, and what the user is told along the way.
struct Resolver<'a> {
    azure: Option<&'a AzureContext>,
    cloud: &'a Cloud,
    args: &'a SourceArgs,
    /// `(username, password)` of `--username`/`--password`.
    credentials: Option<(Option<String>, Secret)>,
    /// The tenant of the target's subscription, when it is visible.
    target_tenant: Option<String>,
    warnings: Vec<String>,
    notes: Vec<String>,
}

impl Resolver<'_> {
    /// Whether the registry `id` is in another tenant than the target.
    fn cross_tenant(&self, id: &RegistryResourceId) -> bool {
        match (
            self.azure.and_then(|a| a.tenant_of(id.subscription())),
            &self.target_tenant,
        ) {
            (Some(t), Some(home)) => !t.eq_ignore_ascii_case(home),
            _ => false,
        }
    }

    /// An Azure source found through ARM: imported by resource ID with Azure AD.
    fn azure_found(&self, registry: Registry, image: String) -> Result<ResolvedSource, AcrError> {
        let id = registry.resource_id()?;
        Ok(ResolvedSource::Azure {
            cross_tenant: self.cross_tenant(&id),
            id,
            registry: Some(Box::new(registry)),
            unreadable: None,
            image,
        })
    }

    /// The registries to look `name` up in: the current subscription, then every other one.
    async fn find(&self, name: &str) -> Result<Option<Registry>, AcrError> {
        match self.azure {
            Some(a) => a.arm.find_registry(name, &a.search_order()).await,
            None => Ok(None),
        }
    }

    /// `--registry <resource ID>`: the registry is read (or why it cannot be is kept, for the
    /// preflight); credentials are refused, since the service uses Azure AD.
    async fn by_resource_id(&self, registry: &str) -> Result<ResolvedSource, AcrError> {
        let id: RegistryResourceId = registry.parse()?;
        if self.credentials.is_some() {
            return Err(AcrError::CredentialsWithResourceId { id: id.to_string() });
        }
        let image = parse_image(&self.args.source)?;
        let Some(a) = self.azure else {
            return Err(AcrError::ArmUnavailable {
                reason: format!("the source {id} is named by resource ID"),
            });
        };
        let (registry, unreadable) = match a.arm.get_registry(&id).await {
            Ok(r) => (Some(Box::new(r)), None),
            Err(e) => match e.unreadable() {
                Some(why) => (None, Some(why)),
                None => return Err(e),
            },
        };
        let cross_tenant = self.cross_tenant(&id) || unreadable == Some(Unreadable::OtherTenant);
        Ok(ResolvedSource::Azure {
            id,
            registry,
            unreadable,
            image,
            cross_tenant,
        })
    }

    /// `--registry <name or host>`: an Azure registry if one is found by that name or login
    /// server, else the host as an external registry (a bare name must be found).
    async fn by_registry(&mut self, r: &str) -> Result<ResolvedSource, AcrError> {
        let looks_like_host =
            r.contains('.') || r.contains(':') || r.eq_ignore_ascii_case("localhost");
        let found = self.find(r).await?;
        let login_server = match &found {
            Some(reg) => reg.login_server().to_owned(),
            None => normalize_login_server(r),
        };
        let mut source_text = self.args.source.as_str();
        if let Some(rest) = strip_prefix_ci(source_text, &format!("{login_server}/")) {
            self.warnings.push(format!(
                "The login server name of \"{login_server}\" in the \"--source\" argument will be ignored as \"--registry\" already supplies the same information"
            ));
            source_text = rest;
        }
        let image = parse_image(source_text)?;
        match found {
            Some(reg) => {
                if self.credentials.is_some() {
                    return Err(AcrError::CredentialsWithResourceId { id: reg.id.clone() });
                }
                let source = self.azure_found(reg, image)?;
                if let ResolvedSource::Azure { id, .. } = &source {
                    self.notes.push(format!(
                        "--registry {r} is {id} (Azure AD authorizes the service to read it)"
                    ));
                }
                Ok(source)
            }
            None if looks_like_host => {
                let unknown_acr = self.azure.is_some() && is_acr_candidate(r, self.cloud);
                if unknown_acr {
                    self.warnings.push(format!(
                        "{login_server} is not a registry in any subscription you can read: it is imported as an external registry, {}",
                        if self.credentials.is_some() { "with the credentials given" } else { "anonymously" }
                    ));
                }
                Ok(ResolvedSource::External {
                    host: login_server,
                    image,
                    credentials: self.credentials.clone(),
                    unknown_acr,
                    registry: None,
                })
            }
            None => Err(match self.azure {
                None => AcrError::ArmUnavailable {
                    reason: format!("--registry `{r}` names an Azure registry by name"),
                },
                Some(a) => AcrError::RegistryNotFound {
                    value: r.to_owned(),
                    scope: format!(
                        "any of the {} subscription(s) you can read",
                        a.search_order().len()
                    ),
                },
            }),
        }
    }

    /// `--source` alone: an OCI layout, or a full reference whose host is an Azure registry
    /// (imported with Azure AD unless credentials are given) or any other registry.
    async fn by_reference(&mut self) -> Result<ResolvedSource, AcrError> {
        let source = &self.args.source;
        let parsed: AnyReference = source.parse().map_err(|e| {
            // Only where the reference says nothing about where the image is.
            let hint = says_nothing(&e).then(|| "give a full reference (registry/repository:tag) or name the source registry with --registry".to_owned());
            AcrError::InvalidReference {
                flag: "--source",
                value: source.clone(),
                source: Box::new(e),
                hint,
            }
        })?;
        let reference = match parsed {
            AnyReference::OciLayout(l) => {
                return Ok(ResolvedSource::Layout {
                    reference: l.to_string(),
                });
            }
            AnyReference::Registry(r) => r,
        };
        let n = reference.normalization();
        let normalized = n.reference;
        if n.added_library || n.added_domain {
            self.notes.push(format!(
                "`{source}` means {normalized}{}",
                if n.added_library {
                    " (the library/ prefix of Docker Hub official images was added; az acr import would not add it and fail)"
                } else {
                    ""
                }
            ));
        }
        let host = normalized
            .domain()
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default();
        let image = image_text(
            normalized.repository(),
            normalized.digest(),
            normalized.tag(),
        );
        let candidate = self.azure.is_some() && is_acr_candidate(&host, self.cloud);
        let found = match candidate {
            true => self.find(&normalize_login_server(&host)).await?,
            false => None,
        };
        self.external_or_azure(host, image, found, candidate)
    }

    /// The source named by `host`: the Azure registry `found` behind it (with Azure AD, or by
    /// login server with the credentials given), else an external registry.
    fn external_or_azure(
        &mut self,
        host: String,
        image: String,
        found: Option<Registry>,
        candidate: bool,
    ) -> Result<ResolvedSource, AcrError> {
        let with_credentials = self.credentials.is_some();
        match found {
            Some(reg) if !with_credentials => {
                let source = self.azure_found(reg, image)?;
                if let ResolvedSource::Azure { id, .. } = &source {
                    self.notes.push(format!(
                        "{host} is the Azure registry {id}: importing with Azure AD (resourceId), not anonymously"
                    ));
                }
                return Ok(source);
            }
            Some(ref reg) => self.notes.push(format!(
                "{host} is the Azure registry {}, named by login server with the credentials given (registryUri); drop the credentials to use Azure AD",
                reg.id
            )),
            None if candidate => self.warnings.push(if with_credentials {
                format!(
                    "{host} is not a registry in any subscription you can read: the import uses the credentials given (registryUri)"
                )
            } else {
                format!(
                    "{host} is not a registry in any subscription you can read: the import will be anonymous (pass --username/--password, or --registry <resource ID> if you can get read access)"
                )
            }),
            None => {}
        }
        Ok(ResolvedSource::External {
            host,
            image,
            credentials: self.credentials.clone(),
            unknown_acr: candidate && found.is_none(),
            registry: found.map(Box::new),
        })
    }
}

/// Whether a parse error says the reference names no repository at all.
fn says_nothing(e: &ReferenceError) -> bool {
    matches!(
        e,
        ReferenceError::Empty | ReferenceError::MissingRepository { .. }
    )
}

/// `repo@digest`, `repo:tag` or `repo:latest`: the `sourceImage` of an import.
fn image_text(repository: &Repository, digest: Option<&Digest>, tag: Option<&Tag>) -> String {
    match (digest, tag) {
        (Some(d), _) => format!("{repository}@{d}"),
        (None, Some(t)) => format!("{repository}:{t}"),
        (None, None) => format!("{repository}:latest"),
    }
}

/// `--source` inside `--registry`: `repo[:tag|@digest]`.
fn parse_image(image: &str) -> Result<String, AcrError> {
    let r: acr_import_reference::RepositoryReference = image.parse().map_err(|e| {
        // Only where --source names no repository at all.
        let hint = says_nothing(&e)
            .then(|| "inside --registry, --source is repo[:tag|@digest]".to_owned());
        AcrError::InvalidReference {
            flag: "--source",
            value: image.to_owned(),
            source: Box::new(e),
            hint,
        }
    })?;
    Ok(image_text(r.repository(), r.digest(), r.tag()))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() > prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn resolve(args: SourceArgs) -> Result<SourceResolution, AcrError> {
        resolve_source(None, &Cloud::azure_cloud(), &args).await
    }

    fn args(source: &str, registry: Option<&str>) -> SourceArgs {
        SourceArgs {
            source: source.into(),
            registry: registry.map(Into::into),
            ..Default::default()
        }
    }

    const ID: &str = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/source1";

    #[tokio::test]
    async fn external_sources_without_arm() {
        for (source, registry, host, image) in [
            ("nats:2.1.8", None, "docker.io", "library/nats:2.1.8"),
            ("localhost:5000/x", None, "localhost:5000", "x:latest"),
            ("[::1]:5000/x:1", None, "[::1]:5000", "x:1"),
            // --registry as a host, with the login server repeated in --source.
            (
                "MyReg.azurecr.io/app:v1",
                Some("myreg.azurecr.io"),
                "myreg.azurecr.io",
                "app:v1",
            ),
        ] {
            let r = resolve(args(source, registry)).await.unwrap();
            match &r.source {
                ResolvedSource::External {
                    host: h, image: i, ..
                } => assert_eq!((h.as_str(), i.as_str()), (host, image), "{source}"),
                other => panic!("{source}: {other:?}"),
            }
            if source == "nats:2.1.8" {
                assert!(r.notes.iter().any(|n| n.contains("library/")));
            }
            if registry.is_some() {
                assert!(r.warnings[0].contains("will be ignored"));
            }
        }
        let r = resolve(args("oci:./layout:v1", None)).await.unwrap();
        assert!(matches!(r.source, ResolvedSource::Layout { .. }));
    }

    #[tokio::test]
    async fn refusals_without_arm() {
        let with_credentials = |registry: Option<&str>, password: Option<&str>| SourceArgs {
            username: Some("u".into()),
            password: password.map(Secret::new),
            ..args("app:v1", registry)
        };
        let web_app = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.Web/sites/app";
        type Expected = fn(&AcrError) -> bool;
        let cases: [(SourceArgs, Expected); 5] = [
            // A resource ID needs ARM; credentials with one are refused.
            (args("app:v1", Some(ID)), |e| {
                matches!(e, AcrError::ArmUnavailable { .. })
            }),
            (with_credentials(Some(ID), Some("p")), |e| {
                matches!(e, AcrError::CredentialsWithResourceId { .. })
            }),
            (args("app:v1", Some(web_app)), |e| {
                e.to_string().contains("expected")
            }),
            (with_credentials(None, None), |e| {
                e.to_string().contains("Please provide password")
            }),
            // A registry by name needs ARM.
            (args("app:v1", Some("myregistry")), |e| {
                matches!(e, AcrError::ArmUnavailable { .. })
            }),
        ];
        for (args, expected) in cases {
            let e = resolve(args.clone()).await.unwrap_err();
            assert!(expected(&e), "{args:?}: {e}");
        }
    }
}
