//! Bounded retries with exponential backoff and jitter for transient source faults.

use std::future::Future;
use std::time::Duration;

use ethpipe_core::SourceError;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Runs `operation` until it succeeds, fails with a non-transient error, or
    /// the attempts are used up. Errors already name the operation.
    pub async fn run<T, F, Fut>(&self, mut operation: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SourceError>>,
    {
        let mut attempt = 1;
        loop {
            match operation().await {
                Err(SourceError::Transient(message)) if attempt < self.attempts => {
                    let delay = self.delay_before(attempt + 1);
                    tracing::warn!(
                        "{message}; retrying in {delay:.1?} (attempt {attempt} of {})",
                        self.attempts
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(SourceError::Transient(message)) => {
                    return Err(SourceError::Transient(if self.attempts > 1 {
                        format!("{message} (gave up after {} attempts)", self.attempts)
                    } else {
                        message
                    }))
                }
                other => return other,
            }
        }
    }

    /// Exponential backoff with "full jitter": uniformly in [d/2, d].
    fn delay_before(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(1 << (attempt - 2).min(16));
        let capped = exponential.min(self.max_delay);
        let half = capped / 2;
        half + half.mul_f64(jitter_fraction())
    }
}

/// A cheap pseudo-random fraction in [0, 1); jitter only needs to decorrelate clients.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = u64::from(nanos) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % 1_000_000) as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let result = quick()
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(SourceError::Transient("503".into())),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_bound_and_never_retries_config_errors() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = quick()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(SourceError::Transient("503".into()))
            })
            .await;
        assert!(result.unwrap_err().to_string().contains("after 3 attempts"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let result: Result<(), _> = quick()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(SourceError::Config("403".into()))
            })
            .await;
        assert!(matches!(result, Err(SourceError::Config(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        };
        let second = policy.delay_before(2);
        assert!(second >= Duration::from_millis(50) && second <= Duration::from_millis(100));
        let late = policy.delay_before(9);
        assert!(late >= Duration::from_millis(200) && late <= Duration::from_millis(400));
    }
}
