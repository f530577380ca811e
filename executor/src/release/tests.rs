//! Release records: encoding, statuses and the choices made from a history.

use serde_json::json;

use super::*;

fn record(revision: u32, status: Status) -> Record {
    Record {
        name: "api".into(),
        namespace: "shop".into(),
        revision,
        status,
        operation: Operation::Upgrade,
        phase: None,
        description: String::new(),
        started: "2030-01-01T00:00:00Z".into(),
        updated: "2030-01-01T00:00:00Z".into(),
        digest: "sha256:x".into(),
        objects: vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{revision}"), "namespace": "shop"}}),
        ],
        created: vec![],
        previous: None,
        rollback_of: None,
        gates: vec![],
        blue_green: None,
    }
}

#[test]
fn round_trips_through_gzip() {
    let r = record(3, Status::Deployed);
    let bytes = encode(&r).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    assert_eq!(decode(&bytes).unwrap(), r);
    assert!(decode(b"not gzip").is_err());
}

#[test]
fn statuses_serialize_in_kebab_case() {
    assert_eq!(
        serde_json::to_value(Status::RolledBack).unwrap(),
        json!("rolled-back")
    );
    assert_eq!(Status::RolledBack.to_string(), "rolled-back");
}

#[test]
fn current_and_rollback_targets() {
    let records = vec![
        record(1, Status::Superseded),
        record(2, Status::RolledBack),
        record(3, Status::Superseded),
        record(4, Status::Deployed),
    ];
    assert_eq!(current(&records).unwrap().revision, 4);
    assert_eq!(default_rollback_target(&records).unwrap().revision, 3);
    assert_eq!(next_revision(&records), 5);
    // An interrupted upgrade after the current release: roll back to the current one.
    let mut with_pending = records.clone();
    with_pending.push(record(5, Status::Pending));
    assert_eq!(default_rollback_target(&with_pending).unwrap().revision, 4);
    assert_eq!(interrupted(&with_pending).len(), 1);
    assert!(default_rollback_target(&[record(1, Status::Deployed)]).is_none());
}

#[test]
fn history_max_keeps_current_and_pending() {
    let records = vec![
        record(1, Status::Superseded),
        record(2, Status::Deployed),
        record(3, Status::Failed),
        record(4, Status::Pending),
    ];
    assert_eq!(beyond_history_max(&records, 2), vec![1, 3]);
    assert!(beyond_history_max(&records, 10).is_empty());
}

#[test]
fn removed_objects_ignore_the_version() {
    let id = |v: &str, name: &str| ObjectId {
        api_version: v.into(),
        kind: "Deployment".into(),
        namespace: "shop".into(),
        name: name.into(),
    };
    let before = vec![id("apps/v1", "a"), id("apps/v1", "b")];
    let after = vec![id("apps/v1beta2", "a")];
    assert_eq!(removed(&before, &after), vec![id("apps/v1", "b")]);
}

#[test]
fn only_the_newest_pending_revision_can_be_paused_for_promotion() {
    use crate::analysis::Gates;
    use crate::strategy::blue_green::{Color, State};
    let state = State {
        service: ObjectId::of(
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"}}),
        ),
        color: Color::Green,
        active: Some(Color::Blue),
        deployments: vec![],
        old_deployments: vec![],
        switched: false,
        gates: Gates::default(),
        scale_down_delay: std::time::Duration::from_secs(30),
    };
    let mut paused_record = record(3, Status::Pending);
    paused_record.phase = Some(Phase::Paused);
    paused_record.blue_green = Some(state);
    let records = vec![record(2, Status::Deployed), paused_record.clone()];
    assert_eq!(paused(&records).map(|r| r.revision), Some(3));
    // Survives the record format.
    let back = decode(&encode(&paused_record).unwrap()).unwrap();
    assert_eq!(back, paused_record);
    let mut later = records.clone();
    later.push(record(4, Status::Pending));
    assert!(paused(&later).is_none());
    let mut waiting = paused_record;
    waiting.phase = Some(Phase::Waiting);
    assert!(paused(&[waiting]).is_none());
}
