//! Affinity: the jobs of one function (owner, repository, ref, runtime, limits) go to
//! `affinity_spread` neighbouring partitions of the jobs topic, so they reach the
//! executors that hold its warm sandboxes; different functions spread over all of them.

use std::collections::{BTreeMap, BTreeSet};

use gitfaas_tests::{read_topic_partitions, Stack};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn one_functions_jobs_stay_on_its_spread_and_functions_spread_over_the_topic() {
    // no executor: only where the frontend puts jobs is looked at; a jobs topic of 8
    // partitions (the frontend creates the topics), the spread of 2
    let stack = Stack::start_with(
        false,
        Box::new(|frontend, _| {
            frontend.kafka.partitions = 8;
            frontend.frontend.affinity_spread = 2; // the shipped default (the harness turns it off)
        }),
    );
    let (repo, mut ids) = (format!("{}/one-function", gitfaas_tests::infra::git_url()), BTreeSet::new());
    for n in 0..24 {
        ids.insert(stack.submit_ok(&json!({"repo": repo, "ref": "main", "input": n})).await);
    }
    let mut others = BTreeSet::new();
    for n in 0..24 {
        others.insert(
            stack.submit_ok(&json!({"repo": format!("{}/function-{n}", gitfaas_tests::infra::git_url())})).await,
        );
    }
    let mut partitions_of: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for (partition, (_, payload, _)) in read_topic_partitions(&stack.topics().jobs) {
        let job: Value = serde_json::from_slice(&payload).unwrap();
        let id = job["id"].as_str().unwrap().to_owned();
        let group = if ids.contains(&id) {
            "one"
        } else if others.contains(&id) {
            "others"
        } else {
            continue;
        };
        partitions_of.entry(group).or_default().insert(partition);
    }
    let one = &partitions_of["one"];
    assert!(!one.is_empty() && one.len() <= 2, "one function's 24 jobs on its spread of 2: {one:?}");
    let others = &partitions_of["others"];
    assert!(others.len() >= 5, "24 functions over the 8 partitions: {others:?}");
}
