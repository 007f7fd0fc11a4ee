//! The networks containers join: a bridge of a job's own (when the operator
//! enables job networks), and the internal network of a dependency build, which
//! has no route out — only its gateway, the host's side of the bridge, where the
//! build's package-index proxy listens.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Sandbox, SandboxError, SandboxSpec};

impl Sandbox {
    /// A bridge network for this one container, labelled like it; no other
    /// container joins it.
    pub(super) async fn create_network(&self, spec: &SandboxSpec) -> Result<(), SandboxError> {
        let request = bollard::models::NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some("bridge".into()),
            labels: Some(spec.labels.clone()),
            options: Some(HashMap::from([("com.docker.network.bridge.enable_icc".to_owned(), "false".to_owned())])),
            ..Default::default()
        };
        self.docker.create_network(request).await?;
        Ok(())
    }

    /// An `internal` bridge network (no route to anything beyond the bridge, no
    /// traffic between its containers) labelled `labels`, on the host interface
    /// `bridge`; returns its gateway address on the host.
    pub(crate) async fn create_internal_network(
        &self,
        name: &str,
        bridge: &str,
        labels: &HashMap<String, String>,
    ) -> Result<IpAddr, SandboxError> {
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            internal: Some(true),
            labels: Some(labels.clone()),
            options: Some(HashMap::from([
                ("com.docker.network.bridge.enable_icc".to_owned(), "false".to_owned()),
                ("com.docker.network.bridge.name".to_owned(), bridge.to_owned()),
            ])),
            ..Default::default()
        };
        self.docker.create_network(request).await?;
        let inspect = self.docker.inspect_network(name, None).await;
        let gateway = inspect.ok().and_then(|n| n.ipam).and_then(|ipam| ipam.config).and_then(|configs| {
            configs.into_iter().find_map(|c| c.gateway.and_then(|g| g.parse::<IpAddr>().ok()).filter(IpAddr::is_ipv4))
        });
        match gateway {
            Some(gateway) => Ok(gateway),
            None => {
                self.remove_network(name).await;
                Err(SandboxError::Network(format!("network `{name}` has no IPv4 gateway")))
            }
        }
    }

    /// Removes a network, logging (not failing) when it cannot.
    pub(crate) async fn remove_network(&self, name: &str) {
        if let Err(error) = self.docker.remove_network(name).await {
            tracing::warn!(network = %name, %error, "network removal failed");
        }
    }

    /// Networks left by a crashed executor go with its containers.
    pub(super) async fn remove_orphan_networks(&self, label: &str) -> Result<(), SandboxError> {
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
            .filters(&HashMap::from([("label", vec![label])]))
            .build();
        for network in self.docker.list_networks(Some(options)).await? {
            if let Some(id) = network.id {
                let _ = self.docker.remove_network(&id).await;
            }
        }
        Ok(())
    }
}
