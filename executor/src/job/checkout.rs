//! A job's checkout into its workspace: the commit's tree, then its submodules
//! as the job asks (`submodules`: left empty with a note each, or fetched).

use std::path::PathBuf;

use gitfaas_common::policy::RepoUrl;
use gitfaas_common::schema::{Attempt, Submodules};
use gitfaas_common::JobResult;

use super::{Ending, JobRunner};
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
