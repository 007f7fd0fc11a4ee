//! What the caller owns, found by the id in a path: anyone else's is
//! indistinguishable from a missing one (404 alike). Below the routes that read
//! jobs, wait for them and cancel them, so none of them imports another for it.

use gitfaas_common::JobId;

use crate::identity::Caller;
use crate::problem::ApiError;
use crate::store::JobRecord;
use crate::AppState;

/// A job the caller owns; anyone else's job is indistinguishable from a missing one.
pub async fn own_job(state: &AppState, caller: &Caller, id: &str) -> Result<JobRecord, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::NotFound)?;
    match state.store.get(id).await? {
        Some(record) if record.owner == caller.subject => Ok(record),
        _ => Err(ApiError::NotFound),
    }
}
