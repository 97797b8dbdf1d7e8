//! The three patch types the API server takes: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902, via the json-patch crate) and strategic merge patch for the fields kubectl and
//! controllers send (lists merged by their Kubernetes merge keys, `$patch` directives).

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchType {
    Merge,
    Strategic,
    Json,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Why a patch was refused: the body is not a patch of its type (400 at the API), or it is
/// one but cannot apply to the object (422).
#[derive(Debug, Clone, PartialEq)]
pub enum PatchError {
    Malformed(String),
    NotApplicable(String),
}

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(m) | Self::NotApplicable(m) => f.write_str(m),
        }
    }
}

/// Applies `patch` to `target`; on error `target` is unchanged.
pub fn apply(target: &mut Value, patch_type: PatchType, patch: &[u8]) -> Result<(), PatchError> {
    use PatchError::{Malformed, NotApplicable};
    match patch_type {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_slice(patch)
                .map_err(|e| Malformed(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(target, &p)
                .map_err(|e| NotApplicable(format!("the JSON patch could not be applied: {e}")))
        }
        PatchType::Merge => {
            let p: Value = serde_json::from_slice(patch)
                .map_err(|e| Malformed(format!("invalid merge patch: {e}")))?;
            if !p.is_object() {
                return Err(Malformed("a merge patch must be a JSON object".into()));
            }
            json_patch::merge(target, &p);
            Ok(())
        }
        PatchType::Strategic => {
            let p: Value = serde_json::from_slice(patch)
                .map_err(|e| Malformed(format!("invalid strategic merge patch: {e}")))?;
            let Value::Object(p) = p else {
                return Err(Malformed(
                    "a strategic merge patch must be a JSON object".into(),
                ));
            };
            strategic_merge(target, &p, "");
            Ok(())
        }
    }
}

/// The merge key of a list field, by the field's name, as the Kubernetes types declare it.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" => "containerPort",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "tolerations" | "taints" => return None,
        "finalizers" => return None,
        _ => return None,
    })
}

fn strategic_merge(target: &mut Value, patch: &Map<String, Value>, field: &str) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = patch.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let _ = field;
    let Some(obj) = target.as_object_mut() else {
        return;
    };
    for (k, v) in patch {
        if k.starts_with("$setElementOrder/") || k.starts_with("$retainKeys") || k == "$patch" {
            continue;
        }
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(existing)), Value::Array(del)) = (obj.get_mut(list_field), v)
            {
                existing.retain(|x| !del.contains(x));
            }
            continue;
        }
        match v {
            Value::Null => {
                obj.remove(k);
            }
            Value::Object(pm) => {
                let entry = obj.entry(k.clone()).or_insert(Value::Object(Map::new()));
                strategic_merge(entry, pm, k);
            }
            Value::Array(items) => match (merge_key(k), obj.get_mut(k)) {
                (Some(key), Some(Value::Array(existing))) => merge_list(existing, items, key),
                _ => {
                    obj.insert(k.clone(), Value::Array(items.clone()));
                }
            },
            other => {
                obj.insert(k.clone(), other.clone());
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let Some(im) = item.as_object() else {
            existing.push(item.clone());
            continue;
        };
        let id = im.get(key).cloned().unwrap_or(Value::Null);
        let pos = existing.iter().position(|e| e.get(key) == Some(&id));
        let delete = im.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut existing[i], im, key),
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, im, key);
                existing.push(fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_patch_cordons_and_uncordons_like_kubectl() {
        let mut node = json!({"spec": {"podCIDR": "10.0.0.0/24"}});
        apply(
            &mut node,
            PatchType::Strategic,
            br#"{"spec":{"unschedulable":true}}"#,
        )
        .unwrap();
        assert_eq!(node["spec"]["unschedulable"], true);
        apply(
            &mut node,
            PatchType::Strategic,
            br#"{"spec":{"unschedulable":null}}"#,
        )
        .unwrap();
        assert_eq!(node, json!({"spec": {"podCIDR": "10.0.0.0/24"}}));
    }

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}});
        let p = br#"{"spec":{"containers":[{"name":"b","image":"y:2"}],"$setElementOrder/containers":[{"name":"a"},{"name":"b"}]}}"#;
        apply(&mut pod, PatchType::Strategic, p).unwrap();
        assert_eq!(pod["spec"]["containers"][0]["image"], "x:1");
        assert_eq!(pod["spec"]["containers"][1]["image"], "y:2");
    }

    #[test]
    fn json_patch_replaces_template_as_rollout_undo_sends_it() {
        let mut d =
            json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"template": {"x": 1}}});
        let p = br#"[{"op":"replace","path":"/spec/template","value":{"x":2}},{"op":"replace","path":"/metadata/annotations","value":{"b":"2"}}]"#;
        apply(&mut d, PatchType::Json, p).unwrap();
        assert_eq!(
            d,
            json!({"metadata": {"annotations": {"b": "2"}}, "spec": {"template": {"x": 2}}})
        );
    }

    #[test]
    fn bad_patches_are_reported_not_applied() {
        let mut d = json!({"a": 1});
        assert!(
            apply(
                &mut d,
                PatchType::Json,
                br#"[{"op":"replace","path":"/nope/x","value":1}]"#
            )
            .is_err()
        );
        assert!(apply(&mut d, PatchType::Merge, b"[1]").is_err());
        assert!(apply(&mut d, PatchType::Strategic, b"{not json").is_err());
        assert_eq!(d, json!({"a": 1}));
    }
}
