//! Reading an ingest body: within the body limit, at a minimum rate, and
//! inside a byte budget shared by every body being read or decoded. A client that
//! trickles its body is cut off (408) instead of holding memory and time, and
//! bodies are read before a decode slot is taken, so slow senders never hold
//! the slots that decoding needs.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::api::error::ApiError;

/// Time every body gets before the minimum rate applies (a slow start, a
/// `100-continue` round trip).
pub const GRACE: Duration = Duration::from_secs(5);
/// The slowest a body may arrive after the grace period, bytes per second
/// (a 16 MiB body may take 5 + 256 s; a LAN sends it in well under a second).
pub const MIN_BYTES_PER_SECOND: u64 = 64 * 1024;

/// The budget's unit: permits are KiB, so any body limit fits in a semaphore.
const UNIT: usize = 1024;

/// A byte budget of `bytes` for bodies being read or decoded at once.
pub fn budget(bytes: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(
        bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS),
    ))
}

/// The whole body, with its share of the budget (release it once the bytes
/// and what was decoded from them are freed). The share is taken whole before
/// the first byte is read: its declared length, else the body limit. Shares
/// taken piece by piece could leave every body holding part of the budget
/// and none able to finish.
pub async fn read(
    mut body: Body,
    declared: Option<u64>,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, OwnedSemaphorePermit), ApiError> {
    let reserve = declared
        .and_then(|length| usize::try_from(length).ok())
        .unwrap_or(limit)
        .min(limit);
    let units = u32::try_from(reserve.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
    let share = budget
        .clone()
        .acquire_many_owned(units)
        .await
        .map_err(|_| shutting_down())?;
    // The rate is the client's from here: the wait above was the server's.
    let started = Instant::now();
    let mut bytes: Vec<u8> = Vec::with_capacity(declared.map_or(0, |_| reserve));
    loop {
        let allowed =
            GRACE + Duration::from_secs_f64(bytes.len() as f64 / MIN_BYTES_PER_SECOND as f64);
        let frame = match tokio::time::timeout_at(started + allowed, body.frame()).await {
            Err(_) => return Err(too_slow()),
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                return Err(ApiError::BadRequest(format!(
                    "could not read the body: {error}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if bytes.len() + data.len() > reserve {
            return Err(too_large(limit));
        }
        bytes.extend_from_slice(&data);
    }
    Ok((Bytes::from(bytes), share))
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the body is larger than the limit of {limit} bytes"
    ))
}

fn too_slow() -> ApiError {
    ApiError::RequestTimeout(format!(
        "the body arrived slower than {} KiB/s after the first {} s; send it faster",
        MIN_BYTES_PER_SECOND / 1024,
        GRACE.as_secs()
    ))
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable {
        message: "the server is shutting down; retry against the restarted server".to_string(),
        retry_after_s: 5,
    }
}
