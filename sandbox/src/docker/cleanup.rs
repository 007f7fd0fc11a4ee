//! Ending containers: the removal of one (bounded, finished in the background
//! when the engine is slow), a guard that removes it when dropped, and the
//! removal of what a crashed executor left behind.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;

use super::{Sandbox, SandboxError, DOCKER_CALL_LIMIT, EXECUTOR_LABEL};

/// Removes the container when dropped, unless disarmed after an orderly removal.
pub(super) struct RemoveOnDrop {
    pub(super) docker: Docker,
    pub(super) id: String,
    pub(super) armed: bool,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { remove(&docker, &id).await });
            }
        }
    }
}

pub(super) async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    let removal = docker.remove_container(id, Some(options));
    match tokio::time::timeout(DOCKER_CALL_LIMIT, removal).await {
        Ok(Ok(())) => {}
        // gone already, or being removed: a warm container the engine removes itself
        Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. })) => {}
        Ok(Err(error)) => tracing::warn!(container = %id, %error, "container removal failed"),
        Err(_) => {
            // finish in the background: the job's result must not wait on a wedged engine
            tracing::warn!(container = %id, "container removal is slow; continuing in the background");
            let (docker, id) = (docker.clone(), id.to_owned());
            tokio::spawn(async move {
                let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                if let Err(error) = docker.remove_container(&id, Some(options)).await {
                    tracing::warn!(container = %id, %error, "container removal failed");
                }
            });
        }
    }
}

impl Sandbox {
    /// Removes containers left by a crashed executor with the same id, or every
    /// gitfaas container when `executor_id` is `None`. Returns how many were removed.
    pub async fn remove_orphans(&self, executor_id: Option<&str>) -> Result<usize, SandboxError> {
        let label = match executor_id {
            Some(id) => format!("{EXECUTOR_LABEL}={id}"),
            None => EXECUTOR_LABEL.to_owned(),
        };
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([("label", vec![label.as_str()])]))
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        for container in &containers {
            if let Some(id) = &container.id {
                remove(&self.docker, id).await;
            }
        }
        self.remove_orphan_networks(&label).await?;
        Ok(containers.len())
    }
}
