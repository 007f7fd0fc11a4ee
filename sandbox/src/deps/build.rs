//! One dependency build: a container from the run's own image, with the run's
//! hardening (the sandbox's one container config), on an `internal` Docker network
//! of its own — no route beyond the bridge — whose only reachable service is a
//! [`ConnectProxy`] that forwards to the configured package index and refuses
//! every other target. An executor on the host binds it on the bridge's gateway
//! address, and [`HostGuard`] closes the rest of the host's side of the bridge;
//! an executor in a container (`build_from_container`) joins the network and
//! binds it on its own address there, the bridge made with no host address. The installer comes
//! from the executor's tools directory, mounted read-only: pip's wheel (run as
//! `python3 pip.whl/pip`) and npm's package (`node npm/bin/npm-cli.js`), since the
//! runtime images hold a bare interpreter. The installer's output is the
//! container's stderr: it goes to the job's live log as it comes (a local run
//! prints it), and its last [`MAX_KEPT_LOG_BYTES`] are the build's log. Its `/tmp`, where pip downloads and
//! unpacks what it installs, is sized to the layer bound (`build_scratch_mb`), not
//! to a function's, and its memory limit grows by as much, since a tmpfs is memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use url::Url;

use super::cache::{tree_bytes, Staging};
use super::detect::Declared;
use super::firewall::HostGuard;
use super::{DependencySettings, DepsError, BUILD_LOG, MAX_KEPT_LOG_BYTES};
use crate::docker::{Sandbox, SandboxSpec};
use crate::egress::{ConnectProxy, Gate};
use crate::logs::LogSink;

const LAYER_MOUNT: &str = "/layer";
const TOOLS_MOUNT: &str = "/gitfaas-tools";

/// What a build needs beyond its declaration.
pub struct BuildPlan<'a> {
    pub name: String,
    pub image: &'a str,
    pub labels: HashMap<String, String>,
    pub settings: &'a DependencySettings,
    /// The index (pip) or registry (npm) of this runtime.
    pub index: &'a Url,
    /// Where the installer's output goes as it comes (the job's live log).
    pub log: LogSink,
}

/// Runs the build into `staging.layer`; the staging comes back on success.
pub async fn build(
    sandbox: &Sandbox,
    plan: BuildPlan<'_>,
    declared: &Declared,
    staging: Staging,
    cancel: &CancellationToken,
) -> Result<Staging, DepsError> {
    let bridge = format!("gfb{}", &uuid::Uuid::now_v7().simple().to_string()[20..]); // random digits
    let executor = plan.settings.executor_container();
    let network = sandbox.create_internal_network(&plan.name, &bridge, &plan.labels, executor.as_deref());
    let address = network.await.map_err(infrastructure)?;
    let built = build_on(sandbox, &plan, declared, &staging, (&bridge, address), cancel).await;
    if let Some(container) = &executor {
        sandbox.leave(&plan.name, container).await;
    }
    sandbox.remove_network(&plan.name).await;
    built.map(|()| staging)
}

async fn build_on(
    sandbox: &Sandbox,
    plan: &BuildPlan<'_>,
    declared: &Declared,
    staging: &Staging,
    (bridge, listen): (&str, std::net::IpAddr),
    cancel: &CancellationToken,
) -> Result<(), DepsError> {
    let index = plan.index;
    let target = (index.host_str().unwrap_or_default().to_owned(), index.port_or_known_default().unwrap_or(80));
    let proxy = ConnectProxy::start_on(SocketAddr::new(listen, 0), Gate::Only(vec![target]))
        .map_err(|e| DepsError::Infrastructure(format!("dependency proxy could not start: {e}")))?;
    // an executor in a container listens on its own address: the bridge has none of the host's
    let _guard = match plan.settings.guard_host && plan.settings.build_from_container.is_none() {
        true => Some(
            HostGuard::install(bridge, listen, proxy.addr().port())
                .map_err(|e| DepsError::Infrastructure(format!("closing the host to the build network: {e}")))?,
        ),
        false => None,
    };
    let proxy_url = format!("http://{}", proxy.addr());
    let command = installer(declared, staging, index, &proxy_url).map_err(DepsError::Infrastructure)?;
    let s = plan.settings;
    let redirect = "exec \"$@\" 1>&2".to_owned();
    let spec = SandboxSpec {
        name: plan.name.clone(),
        image: plan.image.to_owned(),
        command: ["sh".into(), "-c".into(), redirect, "sh".into()].into_iter().chain(command).collect(),
        labels: plan.labels.clone(),
        // the installer's tools read-only in the code's place; the layer and log writable
        code_dir: s.tools_dir.clone(),
        code_mount: TOOLS_MOUNT.to_owned(),
        working_dir: LAYER_MOUNT.to_owned(),
        input_dir: None,
        output_dir: None,
        job_network: false,
        network: Some(plan.name.clone()),
        mounts: vec![(staging.layer.clone(), LAYER_MOUNT.to_owned(), false)],
        env: vec!["npm_config_cache=/tmp/npm-cache".into(), "npm_config_update_notifier=false".into()],
        stdin: Default::default(),
        memory_mb: s.build_memory_mb.saturating_add(s.scratch_mb()),
        cpu_millis: s.build_cpu_millis,
        pids: s.build_pids,
        timeout: Duration::from_secs(s.build_timeout_secs),
        log: plan.log.clone(),
    };
    let sandbox = sandbox.for_build(s.scratch_mb(), MAX_KEPT_LOG_BYTES);
    let outcome = sandbox.run(spec, cancel).await.map_err(infrastructure)?;
    let log = outcome.stderr_tail;
    // kept in the layer cache beside the layer, and in its logs/ when the build fails
    std::fs::write(staging.log_dir.join(BUILD_LOG), &log).map_err(DepsError::Io)?;
    if let Some(unreachable) = proxy.unreachable() {
        return Err(DepsError::IndexUnreachable(unreachable));
    }
    let why = if outcome.cancelled {
        return Err(DepsError::Cancelled);
    } else if outcome.timed_out {
        format!("the build passed its {} s limit", s.build_timeout_secs)
    } else if outcome.oom_killed {
        let (memory, scratch) = (s.build_memory_mb, s.scratch_mb());
        format!(
            "the build passed its {} MiB memory limit ({memory} MiB and its {scratch} MiB /tmp)",
            memory.saturating_add(scratch)
        )
    } else if outcome.exit_code != Some(0) {
        let code = outcome.exit_code.map_or("unknown".into(), |c| c.to_string());
        match installer_error(&log) {
            Some(error) => format!("the installer exited with code {code}: {error}"),
            None => format!("the installer exited with code {code}"),
        }
    } else {
        let bytes = tree_bytes(&staging.layer);
        if bytes <= s.max_layer_mb << 20 {
            return Ok(());
        }
        format!("the layer holds {bytes} bytes, more than its {} MiB limit", s.max_layer_mb)
    };
    let mut log = log;
    let refused = proxy.refused_targets();
    if !refused.is_empty() {
        log.push_str(&format!(
            "\n[gitfaas: the build's proxy refused {} (only the package index is reachable)]\n",
            refused.join(", ")
        ));
    }
    Err(DepsError::Failed { why, log })
}

