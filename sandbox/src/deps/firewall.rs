//! Closes the host to a build network but for its proxy. Docker forwards nothing
//! out of an `internal` network, but the host's own side of the bridge (the
//! gateway) still answers: any service listening on all of the host's addresses
//! would be reachable from the build. Two `iptables` rules on the bridge's
//! interface — accept the proxy's port on the gateway, drop everything else —
//! close that, and are removed when the guard is dropped.

use std::net::IpAddr;
use std::process::Command;

/// The `iptables` rules of one build network, removed when dropped.
pub struct HostGuard {
    rules: Vec<Vec<String>>,
}

impl HostGuard {
    /// Installs the rules for traffic arriving on `bridge`: only `gateway:port`
    /// (tcp) is accepted.
    pub fn install(bridge: &str, gateway: IpAddr, port: u16) -> Result<Self, String> {
        let accept =
            ["-i", bridge, "-p", "tcp", "-d", &gateway.to_string(), "--dport", &port.to_string(), "-j", "ACCEPT"];
        let drop = ["-i", bridge, "-j", "DROP"];
        let mut guard = Self { rules: Vec::new() };
        // inserted at the top, the drop first, so the accept ends up before it
        for rule in [&drop[..], &accept[..]] {
            iptables("-I", rule)?;
            guard.rules.push(rule.iter().map(|s| (*s).to_owned()).collect());
        }
        Ok(guard)
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        for rule in self.rules.drain(..).rev() {
            let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
            if let Err(error) = iptables("-D", &rule) {
                tracing::warn!(%error, "build network firewall rule removal failed");
            }
        }
    }
}

fn iptables(action: &str, rule: &[&str]) -> Result<(), String> {
    let out = Command::new("iptables")
        .args(["-w", "5", action, "INPUT"])
        .args(rule)
        .output()
        .map_err(|e| format!("running iptables: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("iptables {action}: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}
