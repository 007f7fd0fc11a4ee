//! Jobs whose runtime this executor lacks, handed over to the executors that
//! have it — never failed for reaching the wrong executor, never lost.
//!
//! Executors differ in what they run: one with container runtimes (`images`)
//! needs a Docker engine; one with only `wasm` needs none. Every executor reads
//! the jobs topic in the executors' group, and besides it, with a second consumer
//! in a group of its own (`<group_id>-handover`), the hand-over topic of each kind
//! it has: `jobs_containers` when it has container runtimes, `jobs_wasm` when it
//! has wasm. Two groups, because a group's assignor balances the count of
//! partitions per member over all the topics it reads, not per topic: with the
//! hand-over topics in the jobs group, a member could be given only hand-over
//! partitions and no jobs at all. A job's runtime is known only once its checkout is planned; when
//! the plan names a runtime of the other kind, the job — as it came — is
//! published to that kind's topic, and only once the broker has it is its offset
//! committed, as for a result: the executor that runs it publishes the one
//! result. A job read from a hand-over topic is never handed over again (its
//! runtime is unknown everywhere: `rejected`, as on any executor), so none
//! circles; a runtime this executor's own kind lacks (`ruby` on a container
//! executor) is rejected as before.

use gitfaas_common::kafka::Topic;
use gitfaas_sandbox::{ManifestError, WASM_RUNTIME};

/// Where a job refused with `error` goes instead, if anywhere: the topic of the
/// executors of the kind this one is not.
pub fn topic_for(error: &ManifestError, containers: bool, wasm: bool) -> Option<Topic> {
    let ManifestError::UnknownRuntime(runtime, _) = error else { return None };
    match runtime == WASM_RUNTIME {
        true => (!wasm).then_some(Topic::JobsWasm),
        false => (!containers).then_some(Topic::JobsContainers),
    }
}

/// The hand-over topics an executor of this kind reads jobs from (besides the
/// jobs topic): the one of each kind it has.
pub fn sources(containers: bool, wasm: bool) -> Vec<Topic> {
    let kinds = [(containers, Topic::JobsContainers), (wasm, Topic::JobsWasm)];
    kinds.into_iter().filter(|(has, _)| *has).map(|(_, topic)| topic).collect()
}

/// The consumer group of the hand-over topics, beside the executors' `group_id`.
pub fn group(group_id: &str) -> String {
    format!("{group_id}-handover")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(runtime: &str) -> ManifestError {
        ManifestError::UnknownRuntime(runtime.into(), String::new())
    }

    #[test]
    fn a_job_goes_to_the_kind_that_runs_it_and_only_there() {
        // a wasm-only executor hands container jobs over, a container-only one wasm jobs
        assert_eq!(topic_for(&unknown("python"), false, true), Some(Topic::JobsContainers));
        assert_eq!(topic_for(&unknown("wasm"), true, false), Some(Topic::JobsWasm));
        // a runtime of its own kind that it lacks is the job's to fix
        assert_eq!(topic_for(&unknown("ruby"), true, true), None);
        assert_eq!(topic_for(&unknown("wasm"), true, true), None);
        assert_eq!(topic_for(&ManifestError::Missing, false, true), None);
        assert_eq!(sources(true, true), [Topic::JobsContainers, Topic::JobsWasm]);
        assert_eq!(sources(false, true), [Topic::JobsWasm]);
    }
}
