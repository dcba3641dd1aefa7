//! The assistant list for the dashboard's selector, as an analytics read so it
//! shares the reader pool, the timeout and the failure telemetry.

use super::{Analytics, MetricError};
use crate::api::assistants::AssistantSummary;
use crate::store::sqlite::assistants::assistants;

impl Analytics {
    pub async fn assistants(&self) -> Result<Vec<AssistantSummary>, MetricError> {
        // Registries only: the read path (rollups or raw) does not apply.
        self.run_named("assistants", |c, _path| assistants(c)).await
    }
}
