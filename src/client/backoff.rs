//! Reconnect delays: exponential backoff with jitter, as a pure function.

use std::time::Duration;

/// How the client reconnects after losing its connection (see
/// [`ClientConfig::reconnect`](super::ClientConfig::reconnect)).
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// The delay before the first attempt (default 100 ms).
    pub initial_delay: Duration,
    /// No delay is longer than this (default 10 s).
    pub max_delay: Duration,
    /// Each attempt's delay is the previous one times this (default 2.0; values below 1.0 are
    /// treated as 1.0).
    pub multiplier: f64,
    /// `0.0..=1.0` (default 0.2): each delay is scaled by a random factor in `[1-j, 1+j]`
    /// (then capped at `max_delay`).
    pub jitter: f64,
    /// Give up after this many failed attempts (`None`: retry forever).
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: None,
        }
    }
}

/// The delay before reconnect attempt `attempt` (1 for the first), given `unit_random`, a
/// random number in `[0, 1)`: `min(initial · multiplier^(attempt-1) · (1 - j + 2j·unit_random),
/// max_delay)`.
pub fn backoff_delay(policy: &ReconnectPolicy, attempt: u32, unit_random: f64) -> Duration {
    let jitter = if policy.jitter.is_finite() {
        policy.jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let multiplier = if policy.multiplier.is_finite() {
        policy.multiplier.max(1.0)
    } else {
        1.0
    };
    let r = if unit_random.is_finite() {
        unit_random.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let max = policy.max_delay.as_secs_f64();
    let exp = attempt.saturating_sub(1).min(1024) as i32;
    let base = (policy.initial_delay.as_secs_f64() * multiplier.powi(exp)).min(max);
    let delay = (base * (1.0 - jitter + 2.0 * jitter * r)).min(max);
    if delay.is_finite() && delay > 0.0 {
        Duration::from_secs_f64(delay)
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> ReconnectPolicy {
        ReconnectPolicy {
            jitter: 0.0,
            ..Default::default()
        }
    }

    #[test]
    fn grows_exponentially_from_the_initial_delay() {
        let p = no_jitter();
        assert_eq!(backoff_delay(&p, 1, 0.7), Duration::from_millis(100));
        assert_eq!(backoff_delay(&p, 2, 0.7), Duration::from_millis(200));
        assert_eq!(backoff_delay(&p, 3, 0.7), Duration::from_millis(400));
        assert_eq!(backoff_delay(&p, 5, 0.7), Duration::from_millis(1600));
    }

    #[test]
    fn is_capped_at_max_delay_even_for_huge_attempts() {
        let p = ReconnectPolicy::default();
        for attempt in [8, 20, 100, u32::MAX] {
            for r in [0.0, 0.5, 0.999] {
                assert!(
                    backoff_delay(&p, attempt, r) <= p.max_delay,
                    "{attempt} {r}"
                );
            }
        }
        assert_eq!(
            backoff_delay(&no_jitter(), 1000, 0.3),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn jitter_stays_in_its_range_and_spans_it() {
        let p = ReconnectPolicy {
            jitter: 0.25,
            ..Default::default()
        };
        let base = 0.4; // attempt 3
        let lo = backoff_delay(&p, 3, 0.0).as_secs_f64();
        let hi = backoff_delay(&p, 3, 0.999_999).as_secs_f64();
        assert!((lo - base * 0.75).abs() < 1e-9, "{lo}");
        assert!((hi - base * 1.25).abs() < 1e-6, "{hi}");
        for i in 0..100 {
            let d = backoff_delay(&p, 3, i as f64 / 100.0).as_secs_f64();
            assert!(d >= base * 0.75 - 1e-9 && d <= base * 1.25 + 1e-9, "{d}");
        }
    }

    #[test]
    fn odd_parameters_do_not_panic() {
        let p = ReconnectPolicy {
            multiplier: f64::NAN,
            jitter: 7.0,
            initial_delay: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(backoff_delay(&p, 0, f64::NAN), Duration::ZERO);
        let p = ReconnectPolicy {
            multiplier: 0.5,
            jitter: 0.0,
            ..Default::default()
        };
        assert_eq!(backoff_delay(&p, 4, 0.1), Duration::from_millis(100));
    }
}
