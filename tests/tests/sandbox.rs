//! Sandbox properties, read from Docker's own description of a job's container
//! while it runs; orphan removal at executor start; the gVisor runtime.

use std::collections::HashMap;

use gitfaas_tests::sandbox::{finished, running_container, start, Options};
use gitfaas_tests::{executor_settings, git_repo, Stack};
use serde_json::json;

const SLEEPER: &str = "import time\ndef main(d, c):\n    time.sleep(d)\n    return 'rested'\n";

async fn inspect_sleeping_job(
    stack: &Stack,
    resources: serde_json::Value,
) -> (String, bollard::models::ContainerInspectResponse) {
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", SLEEPER)]);
    let id = stack.submit_ok(&json!({"repo": repo, "input": 4, "resources": resources})).await;
    let container = running_container(&id).await;
    (id, container)
}

#[tokio::test(flavor = "multi_thread")]
async fn running_container_is_locked_down_as_configured() {
    // cold: the container is removed after the run (warm ones: `hostile_warm`)
    let stack = &Stack::start_with(true, Box::new(|_, executor| executor.executor.warm.enabled = false));
    let (id, container) = inspect_sleeping_job(stack, json!({"memory_mb": 96, "cpu_millis": 500, "pids": 40})).await;
    let host = container.host_config.clone().unwrap();
    let config = container.config.clone().unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    let networks = container.network_settings.as_ref().and_then(|n| n.networks.clone()).unwrap_or_default();
    assert!(networks.keys().all(|k| k == "none"), "networks: {networks:?}");
    assert!(networks.values().all(|n| n.ip_address.as_deref().unwrap_or("").is_empty()), "{networks:?}");
    assert_eq!(host.readonly_rootfs, Some(true));
    let tmpfs = host.tmpfs.clone().unwrap();
    assert!(tmpfs["/tmp"].contains("size=64m") && tmpfs["/tmp"].contains("noexec"), "{tmpfs:?}");
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert!(host.cap_add.unwrap_or_default().is_empty());
    gitfaas_tests::sandbox::assert_profile_denies_reaching_other_processes(&host.security_opt.unwrap());
    assert_eq!(host.privileged, Some(false));
    assert_eq!(config.user.as_deref(), Some("65534:65534"));
    assert_eq!(host.memory, Some(96 << 20));
    assert_eq!(host.memory_swap, host.memory, "no swap beyond the memory limit");
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.pids_limit, Some(40));
    let nofile = host.ulimits.clone().unwrap().into_iter().find(|u| u.name.as_deref() == Some("nofile")).unwrap();
    assert_eq!((nofile.soft, nofile.hard), (Some(256), Some(256)));
    assert_eq!(host.runtime.as_deref(), Some("runc"));

    // only the checkout and input (read-only) and the output dir, never the Docker socket
    let mounts = container.mounts.clone().unwrap();
    let by_target: HashMap<_, _> =
        mounts.iter().map(|m| (m.destination.clone().unwrap(), (m.rw.unwrap(), m.source.clone().unwrap()))).collect();
    assert_eq!(by_target.len(), 3, "{mounts:?}");
    assert!(!by_target["/code"].0 && !by_target["/input"].0 && by_target["/output"].0, "{by_target:?}");
    assert!(mounts.iter().all(|m| !m.source.as_deref().unwrap_or("").contains("docker")), "{mounts:?}");
    let labels = config.labels.unwrap();
    assert_eq!(labels["io.gitfaas.job"], id);
    assert_eq!(labels["io.gitfaas.executor"], stack.executor_id);

    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(gitfaas_tests::containers_of_job(&id).await, 0, "removed after the run");
}

#[tokio::test(flavor = "multi_thread")]
async fn executor_removes_containers_its_crashed_predecessor_left() {
    use bollard::query_parameters::{CreateContainerOptionsBuilder, ListContainersOptionsBuilder};
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let prefix = format!("{}.", gitfaas_tests::unique("orphan"));
    let state = tempfile::tempdir().unwrap();
    let settings = executor_settings(&prefix, state.path());
    let executor_id = settings.executor_id();
    let labels = HashMap::from([
        ("io.gitfaas.executor".to_owned(), executor_id.clone()),
        ("io.gitfaas.job".to_owned(), "left-behind".to_owned()),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some("gitfaas/command:busybox".into()),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        labels: Some(labels),
        host_config: Some(bollard::models::HostConfig { network_mode: Some("none".into()), ..Default::default() }),
        ..Default::default()
    };
    let name = gitfaas_tests::unique("gitfaas-orphan");
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = docker.create_container(Some(options), body).await.unwrap().id;
    docker.start_container(&id, None).await.unwrap();

    let label = format!("io.gitfaas.executor={executor_id}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let list = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    assert_eq!(docker.list_containers(Some(list.clone())).await.unwrap().len(), 1);
    let _worker = gitfaas_executor::build(&settings).await.expect("executor starts");
    // the new executor may already have started ready sandboxes under its label:
    // it is the orphan, by its id, that must be gone
    let left = docker.list_containers(Some(list)).await.unwrap();
    assert!(left.iter().all(|c| c.id.as_deref() != Some(id.as_str())), "orphan removed at start: {left:?}");
    let inspect = docker.inspect_container(&id, None).await;
    assert!(
        matches!(inspect, Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })),
        "orphan removed at start: {inspect:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gvisor_runs_jobs_under_runsc_with_the_same_lockdown() {
    let stack = start(Options::runtime("runsc"));
    let stack = &stack;
    let (id, container) = inspect_sleeping_job(stack, json!({"memory_mb": 128})).await;
    let host = container.host_config.unwrap();
    assert_eq!(host.runtime.as_deref(), Some("runsc"));
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.memory, Some(128 << 20));
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], "rested");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_repositories_are_400_at_submit_and_rejected_by_the_executor() {
    let stack = Stack::shared();
    for repo in ["file:///etc", "ext::sh -c id", "-uhttps://h/r", "https://u:p@example.org/r"] {
        let response = stack.submit(&json!({"repo": repo, "runtime": "python"})).await;
        assert_eq!(response.status(), 400, "{repo}");
    }
    let response = stack.submit(&json!({"repo": "https://example.org/r", "ref": "--upload-pack=x"})).await;
    assert_eq!(response.status(), 400);

    // a job that reaches the topic without the frontend is refused by the executor
    let owner = gitfaas_common::Owner { subject: "alice".into(), name: None };
    let spec: gitfaas_common::JobSpec = serde_json::from_value(json!({
        "repo": "https://example.org/r", "ref": "main", "runtime": "python", "timeout_secs": 5,
        "resources": {"memory_mb": 64, "cpu_millis": 500, "pids": 16}
    }))
    .unwrap();
    let mut ids = Vec::new();
    for repo in ["file:///etc", "ext::sh -c id", "https://u:p@example.org/r"] {
        // (no JobSpec holds such a URL: the message is written as JSON)
        let job = gitfaas_common::Job::new(owner.clone(), spec.clone());
        ids.push(job.id.to_string());
        let mut message = serde_json::to_value(&job).unwrap();
        message["spec"]["repo"] = json!(repo);
        let payload = serde_json::to_vec(&message).unwrap();
        gitfaas_tests::publish_raw(&gitfaas_tests::producer(), &stack.topics().jobs, &job.id.to_string(), &payload)
            .await;
    }
    for id in ids {
        let result = finished(stack, &id).await;
        assert_eq!(result["status"], "rejected", "{result}");
        // refused as the executor reads the message (the same check as the frontend's)
        assert!(result["reason"].as_str().unwrap().contains("repository URL is refused"), "{result}");
    }
}
