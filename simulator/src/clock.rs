//! Simulated time: durations in the simulator (pod start-up, crash back-off, progress deadlines)
//! run on a clock that tests can speed up or move forward; timestamps written into objects are
//! wall-clock time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A clock whose time passes `speed` times faster than real time and can be advanced.
#[derive(Debug)]
pub struct Clock {
    inner: Mutex<Base>,
}

#[derive(Debug, Clone, Copy)]
struct Base {
    real: Instant,
    simulated: Duration,
    speed: f64,
}

impl Clock {
    pub fn new(speed: f64) -> Self {
        Clock {
            inner: Mutex::new(Base {
                real: Instant::now(),
                simulated: Duration::ZERO,
                speed: sanitize(speed),
            }),
        }
    }

    fn base(&self) -> Base {
        match self.inner.lock() {
            Ok(b) => *b,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn rebase(&self, f: impl FnOnce(&mut Base)) {
        let mut guard = match self.inner.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let elapsed = now.duration_since(guard.real).mul_f64(guard.speed);
        guard.simulated += elapsed;
        guard.real = now;
        f(&mut guard);
    }

    /// Simulated time since the simulator started.
    pub fn now(&self) -> Duration {
        let b = self.base();
        b.simulated + b.real.elapsed().mul_f64(b.speed)
    }

    /// How many simulated seconds pass per real second.
    pub fn speed(&self) -> f64 {
        self.base().speed
    }

    /// Makes simulated time pass `speed` times faster than real time from now on.
    pub fn set_speed(&self, speed: f64) {
        self.rebase(|b| b.speed = sanitize(speed));
    }

    /// Moves simulated time forward at once.
    pub fn advance(&self, by: Duration) {
        self.rebase(|b| b.simulated += by);
    }
}

fn sanitize(speed: f64) -> f64 {
    if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    }
}

/// The wall-clock time as a Kubernetes `Time` (seconds precision).
pub fn timestamp() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// The wall-clock time as a Kubernetes `MicroTime`.
pub fn micro_timestamp() -> String {
    let now = jiff::Timestamp::now();
    let micros = now.as_microsecond();
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(t) => format!("{t:.6}"),
        Err(_) => now.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_and_speed_move_simulated_time() {
        let clock = Clock::new(1.0);
        clock.advance(Duration::from_secs(100));
        assert!(clock.now() >= Duration::from_secs(100));
        clock.set_speed(1000.0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(clock.now() >= Duration::from_secs(119));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = timestamp();
        assert!(t.ends_with('Z') && !t.contains('.'), "{t}");
        let m = micro_timestamp();
        assert!(m.ends_with('Z') && m.contains('.'), "{m}");
    }
}
