//! When to try a request again, how long to wait first, and how long an attempt may go without
//! progress. Plain policy, no SDK types: [`super::s3`] drives its requests through it.
//!
//! - Which failures: connection errors and stalls ([`StoreError::Network`]), 5xx answers, and
//!   throttling (503 SlowDown, 429, `Throttling*`, `RequestTimeout`), as S3's error-retry advice
//!   says. Everything else (404, 403, 412, ...) is an answer, returned at once.
//! - How long: attempts go on until the retry budget (`--retry-budget`, from the first attempt)
//!   is spent; no attempt starts after it. With the stall bound below, a request fails at most
//!   about budget + request timeout after it began.
//! - How far apart: exponential backoff with full jitter (a random wait up to 100 ms x 2^n,
//!   capped at 2 s: 20 throttled answers in a row cost about 17 s on average).
//! - Adaptive across requests: a throttling answer raises a shared level that makes every new
//!   request wait a jittered pause before it is sent (retries wait their own backoff), so a burst of
//!   SlowDown slows the whole mount rather than each request hammering on; each success halves
//!   it (additive increase, multiplicative decrease, the other way round from a congestion
//!   window: pauses grow one step per throttle and fall fast once requests get through).
//! - Stalls: an attempt that makes no progress (no request-body bytes taken, no answer, no
//!   response-body bytes) for the request timeout (`--request-timeout`) is abandoned and counts
//!   as a network error.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use tracing::debug;

use super::StoreError;

/// The first backoff step, and the largest wait between two attempts.
const BASE: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Time bounds for requests; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// Retries stop once this long has passed since a request's first attempt.
    pub budget: Duration,
    /// An attempt without progress for this long is abandoned.
    pub request_timeout: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions { budget: Duration::from_secs(60), request_timeout: Duration::from_secs(30) }
    }
}

/// The failure is worth another attempt.
pub fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Network(_) => true,
        StoreError::Server { status, code, .. } => {
            throttled(e)
                || matches!(status, Some(500..=599))
                // BadDigest: the body's checksum did not match what arrived, so the bytes
                // changed on the way; they are sent again from the (checked) buffer.
                || matches!(code.as_str(), "InternalError" | "ServiceUnavailable" | "RequestTimeout" | "BadDigest")
        }
        _ => false,
    }
}

/// The service asked us to slow down.
pub fn throttled(e: &StoreError) -> bool {
    match e {
        StoreError::Server { status, code, .. } => {
            *status == Some(429)
                || matches!(
                    code.as_str(),
                    "SlowDown"
                        | "Throttling"
                        | "ThrottlingException"
                        | "ThrottledException"
                        | "RequestThrottled"
                        | "TooManyRequestsException"
                        | "RequestLimitExceeded"
                        | "BandwidthLimitExceeded"
                )
        }
        _ => false,
    }
}

/// A random wait up to `BASE * 2^n`, capped.
fn jittered(n: u32) -> Duration {
    let cap = BASE.saturating_mul(1u32 << n.min(16)).min(MAX_BACKOFF);
    cap.mul_f64(fastrand::f64())
}

/// The throttling level shared by every request of a store.
#[derive(Debug, Default)]
pub struct Throttle {
    level: AtomicU32,
}

impl Throttle {
    /// Waits the pause the current level asks for (nothing when the service is not throttling).
    pub async fn pace(&self) {
        let level = self.level.load(Ordering::Relaxed);
        if level > 0 {
            tokio::time::sleep(jittered(level)).await;
        }
    }

    pub fn hit(&self) {
        let _ = self.level.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some((l + 1).min(8)));
    }

    pub fn ok(&self) {
        let _ = self.level.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some(l / 2));
    }

    pub fn level(&self) -> u32 {
        self.level.load(Ordering::Relaxed)
    }
}

/// One request's retries.
pub struct Attempts<'a> {
    op: &'static str,
    opts: RetryOptions,
    throttle: &'a Throttle,
    start: Instant,
    n: u32,
}

