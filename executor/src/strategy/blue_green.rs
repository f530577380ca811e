//! Blue-green rollouts: a Deployment labelled `color: blue|green` (named `<name>-<color>`)
//! behind a Service that selects `color`. The idle color is deployed at full size next to the
//! serving one, checked, and the Service's selector is switched to it in one server-side
//! apply; the old color is scaled down after a delay. Until the switch, traffic stays where it
//! was; after a failed switch the selector is moved back before anything else is undone.
//!
//! The pure parts (finding the Service and its Deployments, recoloring objects) are separate
//! from the I/O (reading the serving color, switching, scaling).

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::analysis::Gates;
use crate::apply::{self, FIELD_MANAGER};
use crate::cluster::Cluster;
use crate::object::ObjectId;

/// The label that tells the colors apart, on Deployments, their pods and the Service selector.
pub const COLOR_LABEL: &str = "color";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    pub fn parse(text: &str) -> Option<Color> {
        match text {
            "blue" => Some(Color::Blue),
            "green" => Some(Color::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a blue-green release stands, kept in its record (so that `promote` and `abort`, in
/// another process, know what to switch and what to undo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub service: ObjectId,
    /// The color this revision deploys.
    pub color: Color,
    /// The color the Service selected when it started (None: no Service, or no color yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Color>,
    /// The Deployments of `color`.
    pub deployments: Vec<ObjectId>,
    /// The Deployments of the serving color, scaled down once the switch holds.
    #[serde(default)]
    pub old_deployments: Vec<ObjectId>,
    /// Whether the Service selects `color` now.
    #[serde(default)]
    pub switched: bool,
    pub gates: Gates,
    #[serde(with = "seconds")]
    pub scale_down_delay: Duration,
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::try_from_secs_f64(f64::deserialize(d)?).unwrap_or_default())
    }
}

fn color_label(labels: &Value) -> Option<Color> {
    labels[COLOR_LABEL].as_str().and_then(Color::parse)
}

/// The Service and Deployments of a blue-green release, as positions in the object list.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub service: usize,
    pub deployments: Vec<usize>,
    /// The color the manifests were rendered with.
    pub rendered: Color,
}

/// Finds the Service whose selector has `color` and the Deployments whose pods it selects
/// (all labels of the selector but `color`).
pub fn find(objects: &[&Value]) -> Result<Target, String> {
    let services: Vec<usize> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o["apiVersion"] == "v1"
                && o["kind"] == "Service"
                && o["spec"]["selector"].get(COLOR_LABEL).is_some()
        })
        .map(|(i, _)| i)
        .collect();
    let service = match services.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "--strategy blue-green needs a Service whose spec.selector has the label `{COLOR_LABEL}` (blue or green) in front of the Deployment; the manifests have none"
            ))
        }
        _ => {
            return Err(format!(
                "--strategy blue-green switches one Service; the manifests have {} Services that select `{COLOR_LABEL}`",
                services.len()
            ))
        }
    };
    let selector = objects[service]["spec"]["selector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut deployments = Vec::new();
    let mut colors = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if o["apiVersion"] != "apps/v1" || o["kind"] != "Deployment" {
            continue;
        }
        let pod_labels = &o["spec"]["template"]["metadata"]["labels"];
        let selected = selector
            .iter()
            .filter(|(k, _)| k.as_str() != COLOR_LABEL)
            .all(|(k, v)| &pod_labels[k.as_str()] == v);
        if !selected {
            continue;
        }
        let Some(color) = color_label(pod_labels) else {
            return Err(format!(
                "Deployment {}: its pods are behind the blue-green Service but carry no `{COLOR_LABEL}: blue|green` label",
                o["metadata"]["name"].as_str().unwrap_or("?")
            ));
        };
        if o["spec"]["selector"]["matchLabels"][COLOR_LABEL] != color.as_str() {
            return Err(format!(
                "Deployment {}: spec.selector.matchLabels must include `{COLOR_LABEL}: {color}` so that each color has its own pods",
                o["metadata"]["name"].as_str().unwrap_or("?")
            ));
        }
        deployments.push(i);
        colors.push(color);
    }
    let Some(&rendered) = colors.first() else {
        return Err(format!(
            "--strategy blue-green: no Deployment's pods match the selector of Service {}",
            objects[service]["metadata"]["name"].as_str().unwrap_or("?")
        ));
    };
    if colors.iter().any(|c| *c != rendered) {
        return Err("--strategy blue-green: the Deployments behind the Service are rendered with different colors; render one color".into());
    }
    Ok(Target {
        service,
        deployments,
        rendered,
    })
}

/// The name of an object's counterpart in the other color (`api-blue` -> `api-green`).
pub fn counterpart(name: &str, from: Color, to: Color) -> Option<String> {
    name.strip_suffix(&format!("-{from}"))
        .map(|base| format!("{base}-{to}"))
}

