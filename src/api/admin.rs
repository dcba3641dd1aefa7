//! Operator actions on the running server: `POST /api/v1/admin/backup`
//! copies the store into the configured backup directory (see
//! `store::sqlite::backup`), so that cron and curl can schedule backups.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::server::AppState;

/// How long the request waits for the backup before answering 202 and
/// letting it finish in the background (within the request timeout).
const BACKUP_WAIT: Duration = Duration::from_secs(45);

/// A finished backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupReport {
    /// Name of the file in the backup directory.
    #[schema(example = "ragpulse-backup-20261208T021500.123Z.db")]
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// How long the copy took, seconds.
    pub duration_s: f64,
}

/// A backup still running when the request stopped waiting.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupRunning {
    /// Name the file will have in the backup directory once complete.
    pub file: String,
    pub detail: String,
}

#[utoipa::path(post, path = "/api/v1/admin/backup", tag = "operations",
    responses(
        (status = 200, description = "The store copied into a new file of the backup directory: a consistent snapshot of every event acknowledged before the request", body = BackupReport),
        (status = 202, description = "Still copying after 45 s: it goes on in the background and the file appears under its name when complete", body = BackupRunning),
        (status = 409, description = "Backups are not configured (no `--backup-dir`), or a backup is already running", body = super::docs::Detail),
        (status = 500, description = "The copy failed (the cause is in the server's log); no file was left under the name", body = super::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn backup(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(dir) = state.settings.backup_dir.clone() else {
        return Err(ApiError::Conflict(
            "backups are not configured: start the server with --backup-dir DIR \
             (RAGPULSE_BACKUP_DIR, backup_dir in ragpulse.toml)"
                .to_string(),
        ));
    };
    let Ok(running) = state.backup.clone().try_lock_owned() else {
        return Err(ApiError::Conflict(
            "a backup is already running; try again when it has finished".to_string(),
        ));
    };
    let file = file_name(chrono::Utc::now());
    let path = dir.join(&file);
    let store = state.store.clone();
    // The backup belongs to the server, not to this request: it finishes
    // if the client leaves or the wait below ends.
    let mut job = tokio::task::spawn_blocking(move || {
        let _running = running;
        std::fs::create_dir_all(&dir).map_err(|e| {
            crate::store::StoreError::Open(format!("cannot create {}: {e}", dir.display()))
        })?;
        let report = store.backup(&path);
        match &report {
            Ok(r) => tracing::info!(file = %path.display(), bytes = r.bytes, "backed up"),
            Err(error) => tracing::error!(file = %path.display(), %error, "backup failed"),
        }
        report
    });
    match tokio::time::timeout(BACKUP_WAIT, &mut job).await {
        Ok(Ok(Ok(report))) => Ok(Json(BackupReport {
            file,
            bytes: report.bytes,
            duration_s: report.duration.as_secs_f64(),
        })
        .into_response()),
        Ok(Ok(Err(error))) => Err(ApiError::Internal(format!("backup failed: {error}"))),
        Ok(Err(error)) => Err(ApiError::Internal(format!(
            "the backup task failed: {error}"
        ))),
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            Json(BackupRunning {
                file,
                detail: "the backup is still running; the file appears when it is complete"
                    .to_string(),
            }),
        )
            .into_response()),
    }
}

/// `ragpulse-backup-20261208T021500.123Z.db`: sorts by time, no `:`.
fn file_name(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("ragpulse-backup-{}.db", now.format("%Y%m%dT%H%M%S%.3fZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_files_are_named_by_their_time() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-08T02:15:00.123456Z")
            .unwrap()
            .to_utc();
        assert_eq!(file_name(at), "ragpulse-backup-20261208T021500.123Z.db");
    }
}
