//! `mappings {}` (alias `maps`): subject mappings of the global account at the top level,
//! and of one account inside `accounts { A { mappings {} } }`. Checked here as
//! nats-server's `parseAccountMappings` checks them, with its error texts, so that a bad
//! mapping stops the server at start (or a reload) instead of at the first publish.
//!
//! Forms: `"src": "dest"`, one map `"src": {destination, weight, cluster}`, or a list of
//! such maps for weighted and cluster-scoped destinations.

use natrix_transform::{MapDest, Mapping, MappingError, go_quote, is_valid_subject};

use super::parse::{Processor, go_value};
use crate::conf::{Entry, Pos, Value};

/// One configured mapping: the source subject and its destinations as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectMapping {
    pub src: String,
    pub dests: Vec<MapDest>,
}

impl SubjectMapping {
    /// The mapping ready to apply. Parsing already built it once, so this only fails
    /// for a `SubjectMapping` made by hand.
    pub fn build(&self) -> Result<Mapping, MappingError> {
        Mapping::new(&self.src, &self.dests)
    }
}

/// Parses a `mappings` entry; bad entries are reported and left out, the rest kept.
pub(super) fn mappings(p: &mut Processor, e: &Entry) -> Vec<SubjectMapping> {
    let Some(map) = p.map(&e.key_pos, &e.value.value) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for me in map.iter() {
        let src = me.key.as_str();
        if !is_valid_subject(src) {
            // nats-server points at the whole `mappings` block here.
            p.error(
                &e.key_pos,
                format!("Subject {} is not a valid subject", go_quote(src)),
            );
            continue;
        }
        let (dests, with_dest) = match &me.value.value {
            Value::String(dest) => (vec![MapDest::new(dest.clone(), 100)], Some(dest)),
            Value::Array(items) => (
                items
                    .iter()
                    .filter_map(|item| destination(p, &item.value, &item.pos))
                    .collect(),
                None,
            ),
            other => match destination(p, other, &me.key_pos) {
                Some(d) => (vec![d], None),
                None => continue,
            },
        };
        match Mapping::new(src, &dests) {
            Ok(_) => out.push(SubjectMapping {
                src: src.to_owned(),
                dests,
            }),
            Err(err) => {
                let msg = match with_dest {
                    Some(dest) => format!(
                        "Error adding mapping for {} to {} : {err}",
                        go_quote(src),
                        go_quote(dest)
                    ),
                    None => format!("Error adding mapping for {} : {err}", go_quote(src)),
                };
                p.error(&me.key_pos, msg);
            }
        }
    }
    out
}

/// One `{destination, weight, cluster}` map (nats-server's `parseAccountMapDest`).
fn destination(p: &mut Processor, v: &Value, pos: &Pos) -> Option<MapDest> {
    let Value::Map(m) = v else {
        p.error(pos, "Expected an entry for the mapping destination");
        return None;
    };
    let mut d = MapDest::new(String::new(), 0);
    let mut weight_set = false;
    for fe in m.iter() {
        let at = &fe.key_pos;
        match fe.key.to_lowercase().as_str() {
            "dest" | "destination" => d.subject = p.string(at, &fe.value.value)?,
            "weight" => {
                let weight = match &fe.value.value {
                    Value::String(s) => {
                        let ws = s.strip_suffix('%').unwrap_or(s);
                        let Ok(w) = ws.parse::<i64>() else {
                            p.error(
                                at,
                                format!("Invalid weight {} for mapping destination", go_quote(ws)),
                            );
                            return None;
                        };
                        w
                    }
                    Value::Int(w) => *w,
                    other => {
                        // nats-server's text ends in a newline.
                        p.error(
                            at,
                            format!("Unknown entry type for weight of {}\n", go_value(other)),
                        );
                        return None;
                    }
                };
                let Some(w) = u8::try_from(weight).ok().filter(|w| *w <= 100) else {
                    p.error(
                        at,
                        format!("Invalid weight {weight} for mapping destination"),
                    );
                    return None;
                };
                d.weight = w;
                weight_set = true;
            }
            "cluster" => d.cluster = p.string(at, &fe.value.value)?,
            _ => {
                p.error(
                    at,
                    format!(
                        "Unknown field {} for mapping destination",
                        go_quote(&fe.key)
                    ),
                );
                return None;
            }
        }
    }
    if !weight_set {
        p.error(
            pos,
            format!(
                "Missing weight for mapping destination {}",
                go_quote(&d.subject)
            ),
        );
        return None;
    }
    Some(d)
}
