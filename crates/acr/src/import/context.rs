//! The ARM side of an import: the caller's subscriptions, and the target registry.

use crate::arm::ArmClient;
use crate::model::{Registry, Subscription};
use crate::{AcrError, Cloud, RegistryResourceId, RegistryTarget, resource_id::is_guid};

/// What the ARM side knows about the caller: the client, the subscription, and what it can
/// see.
#[derive(Debug)]
pub struct AzureContext {
    /// The ARM client.
    pub arm: ArmClient,
    /// The cloud.
    pub cloud: Cloud,
    /// The current subscription (of the target and of lookups).
    pub subscription: String,
    /// Every subscription the identity can see (empty if listing them failed).
    pub subscriptions: Vec<Subscription>,
}

impl AzureContext {
    /// Resolves `--subscription` (an ID or a display name; `None`: the only visible
    /// subscription) and lists the visible subscriptions.
    pub async fn connect(
        arm: ArmClient,
        cloud: Cloud,
        subscription: Option<&str>,
    ) -> Result<Self, AcrError> {
        let listed = arm.list_subscriptions().await;
        let subscriptions = match (&listed, subscription) {
            (Ok(s), _) => s.clone(),
            (Err(_), Some(s)) if is_guid(s) => Vec::new(),
            (Err(e), _) => {
                return Err(AcrError::NoSubscription {
                    reason: format!("listing subscriptions failed: {e}"),
                });
            }
        };
        let subscription = match subscription {
            Some(s) if is_guid(s) => s.to_owned(),
            Some(s) => subscriptions
                .iter()
                .find(|x| {
                    x.display_name.eq_ignore_ascii_case(s)
                        || x.subscription_id.eq_ignore_ascii_case(s)
                })
                .map(|x| x.subscription_id.clone())
                .ok_or_else(|| AcrError::NoSubscription {
                    reason: format!("no subscription named `{s}` is visible to this identity"),
                })?,
            None => match subscriptions.as_slice() {
                [only] => only.subscription_id.clone(),
                [] => {
                    return Err(AcrError::NoSubscription {
                        reason: "this identity sees no subscription".into(),
                    });
                }
                many => {
                    return Err(AcrError::NoSubscription {
                        reason: format!(
                            "this identity sees {} subscriptions ({})",
                            many.len(),
                            many.iter()
                                .map(|s| s.subscription_id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            },
        };
        Ok(Self {
            arm,
            cloud,
            subscription,
            subscriptions,
        })
    }

    /// The tenant of a subscription, when it is visible.
    pub fn tenant_of(&self, subscription: &str) -> Option<&str> {
        self.subscriptions
            .iter()
            .find(|s| s.subscription_id.eq_ignore_ascii_case(subscription))
            .map(|s| s.tenant_id.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The current subscription first, then every other visible one.
    pub(super) fn search_order(&self) -> Vec<String> {
        let mut order = vec![self.subscription.clone()];
        for s in &self.subscriptions {
            if !s.subscription_id.eq_ignore_ascii_case(&self.subscription) {
                order.push(s.subscription_id.clone());
            }
        }
        order
    }

    /// The target registry: a resource ID, a name (with `resource_group`, a direct GET; without,
    /// a lookup in the current subscription) or a login server.
    pub async fn resolve_target(
        &self,
        name: &str,
        resource_group: Option<&str>,
    ) -> Result<Registry, AcrError> {
        if RegistryResourceId::looks_like(name) {
            let id: RegistryResourceId = name.parse()?;
            return self.arm.get_registry(&id).await;
        }
        let target = RegistryTarget::parse(name, &self.cloud)?;
        if let (Some(rg), Some(n), RegistryTarget::Acr { .. }) =
            (resource_group, target.acr_name(), &target)
        {
            let id = RegistryResourceId::new(&self.subscription, rg, n)?;
            return self.arm.get_registry(&id).await;
        }
        let wanted = match &target {
            RegistryTarget::Acr { name, .. } => name.to_string(),
            RegistryTarget::Host { host, .. } => host.clone(),
        };
        let found = self
            .arm
            .find_registry(&wanted, std::slice::from_ref(&self.subscription))
            .await?;
        match found {
            Some(r) => {
                if let Some(rg) = resource_group
                    && let Ok(id) = r.resource_id()
                    && !id.resource_group().eq_ignore_ascii_case(rg)
                {
                    return Err(AcrError::RegistryNotFound {
                        value: name.to_owned(),
                        scope: format!(
                            "resource group '{rg}' of subscription '{}'",
                            self.subscription
                        ),
                    });
                }
                Ok(r)
            }
            None => Err(AcrError::RegistryNotFound {
                value: name.to_owned(),
                scope: format!("subscription '{}'", self.subscription),
            }),
        }
    }
}