fn replace_strings(value: &mut Value, renames: &[(String, String)]) {
    match value {
        Value::String(s) => {
            if let Some((_, new)) = renames.iter().find(|(old, _)| old == s) {
                *s = new.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, renames)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, renames)),
        _ => {}
    }
}

/// Turns the objects of one color into the other. The objects of a color are those labelled
/// `color: from`, and those named like one of them (a chart's ConfigMap, PodDisruptionBudget or
/// HorizontalPodAutoscaler named after its Deployment): their `color` labels (also in
/// selectors and pod templates) become `to`, names ending in `-from` end in `-to`, and
/// references between them follow the new names. The Service is left alone.
pub fn recolor(objects: &mut [Value], from: Color, to: Color) {
    if from == to {
        return;
    }
    let labelled: Vec<String> = objects
        .iter()
        .filter(|o| color_label(&o["metadata"]["labels"]) == Some(from))
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let colored = |o: &Value| {
        o["kind"] != "Service"
            && (color_label(&o["metadata"]["labels"]) == Some(from)
                || o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| labelled.iter().any(|l| l == n)))
    };
    let renames: Vec<(String, String)> = objects
        .iter()
        .filter(|o| colored(o))
        .filter_map(|o| {
            let name = o["metadata"]["name"].as_str()?;
            Some((name.to_string(), counterpart(name, from, to)?))
        })
        .collect();
    let members: Vec<bool> = objects.iter().map(colored).collect();
    for (o, _) in objects.iter_mut().zip(members).filter(|(_, m)| *m) {
        replace_strings(o, &renames);
        for pointer in [
            "/metadata/labels",
            "/spec/selector/matchLabels",
            "/spec/template/metadata/labels",
        ] {
            if let Some(labels) = o.pointer_mut(pointer) {
                if color_label(labels) == Some(from) {
                    labels[COLOR_LABEL] = json!(to.as_str());
                }
            }
        }
    }
}

/// The Service selecting `color`.
pub fn selecting(service: &Value, color: Color) -> Value {
    let mut s = service.clone();
    s["spec"]["selector"][COLOR_LABEL] = json!(color.as_str());
    s
}

/// The color the live Service selects: None when there is no such Service (`Ok(None)`) or
/// its selector has no color (`Ok(Some(None))`).
pub async fn serving(
    cluster: &Cluster,
    service: &ObjectId,
) -> Result<Option<Option<Color>>, String> {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), &service.namespace);
    match api.get_opt(&service.name).await {
        Ok(None) => Ok(None),
        Ok(Some(s)) => {
            Ok(Some(s.spec.and_then(|s| s.selector).and_then(|sel| {
                sel.get(COLOR_LABEL).and_then(|c| Color::parse(c))
            })))
        }
        Err(e) => Err(format!(
            "cannot read {service}: {}",
            crate::cluster::describe(&e)
        )),
    }
}

/// Ready pods and wanted replicas of a Deployment (None when it does not exist).
pub async fn ready(cluster: &Cluster, id: &ObjectId) -> Result<Option<(i32, i32)>, String> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &id.namespace);
    match api.get_opt(&id.name).await {
        Ok(None) => Ok(None),
        Ok(Some(d)) => Ok(Some((
            d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
            d.spec.replicas.unwrap_or(1),
        ))),
        Err(e) => Err(format!(
            "cannot read {id}: {}",
            crate::cluster::describe(&e)
        )),
    }
}

/// Points the Service at `color` in one server-side apply, after checking that the
/// Deployments of that color have ready pods (a Service must never select none).
pub async fn switch(
    cluster: &Cluster,
    service: &Value,
    color: Color,
    deployments: &[ObjectId],
) -> Result<(), String> {
    for id in deployments {
        match ready(cluster, id).await? {
            Some((r, _)) if r > 0 => {}
            Some(_) => {
                return Err(format!(
                    "{id} has no ready pods; the Service is left as it is"
                ))
            }
            None => return Err(format!("{id} does not exist; the Service is left as it is")),
        }
    }
    let id = ObjectId::of(service);
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), &id.namespace);
    api.patch(
        &id.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(selecting(service, color)),
    )
    .await
    .map(|_| ())
    .map_err(|e| {
        format!(
            "cannot switch {id} to {color}: {}",
            crate::cluster::describe(&e)
        )
    })
}

/// Sets a Deployment's replicas, always by server-side apply with the executor's field
/// manager (a write without one would leave `.spec.replicas` to a manager `unknown`, and the
/// next apply of that color would conflict with it). The applied object is the one the
/// executor applied (`recorded`), else what it owns of the live object (its `managedFields`),
/// with only `spec.replicas` changed: the executor stays the owner of exactly its fields.
pub async fn scale(
    cluster: &Cluster,
    id: &ObjectId,
    replicas: i32,
    recorded: Option<&Value>,
) -> Result<(), String> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &id.namespace);
    let failed = |e: &kube::Error| {
        format!(
            "cannot scale {id} to {replicas}: {}",
            crate::cluster::describe(e)
        )
    };
    let mut object = match recorded {
        Some(object) => object.clone(),
        None => match api.get_opt(&id.name).await {
            Ok(Some(live)) => {
                let live = serde_json::to_value(&live).map_err(|e| e.to_string())?;
                apply::extract(&live, FIELD_MANAGER)
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(failed(&e)),
        },
    };
    object["spec"]["replicas"] = json!(replicas);
    match api
        .patch(
            &id.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(failed(&e)),
    }
}

