//! How simulated pods behave, chosen per container image by the test.

use std::time::Duration;

use serde_json::Value;

/// What the containers of a pod do once the pod is scheduled.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Starts, and passes its readiness probe `after` this long (simulated time).
    Ready { after: Duration },
    /// Runs but never passes its readiness probe.
    NeverReady,
    /// Exits soon after each start: `CrashLoopBackOff`, one more restart every `restart_every`.
    CrashLoop { restart_every: Duration },
    /// The image cannot be pulled: `ErrImagePull`, then `ImagePullBackOff`.
    ImagePullBackOff,
    /// A referenced ConfigMap or Secret key is missing.
    CreateContainerConfigError,
    /// Runs for `after`, then its containers exit with `code` and are not restarted (the pod
    /// phase becomes `Succeeded` for 0, `Failed` otherwise): a Job's pod.
    Exits { after: Duration, code: i32 },
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::Ready {
            after: Duration::from_secs(1),
        }
    }
}

/// The pod label that injects a fault whatever the image, as the fake kubelet of
/// `shared/realcluster` reads it (`unready` or `crash`), so that the same manifests fail the
/// same way on the simulator and on a real control plane.
pub const FAULT_LABEL: &str = "sim.fault";

/// The restart period of `sim.fault: crash` pods (the fake kubelet's default).
pub const FAULT_CRASH_PERIOD: Duration = Duration::from_secs(10);

/// Behaviours by image: an exact image, or a prefix ending in `*`. The first match wins.
#[derive(Debug, Clone, Default)]
pub struct Behaviours {
    rules: Vec<(String, Behaviour)>,
    pub default: Behaviour,
}

impl Behaviours {
    /// Sets the behaviour of pods running `image` (replacing an earlier rule for the same pattern).
    pub fn set(&mut self, image: &str, behaviour: Behaviour) {
        self.rules.retain(|(p, _)| p != image);
        self.rules.insert(0, (image.to_string(), behaviour));
    }

    fn for_image(&self, image: &str) -> Option<&Behaviour> {
        self.rules
            .iter()
            .find(|(p, _)| match p.strip_suffix('*') {
                Some(prefix) => image.starts_with(prefix),
                None => p == image,
            })
            .map(|(_, b)| b)
    }

    /// The behaviour of a pod: that of its `sim.fault` label (as the fake kubelet of a real
    /// test control plane reads it: `unready` never becomes ready, `crash` crash-loops with a
    /// restart every [`FAULT_CRASH_PERIOD`]), else that of its first container with a rule,
    /// else the default.
    pub fn for_pod(&self, pod: &Value) -> (Behaviour, String) {
        let images: Vec<&str> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().filter_map(|c| c["image"].as_str()).collect())
            .unwrap_or_default();
        let first = images.first().map(|s| s.to_string()).unwrap_or_default();
        match pod
            .pointer("/metadata/labels")
            .and_then(|l| l.get(FAULT_LABEL))
            .and_then(Value::as_str)
        {
            Some("unready") => return (Behaviour::NeverReady, first),
            Some("crash") => {
                return (
                    Behaviour::CrashLoop {
                        restart_every: FAULT_CRASH_PERIOD,
                    },
                    first,
                )
            }
            _ => {}
        }
        for image in &images {
            if let Some(b) = self.for_image(image) {
                return (b.clone(), image.to_string());
            }
        }
        (
            self.default.clone(),
            images.first().map(|s| s.to_string()).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_and_prefix_rules() {
        let mut b = Behaviours::default();
        b.set("registry.example.com/shop/*", Behaviour::NeverReady);
        b.set(
            "registry.example.com/shop/api:2",
            Behaviour::ImagePullBackOff,
        );
        let pod = |image: &str| json!({"spec": {"containers": [{"name": "a", "image": image}]}});
        assert_eq!(
            b.for_pod(&pod("registry.example.com/shop/api:2")).0,
            Behaviour::ImagePullBackOff
        );
        assert_eq!(
            b.for_pod(&pod("registry.example.com/shop/web:1")).0,
            Behaviour::NeverReady
        );
        assert_eq!(b.for_pod(&pod("other:1")).0, Behaviour::default());
    }

    #[test]
    fn the_fault_label_wins_over_image_rules() {
        let mut b = Behaviours::default();
        b.set("api:1", Behaviour::ImagePullBackOff);
        let pod = |fault: &str| {
            json!({"metadata": {"labels": {"app": "api", "sim.fault": fault}},
                   "spec": {"containers": [{"name": "a", "image": "api:1"}]}})
        };
        assert_eq!(b.for_pod(&pod("unready")).0, Behaviour::NeverReady);
        assert_eq!(
            b.for_pod(&pod("crash")).0,
            Behaviour::CrashLoop {
                restart_every: FAULT_CRASH_PERIOD
            }
        );
        assert_eq!(b.for_pod(&pod("other")).0, Behaviour::ImagePullBackOff);
    }
}
