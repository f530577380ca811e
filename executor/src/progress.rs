//! Progress on stderr: a bar per workload on a terminal, plain timestamped lines otherwise.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::health;
use crate::object::ObjectId;

enum Mode {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

#[derive(Default)]
struct Workloads {
    last: BTreeMap<ObjectId, String>,
    done: BTreeMap<ObjectId, bool>,
    bars: BTreeMap<ObjectId, ProgressBar>,
}

pub struct Progress {
    start: Instant,
    mode: Mode,
    workloads: Mutex<Workloads>,
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Progress {
            start: Instant::now(),
            mode,
            workloads: Mutex::new(Workloads::default()),
        }
    }

    fn stamp(&self) -> String {
        format!("[{:6.1}s]", self.start.elapsed().as_secs_f64())
    }

    /// A line about the operation.
    pub fn note(&self, message: impl Display) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{} {message}", self.stamp()),
            Mode::Bars(m) => {
                let _ = m.println(format!("{} {message}", self.stamp()));
            }
        }
    }

    /// Where a workload's rollout stands (printed when it changes).
    pub fn workload(&self, id: &ObjectId, progress: &health::Progress) {
        let Ok(mut w) = self.workloads.lock() else {
            return;
        };
        if w.last.get(id) == Some(&progress.message) {
            return;
        }
        w.last.insert(id.clone(), progress.message.clone());
        w.done.insert(id.clone(), false);
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{} {id}: {}", self.stamp(), progress.message),
            Mode::Bars(m) => {
                let bar = w.bars.entry(id.clone()).or_insert_with(|| {
                    let b = m.add(ProgressBar::new(progress.desired.max(1) as u64));
                    if let Ok(style) =
                        ProgressStyle::with_template("{prefix} [{bar:20}] {pos}/{len} {msg}")
                    {
                        b.set_style(style.progress_chars("=> "));
                    }
                    b.set_prefix(id.to_string());
                    b
                });
                bar.set_length(progress.desired.max(1) as u64);
                bar.set_position(progress.available.max(0) as u64);
                bar.set_message(progress.message.clone());
            }
        }
    }

    /// A workload's rollout is complete.
    pub fn complete(&self, id: &ObjectId) {
        let Ok(mut w) = self.workloads.lock() else {
            return;
        };
        w.done.insert(id.clone(), true);
        w.last.insert(id.clone(), "complete".into());
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{} {id}: rollout complete", self.stamp()),
            Mode::Bars(_) => {
                if let Some(b) = w.bars.get(id) {
                    b.finish_with_message("complete");
                }
            }
        }
    }

    /// Workloads not complete, with what they last reported.
    pub fn unfinished(&self) -> Vec<(ObjectId, String)> {
        let Ok(w) = self.workloads.lock() else {
            return Vec::new();
        };
        w.last
            .iter()
            .filter(|(id, _)| !w.done.get(*id).copied().unwrap_or(false))
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }

    /// What a workload last reported: `complete`, or its progress message.
    pub fn state(&self, id: &ObjectId) -> Option<String> {
        self.workloads.lock().ok()?.last.get(id).cloned()
    }

    /// Forgets workloads (a new wait starts).
    pub fn reset(&self) {
        if let Ok(mut w) = self.workloads.lock() {
            for b in w.bars.values() {
                b.finish();
            }
            *w = Workloads::default();
        }
    }
}
