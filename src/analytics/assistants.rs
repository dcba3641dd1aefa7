//! The assistant list for the dashboard's selector, as an analytics read so it
//! shares the reader pool, the timeout and the failure telemetry.

use super::{Analytics, MetricError};
use crate::api::assistants::AssistantSummary;

impl Analytics {
    pub async fn assistants(&self) -> Result<Vec<AssistantSummary>, MetricError> {
        // Registries only: the read path (rollups or raw) does not apply.
        self.run_named("assistants", |view| view.assistants()).await
    }
}