/// The installer's own last word on why it failed: pip's last `ERROR:` line, or
/// npm's first `npm error` line past its code, at most 500 characters.
fn installer_error(log: &str) -> Option<String> {
    let pip = log.lines().rev().find_map(|line| line.strip_prefix("ERROR: "));
    let npm = || {
        let errors = log.lines().filter_map(|line| line.strip_prefix("npm error ").or(line.strip_prefix("npm ERR! ")));
        errors.map(str::trim).find(|line| !line.is_empty() && !line.starts_with("code ") && !line.starts_with("errno "))
    };
    let error = pip.or_else(npm)?.trim();
    (!error.is_empty()).then(|| error.chars().take(500).collect())
}

/// The installer's command line; the declaration's files are written into the
/// layer directory first (pip reads the requirements, npm installs beside them).
fn installer(declared: &Declared, staging: &Staging, index: &Url, proxy: &str) -> Result<Vec<String>, String> {
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(staging.layer.join(name), bytes).map_err(|e| format!("writing the build's {name}: {e}"))
    };
    let mut command: Vec<String> = match declared {
        Declared::Python { requirements } => {
            write("requirements.txt", requirements)?;
            let pip = format!("{TOOLS_MOUNT}/pip.whl/pip");
            let mut command = vec!["python3".into(), pip, "install".into()];
            command.extend(
                ["--no-cache-dir", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
                    .map(String::from),
            );
            command.extend(["--target".into(), format!("{LAYER_MOUNT}/site")]);
            command.extend(["--index-url".into(), index.to_string(), "--proxy".into(), proxy.to_owned()]);
            if index.scheme() == "http" {
                command.extend(["--trusted-host".into(), index.host_str().unwrap_or_default().to_owned()]);
            }
            command.extend(["-r".into(), format!("{LAYER_MOUNT}/requirements.txt")]);
            command
        }
        Declared::Node { package_json, lock } => {
            write("package.json", package_json)?;
            write("package-lock.json", lock)?;
            let npm = format!("{TOOLS_MOUNT}/npm/bin/npm-cli.js");
            let mut command = vec!["node".into(), npm, "ci".into(), "--prefix".into(), LAYER_MOUNT.into()];
            command.extend(["--no-audit", "--no-fund", "--loglevel", "http"].map(String::from));
            command.extend([
                format!("--registry={index}"),
                format!("--proxy={proxy}"),
                format!("--https-proxy={proxy}"),
            ]);
            command
        }
    };
    command.shrink_to_fit();
    Ok(command)
}

fn infrastructure(error: crate::docker::SandboxError) -> DepsError {
    match error {
        crate::docker::SandboxError::MissingImage(image) => DepsError::MissingImage(image),
        other => DepsError::Infrastructure(format!("dependency build: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::installer_error;

    #[test]
    fn the_installers_own_error_line_is_found_in_its_log() {
        let pip = "Looking in indexes: http://x/simple/\n\
                   ERROR: Could not find a version that satisfies the requirement a==9 (from versions: none)\n\
                   ERROR: No matching distribution found for a==9\n\n";
        assert_eq!(installer_error(pip).as_deref(), Some("No matching distribution found for a==9"));
        let npm = "npm http fetch GET 404 http://x/a 5ms\nnpm error code E404\n\
                   npm error 404 Not Found - GET http://x/a - Not found\nnpm error 404\n";
        assert_eq!(installer_error(npm).as_deref(), Some("404 Not Found - GET http://x/a - Not found"));
        assert_eq!(installer_error("Killed\n"), None);
    }
}
