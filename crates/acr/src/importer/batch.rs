//! Batches: many entries, each resolved as a single import would be, copied through one
//! transport and one copy engine.

use super::azure;
use super::{
    BatchReport, BatchRequest, EntryOutcome, ImportEntry, ImportError, ImportEvent, ImportObserver,
    Importer, client, client_plan, is_azure_name, names_azure_registry, warn_no_wait,
};
use crate::import::{AzureContext, EngineMode, ResolvedSource, SourceArgs, resolve_source};
use crate::{AcrError, Registry, RegistryResourceId};

use super::plan::{ClientPlan, TargetSpec};

impl Importer {
    /// Runs every entry of `batch` client-side through one transport and one copy engine,
    /// `batch.concurrency` at a time. Each entry is resolved as [`Importer::import`] would
    /// resolve it (a `registry` by name or resource ID goes through Azure Resource Manager).
    /// An error here means nothing ran: a bad target, an entry that is not a valid request,
    /// credentials that would mix, or the timeout. Each entry's own failure (a source not
    /// found, a registry that refused) is in its outcome.
    pub async fn import_batch(
        &self,
        batch: &BatchRequest,
        observer: &dyn ImportObserver,
    ) -> Result<BatchReport, ImportError> {
        self.check_target(&batch.target)?;
        if batch.options.engine == EngineMode::Server {
            return Err(ImportError::usage(
                "--from-file imports run client-side: --mode server and --preflight-only take a single --source",
            ));
        }
        let cloud = &self.config.cloud;
        let target_azure = !batch.target.starts_with("oci:") && is_azure_name(&batch.target, cloud);
        let registry_azure = batch.entries.iter().any(|e| {
            e.registry
                .as_deref()
                .is_some_and(|r| names_azure_registry(r, cloud))
        });
        let (azure, no_arm_reason) = if target_azure || registry_azure {
            self.connect_azure(&batch.target).await
        } else {
            (None, "no entry names an Azure registry".to_owned())
        };
        let (target, target_registry) = self
            .batch_target(&batch.target, azure.as_ref(), &no_arm_reason)
            .await?;
        warn_no_wait(&batch.options, observer);
        let mut plans = Vec::new();
        let mut unplanned = Vec::new();
        // The ACR login servers ARM named, for the registries' credential chain.
        let mut acr_hosts = Vec::new();
        for (index, entry) in batch.entries.iter().enumerate() {
            match self
                .plan_entry(entry, azure.as_ref(), &target, observer)
                .await
            {
                Ok((plan, source)) => {
                    for host in azure::acr_hosts(target_registry.as_ref(), &source) {
                        if !acr_hosts.contains(&host) {
                            acr_hosts.push(host);
                        }
                    }
                    plans.push((index, plan));
                }
                Err(e) if e.is_invalid_request() => return Err(e),
                Err(e) => unplanned.push(EntryOutcome {
                    index,
                    label: entry.label().to_owned(),
                    result: Err(e),
                }),
            }
        }
        let run = client::Run {
            config: &self.config,
            options: &batch.options,
            concurrency: batch.concurrency.max(1),
            observer,
            acr_hosts,
        };
        let mut entries: Vec<EntryOutcome> = run
            .execute(plans)
            .await?
            .into_iter()
            .map(|(index, label, result)| EntryOutcome {
                index,
                label,
                result,
            })
            .collect();
        for outcome in unplanned {
            observer.event(&ImportEvent::EntryFinished {
                index: outcome.index,
                label: outcome.label.clone(),
                ok: false,
            });
            entries.push(outcome);
        }
        entries.sort_by_key(|e| e.index);
        Ok(BatchReport { entries })
    }

    /// The batch's target (and the registry, when ARM found it): through ARM when it is an
    /// Azure registry ARM can see.
    async fn batch_target(
        &self,
        name: &str,
        azure: Option<&AzureContext>,
        no_arm_reason: &str,
    ) -> Result<(TargetSpec, Option<Registry>), ImportError> {
        if let Some(ctx) = azure
            && is_azure_name(name, &self.config.cloud)
        {
            match ctx.resolve_target(name, None).await {
                Ok(r) => {
                    return Ok((TargetSpec::Registry(r.login_server().to_owned()), Some(r)));
                }
                Err(e) => tracing::info!("looking up {name} failed: {e}"),
            }
        }
        if RegistryResourceId::looks_like(name) {
            return Err(AcrError::ArmUnavailable {
                reason: format!("the target is named by resource ID ({no_arm_reason})"),
            }
            .into());
        }
        Ok((TargetSpec::parse(name, &self.config.cloud)?, None))
    }

    /// One entry, resolved as a single import would be.
    async fn plan_entry(
        &self,
        entry: &ImportEntry,
        azure: Option<&AzureContext>,
        target: &TargetSpec,
        observer: &dyn ImportObserver,
    ) -> Result<(ClientPlan, ResolvedSource), ImportError> {
        let args = SourceArgs {
            source: entry.source.clone(),
            registry: entry.registry.clone(),
            username: entry.credentials.as_ref().and_then(|c| c.username.clone()),
            password: entry.credentials.as_ref().map(|c| c.password.clone()),
        };
        let resolution = resolve_source(azure, &self.config.cloud, &args).await?;
        for w in resolution.warnings {
            observer.event(&ImportEvent::Warning(w));
        }
        for n in resolution.notes {
            observer.event(&ImportEvent::Note(n));
        }
        let plan = client_plan(entry, &resolution.source, target, observer)?;
        Ok((plan, resolution.source))
    }
}