impl<'a> Attempts<'a> {
    pub fn new(op: &'static str, opts: RetryOptions, throttle: &'a Throttle) -> Attempts<'a> {
        Attempts { op, opts, throttle, start: Instant::now(), n: 0 }
    }

    /// Before each attempt: a first attempt waits the shared pause, if the service is
    /// throttling (a retry has waited its backoff already).
    pub async fn before(&self) {
        if self.n == 0 {
            self.throttle.pace().await;
        }
    }

    pub fn succeeded(&self) {
        if self.throttle.level() > 0 {
            self.throttle.ok();
        }
    }

    /// After a failed attempt: `true` (having waited the backoff) if another should follow.
    pub async fn again(&mut self, e: &StoreError) -> bool {
        if throttled(e) {
            self.throttle.hit();
        }
        let spent = self.start.elapsed();
        if !retryable(e) || spent >= self.opts.budget {
            return false;
        }
        self.n += 1;
        let wait = jittered(self.n).min(self.opts.budget - spent);
        debug!(op = self.op, attempt = self.n, error = %e, wait_ms = wait.as_millis() as u64, "retrying");
        crate::stats::retry(self.op);
        tokio::time::sleep(wait).await;
        true
    }
}

/// Progress of one attempt, touched by the request body as it is taken and by the response as
/// it arrives.
#[derive(Debug)]
pub struct Progress {
    base: Instant,
    /// Milliseconds after `base` of the last progress.
    last: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress { base: Instant::now(), last: AtomicU64::new(0) })
    }

    pub fn touch(&self) {
        self.last.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.base.elapsed().saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }
}

/// Runs `fut`, failing it with a network error once `progress` has not moved for `limit`.
pub async fn watch<T>(
    progress: &Progress,
    limit: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    progress.touch();
    tokio::pin!(fut);
    loop {
        let left = limit.saturating_sub(progress.idle());
        if left.is_zero() {
            return Err(StoreError::Network(format!("no progress for {} s (--request-timeout)", limit.as_secs_f64())));
        }
        tokio::select! {
            r = &mut fut => return r,
            _ = tokio::time::sleep(left) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, code: &str) -> StoreError {
        StoreError::Server { status: Some(status), code: code.into(), message: String::new() }
    }

    #[test]
    fn what_is_retried() {
        assert!(retryable(&server(503, "SlowDown")) && throttled(&server(503, "SlowDown")));
        assert!(retryable(&server(500, "InternalError")) && !throttled(&server(500, "InternalError")));
        assert!(retryable(&server(429, "Whatever")) && throttled(&server(429, "Whatever")));
        assert!(retryable(&server(400, "RequestTimeout")));
        assert!(retryable(&server(400, "BadDigest")), "bytes changed on the way are sent again");
        assert!(retryable(&StoreError::Network("reset".into())));
        assert!(!retryable(&server(400, "InvalidArgument")));
        assert!(!retryable(&StoreError::NotFound) && !retryable(&StoreError::AccessDenied));
        assert!(!retryable(&StoreError::PreconditionFailed));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_when_the_budget_is_spent() {
        let throttle = Throttle::default();
        let opts = RetryOptions { budget: Duration::from_secs(10), request_timeout: Duration::from_secs(1) };
        let mut a = Attempts::new("Test", opts, &throttle);
        let start = Instant::now();
        let mut n = 0;
        while a.again(&server(503, "SlowDown")).await {
            n += 1;
        }
        let spent = start.elapsed();
        assert!(n >= 5, "several attempts fit in 10 s of backoff (got {n})");
        assert!(spent <= Duration::from_secs(10), "never past the budget: {spent:?}");
        assert!(throttle.level() > 0, "throttling raised the shared level");
        let mut b = Attempts::new("Test", opts, &throttle);
        assert!(!b.again(&StoreError::NotFound).await, "an answer is not retried");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_attempt_fails_and_a_moving_one_does_not() {
        let p = Progress::new();
        let limit = Duration::from_secs(2);
        let stalled = watch(&p, limit, std::future::pending::<Result<(), StoreError>>()).await;
        assert!(matches!(stalled, Err(StoreError::Network(_))));
        // Progress every second keeps a 5 s transfer alive under a 2 s limit.
        let p2 = p.clone();
        let moving = async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                p2.touch();
            }
            Ok(())
        };
        assert!(watch(&p, limit, moving).await.is_ok());
    }
}
