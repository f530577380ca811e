//! What the controllers remember between passes (pods' simulated lives, progress, the marks
//! benchmarks read), and the name suffixes generated objects get.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// A moment in a pod's life, with the wall-clock time it happened (for measurements).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at: SystemTime,
    pub namespace: String,
    pub pod: String,
    pub image: String,
    pub what: MarkKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MarkKind {
    Created,
    Ready,
    /// The container restarted; the restart count.
    Restarted(u32),
    /// The container is waiting for this reason (ImagePullBackOff, ...).
    Waiting(String),
}

/// What a pod's simulated life has been so far.
#[derive(Debug, Clone)]
pub(crate) struct PodLife {
    /// Simulated time the pod was created.
    pub created: Duration,
    pub created_at: String,
    /// Simulated and wall-clock time it became ready.
    pub ready: Option<(Duration, String)>,
    pub restarts: u32,
    pub last_restart_at: Option<String>,
    pub waiting: Option<String>,
}

/// What controllers remember between passes.
#[derive(Debug, Default)]
pub struct Memory {
    pub(crate) pods: HashMap<String, PodLife>,
    /// Deployment uid -> simulated time of its last progress.
    pub(crate) progress: HashMap<String, Duration>,
    pub(crate) marks: Vec<Mark>,
    pub(crate) seq: u64,
}

impl Memory {
    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// The letters of generated names: no vowels, no look-alikes.
pub(crate) const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A short name suffix, as Kubernetes generates them.
pub fn suffix(seed: u64) -> String {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    let mut s = String::new();
    for _ in 0..5 {
        s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        x /= ALPHABET.len() as u64;
    }
    s
}
