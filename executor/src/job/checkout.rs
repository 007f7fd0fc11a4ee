//! A job's checkout into its workspace: the commit's tree, then its submodules
//! as the job asks (`submodules`: left empty with a note each, or fetched); and
//! a deployment's check that its function can be planned at its commit.

use std::path::PathBuf;

use gitfaas_common::policy::RepoUrl;
use gitfaas_common::schema::{Attempt, Submodules};
use gitfaas_common::{Job, JobResult};
use gitfaas_sandbox::{plan, Chosen, Workspace};
use serde_json::Value;

use super::{Ending, JobRunner, CODE_MOUNT};
use crate::git::GitError;
use crate::submodules::{notes_of_empty, Fetch};

impl JobRunner {
    /// Checks out `sha` of `repo` into `dir` with its submodules as `submodules`
    /// says; the result's notes.
    pub(super) async fn checkout_task(
        &self,
        at: &Attempt,
        (repo, sha): (RepoUrl, String),
        dir: PathBuf,
        token: Option<zeroize::Zeroizing<String>>,
        submodules: Submodules,
    ) -> Result<Vec<String>, Ending> {
        let (git, policy) = (self.git.clone(), self.settings.policy.clone());
        let max_depth = self.settings.max_submodule_depth;
        let checked_out = tokio::task::spawn_blocking(move || {
            let token = token.as_deref().map(|t| t.as_str());
            let checked = git.checkout_commit(repo.as_str(), &sha, &dir, token)?;
            match submodules {
                Submodules::Empty => Ok(notes_of_empty(&checked)),
                Submodules::Fetch => {
                    let fetch = Fetch { git: &git, policy: &policy, repo: &repo, token, max_depth };
                    fetch.all(&dir, &checked)
                }
            }
        })
        .await;
        match checked_out {
            Ok(Ok(notes)) => Ok(notes),
            Ok(Err(e)) => Err(ending_of(at, e)),
            Err(e) => Err(Ending::infrastructure(at, format!("checkout task failed: {e}"))),
        }
    }
}

impl JobRunner {
    /// Whether `job`'s function can be planned at `sha` (a manifest, a runtime
    /// this executor offers, its entry and workdir there): checked out as a run
    /// would be, then planned with no input; a refusal rejects the deployment
    /// with the plan's reason, before any version names the commit.
    pub(super) async fn check_plan(
        &self,
        job: &Job,
        at: &Attempt,
        target: (RepoUrl, String),
        token: Option<zeroize::Zeroizing<String>>,
    ) -> Result<(), Ending> {
        let spec = &job.spec;
        let workspace = Workspace::create(&self.settings.work_dir)
            .map_err(|e| Ending::infrastructure(at, format!("executor could not create a workspace: {e}")))?;
        self.checkout_task(at, target, workspace.code(), token, spec.submodules).await?;
        let offer = self.offer();
        let (chosen, runtime) = (Chosen::of(spec), spec.runtime.as_deref());
        match plan(&workspace.code(), CODE_MOUNT, runtime, &chosen, &offer, &Value::Null, b"{}") {
            Ok(_) => Ok(()),
            Err(e) => Err(self.refused(at, e)),
        }
    }
}

/// The job's end for a git step that failed with `error`.
pub(super) fn ending_of(at: &Attempt, error: GitError) -> Ending {
    if error.is_infrastructure() {
        Ending::infrastructure(at, error.to_string())
    } else if error.is_policy() {
        JobResult::rejected(at, error.to_string()).into()
    } else {
        JobResult::failed(at, error.to_string()).into()
    }
}