/// The object with this identity among `objects` (any version of its group).
pub fn recorded<'a>(objects: &'a [Value], id: &ObjectId) -> Option<&'a Value> {
    objects.iter().find(|o| ObjectId::of(o).same_object(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(selector: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
               "spec": {"selector": selector}})
    }

    fn deployment(name: &str, color: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": "shop", "labels": {"app": "api", "color": color}},
               "spec": {"selector": {"matchLabels": {"app": "api", "color": color}},
                        "template": {"metadata": {"labels": {"app": "api", "color": color}},
                                     "spec": {"containers": [{"name": "api", "image": "api:1",
                                        "envFrom": [{"configMapRef": {"name": format!("{name}-config")}}]}],
                                        "volumes": [{"name": "c", "configMap": {"name": name}}]}}}})
    }

    #[test]
    fn finds_the_service_and_the_deployments_it_selects() {
        let objects = [
            service(json!({"app": "api", "color": "blue"})),
            deployment("api-blue", "blue"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
                   "spec": {"template": {"metadata": {"labels": {"app": "worker"}}}}}),
        ];
        let refs: Vec<&Value> = objects.iter().collect();
        let t = find(&refs).unwrap();
        assert_eq!(
            t,
            Target {
                service: 0,
                deployments: vec![1],
                rendered: Color::Blue
            }
        );
    }

    #[test]
    fn refuses_manifests_it_cannot_switch() {
        let no_color = [
            service(json!({"app": "api"})),
            deployment("api-blue", "blue"),
        ];
        let refs: Vec<&Value> = no_color.iter().collect();
        assert!(find(&refs).unwrap_err().contains("needs a Service"));
        let mut uncolored = deployment("api", "blue");
        uncolored["spec"]["template"]["metadata"]["labels"] = json!({"app": "api"});
        let objects = [service(json!({"app": "api", "color": "blue"})), uncolored];
        let refs: Vec<&Value> = objects.iter().collect();
        assert!(find(&refs).unwrap_err().contains("carry no `color"));
        let objects = [
            service(json!({"app": "web", "color": "blue"})),
            deployment("api-blue", "blue"),
        ];
        let refs: Vec<&Value> = objects.iter().collect();
        assert!(find(&refs)
            .unwrap_err()
            .contains("no Deployment's pods match"));
    }

    #[test]
    fn recolors_names_labels_selectors_and_references() {
        let mut objects = vec![
            service(json!({"app": "api", "color": "blue"})),
            deployment("api-blue", "blue"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "api-blue", "labels": {"color": "blue"}}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api-blue"}}),
        ];
        objects.push(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "api-blue"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-blue"}}}));
        objects.push(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "api-blue"},
            "spec": {"selector": {"matchLabels": {"app": "api", "color": "blue"}}}}),
        );
        objects.push(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared-blue"}}),
        );
        recolor(&mut objects, Color::Blue, Color::Green);
        assert_eq!(objects[4]["metadata"]["name"], "api-green");
        assert_eq!(objects[4]["spec"]["scaleTargetRef"]["name"], "api-green");
        assert_eq!(objects[5]["metadata"]["name"], "api-green");
        assert_eq!(
            objects[5]["spec"]["selector"]["matchLabels"]["color"],
            "green"
        );
        // Neither labelled nor named like an object of the color: left alone.
        assert_eq!(objects[6]["metadata"]["name"], "shared-blue");
        let d = &objects[1];
        assert_eq!(d["metadata"]["name"], "api-green");
        assert_eq!(d["metadata"]["labels"]["color"], "green");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["color"], "green");
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["color"],
            "green"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
            "api-green"
        );
        // Not an object of the color: left alone.
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
            "api-blue-config"
        );
        assert_eq!(objects[2]["metadata"]["name"], "api-green");
        // Named like the Deployment: part of its color.
        assert_eq!(objects[3]["metadata"]["name"], "api-green");
        assert_eq!(objects[0]["spec"]["selector"]["color"], "blue");
        assert_eq!(
            selecting(&objects[0], Color::Green)["spec"]["selector"],
            json!({"app": "api", "color": "green"})
        );
    }

    #[test]
    fn colors_and_counterparts() {
        assert_eq!(Color::Blue.other(), Color::Green);
        assert_eq!(Color::parse("green"), Some(Color::Green));
        assert_eq!(Color::parse("red"), None);
        assert_eq!(
            counterpart("api-blue", Color::Blue, Color::Green).as_deref(),
            Some("api-green")
        );
        assert_eq!(counterpart("api", Color::Blue, Color::Green), None);
    }
}
