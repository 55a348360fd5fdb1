//! The CRD field reference for `docs/operator.md`, generated from the schema so the docs
//! cannot drift from the API (a test compares them).

use std::fmt::Write as _;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::crd::NatsCluster;

/// Marker lines around the generated section in the docs.
pub const BEGIN: &str = "<!-- BEGIN GENERATED CRD REFERENCE (natrix-operator crdref) -->";
pub const END: &str = "<!-- END GENERATED CRD REFERENCE -->";

fn type_of(s: &Value) -> String {
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && s.get("properties").is_none()
    {
        return "object (free-form)".into();
    }
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "int or string".into();
    }
    match s.get("type").and_then(Value::as_str) {
        Some("array") => format!("[]{}", s.get("items").map_or_else(|| "?".into(), type_of)),
        Some("object") if s.get("additionalProperties").is_some() => "map[string]string".into(),
        Some(t) => t.to_string(),
        None => "any".into(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn walk(out: &mut String, path: &str, s: &Value, depth: usize) {
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, p) in props {
        let here = format!("{path}.{name}");
        let mut notes = Vec::new();
        if required.contains(&name.as_str()) {
            notes.push("required".to_string());
        }
        if let Some(d) = p.get("default") {
            notes.push(format!("default `{d}`"));
        }
        if let Some(e) = p.get("enum").and_then(Value::as_array) {
            let vals: Vec<String> = e
                .iter()
                .map(|v| v.as_str().unwrap_or("?").to_string())
                .collect();
            notes.push(format!("one of {}", vals.join(", ")));
        }
        for (k, label) in [
            ("minimum", "min"),
            ("maximum", "max"),
            ("minLength", "min length"),
            ("minItems", "min items"),
        ] {
            if let Some(v) = p.get(k) {
                notes.push(format!("{label} {v}"));
            }
        }
        if let Some(r) = p.get("pattern").and_then(Value::as_str) {
            notes.push(format!("pattern `{r}`"));
        }
        let rules = p
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|r| r.get("message").and_then(Value::as_str))
                    .map(|m| format!("rule: {m}"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        notes.extend(rules);
        let desc = p.get("description").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            cell(&here),
            cell(&type_of(p)),
            cell(desc),
            cell(&notes.join("; "))
        );
        // Kubernetes' own types (resources, tolerations) are documented upstream.
        let k8s_type = matches!(name.as_str(), "resources" | "tolerations" | "conditions");
        if depth < 6 && !k8s_type {
            walk(out, &here, p, depth + 1);
            if let Some(items) = p.get("items") {
                walk(out, &format!("{here}[]"), items, depth + 1);
            }
        }
    }
}

/// The markdown tables of the spec and status fields, between [`BEGIN`] and [`END`].
pub fn markdown() -> String {
    let crd = serde_json::to_value(NatsCluster::crd()).unwrap_or(Value::Null);
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN}");
    for part in ["spec", "status"] {
        let _ = writeln!(out, "\n#### `{part}`\n");
        let _ = writeln!(out, "| field | type | description | validation |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        walk(&mut out, part, &schema["properties"][part], 0);
    }
    if let Some(rules) = schema["properties"]["spec"]
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        let _ = writeln!(out, "\nRules on the whole spec:\n");
        for r in rules {
            let _ = writeln!(
                out,
                "- {} (`{}`)",
                r["message"].as_str().unwrap_or(""),
                r["rule"].as_str().unwrap_or("")
            );
        }
    }
    let _ = writeln!(out, "\n{END}");
    out
}
