//! The networks containers join: a bridge of a job's own (when the operator
//! enables job networks), and the internal network of a dependency build, which
//! has no route out — only the one place the build's package-index proxy
//! listens: the bridge's gateway (the host's side of it) when the executor runs
//! on the host, or the executor's own container, joined to the network, when it
//! runs in one (then the bridge has no host address at all).

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

    /// An `internal` bridge network (no route to anything beyond the bridge)
    /// labelled `labels`, on the host interface `bridge`, and the address the
    /// build's proxy listens on there: with `executor` None, the gateway (the
    /// host's side of the bridge; no traffic between its containers); with the
    /// executor's container, that container's address once it joined the network,
    /// which is made without a host address (`inhibit_ipv4`), so that the build
    /// reaches the executor and nothing of the host.
    pub(crate) async fn create_internal_network(
        &self,
        name: &str,
        bridge: &str,
        labels: &HashMap<String, String>,
        executor: Option<&str>,
    ) -> Result<IpAddr, SandboxError> {
        let mut options = HashMap::from([("com.docker.network.bridge.name".to_owned(), bridge.to_owned())]);
        let icc = executor.is_some().to_string();
        options.insert("com.docker.network.bridge.enable_icc".to_owned(), icc);
        if executor.is_some() {
            options.insert("com.docker.network.bridge.inhibit_ipv4".to_owned(), "true".to_owned());
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            internal: Some(true),
            labels: Some(labels.clone()),
            options: Some(options),
            ..Default::default()
        };
        self.docker.create_network(request).await?;
        let address = match executor {
            None => self.gateway(name).await,
            Some(container) => self.join(name, container).await,
        };
        match address {
            Ok(address) => Ok(address),
            Err(error) => {
                self.remove_network(name).await;
                Err(error)
            }
        }
    }

    async fn gateway(&self, name: &str) -> Result<IpAddr, SandboxError> {
        let inspect = self.docker.inspect_network(name, None).await;
        let gateway = inspect.ok().and_then(|n| n.ipam).and_then(|ipam| ipam.config).and_then(|configs| {
            configs.into_iter().find_map(|c| c.gateway.and_then(|g| g.parse::<IpAddr>().ok()).filter(IpAddr::is_ipv4))
        });
        gateway.ok_or_else(|| SandboxError::Network(format!("network `{name}` has no IPv4 gateway")))
    }

    /// Connects `container` (the executor's own) to network `name`; its address there.
    async fn join(&self, name: &str, container: &str) -> Result<IpAddr, SandboxError> {
        let connect = bollard::models::NetworkConnectRequest { container: container.to_owned(), endpoint_config: None };
        self.docker.connect_network(name, connect).await?;
        let inspect = self.docker.inspect_container(container, None).await?;
        let address = inspect
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|mut networks| networks.remove(name))
            .and_then(|endpoint| endpoint.ip_address)
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        match address {
            Some(address) => Ok(address),
            None => {
                self.leave(name, container).await;
                Err(SandboxError::Network(format!("container `{container}` has no IPv4 address on `{name}`")))
            }
        }
    }

    /// Takes `container` off network `name`, logging (not failing) when it cannot.
    pub(crate) async fn leave(&self, name: &str, container: &str) {
        let disconnect =
            bollard::models::NetworkDisconnectRequest { container: container.to_owned(), force: Some(true) };
        if let Err(error) = self.docker.disconnect_network(name, disconnect).await {
            tracing::warn!(network = %name, %container, %error, "leaving the build network failed");
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
