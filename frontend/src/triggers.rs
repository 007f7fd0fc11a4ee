//! Triggers: what makes jobs of a named function without anyone submitting them.

use gitfaas_common::schema::JobOrigin;

use crate::follow_up::FollowUp;
use crate::problem::ApiError;
use crate::store::JobRecord;

/// A topic trigger's job ended: its output record, or its dead letter.
pub async fn record_done(_follow_up: &FollowUp, _record: &JobRecord, _origin: &JobOrigin) -> Result<(), ApiError> {
    Ok(())
}
