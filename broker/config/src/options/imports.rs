//! Account exports and imports (`accounts { A { exports: [...], imports: [...] } }`), read
//! as nats-server's `parseAccountExports`/`parseAccountImports` read them and checked
//! across accounts as its `parseAccounts` does once every account is known: each import
//! must name a defined account whose exports authorize it, a stream prefix must be a
//! literal, and no chain of imports may lead back to where it started. The error texts are
//! nats-server's, so `natrix-server -t` rejects the same configs with the same words.
//!
//! The checks are plain functions over these types so the server can run the same ones
//! for imports that come from account JWTs.

use std::time::Duration;

use natrix_transform::{go_quote, is_valid_subject};

use super::parse::Processor;
use crate::conf::{Entry, Pos, Value};
use crate::duration::parse_go_duration;

/// How a service export answers (`response_type`): one reply per request, or a stream of
/// them until the threshold (chunked: the same, for large replies split in parts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResponseType {
    #[default]
    Singleton,
    Stream,
    Chunked,
}

impl ResponseType {
    /// The name nats-server prints in `/accountz` (its `String()`; JWTs say `Stream`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Singleton => "Singleton",
            Self::Stream => "Streamed",
            Self::Chunked => "Chunked",
        }
    }
}

/// nats-server's default `response_threshold`: how long a service import keeps the way
/// back for a reply.
pub const DEFAULT_RESPONSE_THRESHOLD: Duration = Duration::from_secs(120);

/// `latency { sampling, subject }` of a service export; `sampling` 0 means "headers"
/// (sample only requests that carry tracing headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    pub sampling: u8,
    pub subject: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Stream,
    Service,
}

impl ExportKind {
    fn word(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Service => "service",
        }
    }
}

/// One export of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub kind: ExportKind,
    pub subject: String,
    /// Accounts allowed to import; `None` makes the export public.
    pub accounts: Option<Vec<String>>,
    pub response_type: ResponseType,
    pub response_threshold: Option<Duration>,
    pub latency: Option<Latency>,
    /// `account_token_position`: the subject token (1-based) that must equal the
    /// importing account's name (0: not used).
    pub token_position: u32,
    pub allow_trace: bool,
    pub pos: Option<Pos>,
}

/// One import of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub kind: ExportKind,
    /// The exporting account.
    pub account: String,
    /// The subject as the exporting account knows it.
    pub subject: String,
    /// The subject in the importing account (`to`, or `prefix.subject`); empty: as in
    /// the exporting account.
    pub to: String,
    pub prefix: String,
    /// Service imports: share the requester's details with the exporter (latency).
    pub share: bool,
    pub allow_trace: bool,
    pub pos: Option<Pos>,
}

impl Import {
    /// The subject in the importing account.
    pub fn local_subject(&self) -> String {
        if !self.prefix.is_empty() {
            let sep = if self.prefix.ends_with('.') { "" } else { "." };
            format!("{}{sep}{}", self.prefix, self.subject)
        } else if self.to.is_empty() {
            self.subject.clone()
        } else {
            self.to.clone()
        }
    }
}

/// Why an import is refused (nats-server's `Err*` texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("stream import not authorized")]
    StreamNotAuthorized,
    #[error("service import not authorized")]
    ServiceNotAuthorized,
    #[error("stream import prefix can not contain wildcard tokens")]
    BadPrefix,
    #[error("import forms a cycle")]
    Cycle,
    #[error("stream import already exists")]
    Duplicate,
    #[error("invalid subject")]
    InvalidSubject,
}

/// Whether `exports` (of the account `exporter`) let the account `importer` import
/// `subject` of the given kind: an export whose subject contains it, public, naming the
/// importer, or carrying its name at the token position. `activation` says an
/// activation token (JWT mode) already vouched for the import.
pub fn authorized(
    exports: &[Export],
    kind: ExportKind,
    importer: &str,
    subject: &str,
    activation: bool,
) -> bool {
    let tokens: Vec<&[u8]> = subject.as_bytes().split(|&b| b == b'.').collect();
    exports.iter().filter(|e| e.kind == kind).any(|e| {
        if !natrix_transform::subset_match(&tokens, &e.subject) {
            return false;
        }
        if activation {
            return true;
        }
        if e.token_position > 0 {
            let pos = e.token_position as usize - 1;
            return tokens.get(pos).is_some_and(|t| *t == importer.as_bytes());
        }
        match &e.accounts {
            None => true,
            Some(list) => list.iter().any(|a| a == importer),
        }
    })
}

/// nats-server's `SubjectsCollide`: whether some literal subject matches both.
pub fn subjects_collide(a: &str, b: &str) -> bool {
    let ta: Vec<&str> = a.split('.').collect();
    let tb: Vec<&str> = b.split('.').collect();
    for i in 0..ta.len().max(tb.len()) {
        match (ta.get(i), tb.get(i)) {
            (Some(&">"), _) | (_, Some(&">")) => return true,
            (Some(x), Some(y)) => {
                if *x != "*" && *y != "*" && x != y {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Whether every subject `a` matches is matched by `b`.
fn subset(a: &str, b: &str) -> bool {
    let tokens: Vec<&[u8]> = a.as_bytes().split(|&b| b == b'.').collect();
    natrix_transform::subset_match(&tokens, b)
}

/// Finds an import cycle that adding `import` to `importer` would make, following
/// imports of the kind from account to account as nats-server's
/// `check{Service,Stream}ImportsForCycles` does. `imports_of` gives an account's imports;
/// `exports_of` its exports (stream cycles only follow accounts that re-export).
pub fn forms_cycle<'a>(
    importer: &str,
    import: &Import,
    imports_of: &dyn Fn(&str) -> &'a [Import],
    exports_of: &dyn Fn(&str) -> &'a [Export],
) -> bool {
    let mut visited = vec![importer.to_owned()];
    match import.kind {
        ExportKind::Service => {
            // The request lands in the exporter under `subject`: a cycle is a path of
            // service imports from there back to an account already on the path.
            service_cycle(
                &import.account,
                &import.subject,
                &mut visited,
                imports_of,
                0,
            )
        }
        ExportKind::Stream => {
            let to = import.local_subject();
            stream_cycle(
                &import.account,
                &to,
                &mut visited,
                imports_of,
                exports_of,
                0,
            ) || stream_cycle(
                &import.account,
                &import.subject,
                &mut visited,
                imports_of,
                exports_of,
                0,
            )
        }
    }
}

/// nats-server's `MaxAccountCycleSearchDepth`.
const MAX_DEPTH: usize = 1024;

fn service_cycle<'a>(
    account: &str,
    from: &str,
    visited: &mut Vec<String>,
    imports_of: &dyn Fn(&str) -> &'a [Import],
    depth: usize,
) -> bool {
    if depth >= MAX_DEPTH {
        return true;
    }
    for si in imports_of(account)
        .iter()
        .filter(|i| i.kind == ExportKind::Service)
    {
        if !subjects_collide(from, &si.local_subject()) {
            continue;
        }
        if visited.contains(&si.account) {
            return true;
        }
        visited.push(account.to_owned());
        let next = if subset(&si.subject, from) {
            si.subject.as_str()
        } else {
            from
        };
        if service_cycle(&si.account, next, visited, imports_of, depth + 1) {
            return true;
        }
    }
    false
}

fn stream_cycle<'a>(
    account: &str,
    to: &str,
    visited: &mut Vec<String>,
    imports_of: &dyn Fn(&str) -> &'a [Import],
    exports_of: &dyn Fn(&str) -> &'a [Export],
    depth: usize,
) -> bool {
    if depth >= MAX_DEPTH {
        return true;
    }
    let exports = exports_of(account);
    if !exports
        .iter()
        .any(|e| e.kind == ExportKind::Stream && subset(to, &e.subject))
    {
        return false;
    }
    for si in imports_of(account)
        .iter()
        .filter(|i| i.kind == ExportKind::Stream)
    {
        let si_to = si.local_subject();
        if !subjects_collide(to, &si_to) {
            continue;
        }
        if visited.contains(&si.account) {
            return true;
        }
        visited.push(account.to_owned());
        let next = if subset(&si_to, to) {
            si_to.as_str()
        } else {
            to
        };
        if stream_cycle(
            &si.account,
            next,
            visited,
            imports_of,
            exports_of,
            depth + 1,
        ) {
            return true;
        }
    }
    false
}

/// Parses `exports: [...]` of `account`; bad entries are reported and left out.
pub(super) fn exports(p: &mut Processor, e: &Entry) -> Vec<Export> {
    let Value::Array(items) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Exports should be an array, got {}",
                e.value.value.go_type()
            ),
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| export(p, &item.value, &item.pos))
        .collect()
}

fn export(p: &mut Processor, v: &Value, pos: &Pos) -> Option<Export> {
    let Value::Map(m) = v else {
        p.error(
            pos,
            format!(
                "Export Items should be a map with type entry, got {}",
                v.go_type()
            ),
        );
        return None;
    };
    let mut kind: Option<ExportKind> = None;
    let mut subject = String::new();
    let mut ex = Export {
        kind: ExportKind::Stream,
        subject: String::new(),
        accounts: None,
        response_type: ResponseType::Singleton,
        response_threshold: None,
        latency: None,
        token_position: 0,
        allow_trace: false,
        pos: Some(pos.clone()),
    };
    let mut service_only: Option<(Pos, &str)> = None;
    let mut ok = true;
    for fe in m.iter() {
        let at = &fe.key_pos;
        let fv = &fe.value.value;
        match fe.key.to_lowercase().as_str() {
            k @ ("stream" | "service") => {
                let k = if k == "stream" {
                    ExportKind::Stream
                } else {
                    ExportKind::Service
                };
                if let Some(prev) = kind
                    && prev != k
                {
                    p.error(
                        at,
                        format!(
                            "Detected {} {} but already saw a {}",
                            k.word(),
                            go_quote(&crate::options::parse::go_value(fv)),
                            prev.word()
                        ),
                    );
                    ok = false;
                    continue;
                }
                let Value::String(s) = fv else {
                    p.error(
                        at,
                        format!(
                            "Expected {} name to be string, got {}",
                            k.word(),
                            fv.go_type()
                        ),
                    );
                    ok = false;
                    continue;
                };
                kind = Some(k);
                subject.clone_from(s);
            }
            "response" | "response_type" => {
                service_only = Some((at.clone(), "Detected response directive on non-service"));
                let Value::String(s) = fv else {
                    p.error(
                        at,
                        format!("Expected response type to be string, got {}", fv.go_type()),
                    );
                    ok = false;
                    continue;
                };
                ex.response_type = match s.to_lowercase().as_str() {
                    "single" | "singleton" => ResponseType::Singleton,
                    "stream" => ResponseType::Stream,
                    "chunk" | "chunked" => ResponseType::Chunked,
                    _ => {
                        p.error(at, format!("Unknown response type: {}", go_quote(s)));
                        ok = false;
                        continue;
                    }
                };
            }
            "threshold" | "response_threshold" | "response_max_time" | "response_time" => {
                service_only = Some((at.clone(), "Detected response directive on non-service"));
                let Value::String(s) = fv else {
                    p.error(
                        at,
                        format!(
                            "Expected response threshold to be a parseable time duration, got {}",
                            fv.go_type()
                        ),
                    );
                    ok = false;
                    continue;
                };
                match parse_go_duration(s) {
                    Ok(ns) if ns >= 0 => {
                        ex.response_threshold =
                            Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)));
                    }
                    _ => {
                        p.error(
                            at,
                            format!(
                                "Expected response threshold to be a parseable time duration, got {}",
                                go_quote(s)
                            ),
                        );
                        ok = false;
                    }
                }
            }
            "accounts" => {
                let Some(list) = p.string_array("accounts", at, fv) else {
                    ok = false;
                    continue;
                };
                ex.accounts = Some(list);
            }
            "latency" => {
                service_only = Some((at.clone(), "Detected latency directive on non-service"));
                match latency(fv) {
                    Ok(l) => ex.latency = Some(l),
                    Err(msg) => {
                        p.error(at, msg);
                        ok = false;
                    }
                }
            }
            "account_token_position" => match fv {
                Value::Int(n) if *n >= 0 => ex.token_position = u32::try_from(*n).unwrap_or(0),
                other => {
                    p.type_error(at, other, "int64");
                    ok = false;
                }
            },
            "allow_trace" => {
                service_only = Some((at.clone(), "Detected allow_trace directive on non-service"));
                match fv {
                    Value::Bool(b) => ex.allow_trace = *b,
                    other => {
                        p.type_error(at, other, "bool");
                        ok = false;
                    }
                }
            }
            _ => p.unknown(fe),
        }
    }
    let kind = kind?;
    if kind == ExportKind::Stream
        && let Some((at, msg)) = service_only
    {
        p.error(&at, msg);
        return None;
    }
    ex.kind = kind;
    ex.subject = subject;
    ok.then_some(ex)
}

/// `latency: "subject"` or `{sampling, subject}` (nats-server's `parseServiceLatency`).
fn latency(v: &Value) -> Result<Latency, String> {
    const DEFAULT_SAMPLING: u8 = 100;
    match v {
        Value::String(s) => Ok(Latency {
            sampling: DEFAULT_SAMPLING,
            subject: s.clone(),
        }),
        Value::Map(m) => {
            let mut sampling = DEFAULT_SAMPLING;
            let mut subject = None;
            for fe in m.iter() {
                match fe.key.as_str() {
                    "sampling" => {
                        let n = match &fe.value.value {
                            Value::Int(n) => *n,
                            Value::String(s) if s.trim().eq_ignore_ascii_case("headers") => 0,
                            Value::String(s) => {
                                let t = s.strip_suffix('%').unwrap_or(s);
                                t.parse::<i64>().map_err(|_| {
                                    format!(
                                        "Failed to parse latency sample: strconv.Atoi: parsing {}: invalid syntax",
                                        go_quote(t)
                                    )
                                })?
                            }
                            other => {
                                return Err(format!(
                                    "Expected latency sample to be a string or map/struct, got {}",
                                    other.go_type()
                                ));
                            }
                        };
                        let headers = matches!(&fe.value.value, Value::String(s) if s.trim().eq_ignore_ascii_case("headers"));
                        if !headers && !(1..=100).contains(&n) {
                            return Err("bad sampling percentage, should be 1-100".into());
                        }
                        sampling = u8::try_from(n).unwrap_or(0);
                    }
                    "subject" => match &fe.value.value {
                        Value::String(s) => subject = Some(s.clone()),
                        other => {
                            return Err(format!(
                                "Expected latency subject to be a string, got {}",
                                other.go_type()
                            ));
                        }
                    },
                    _ => {}
                }
            }
            let subject = subject.ok_or("Latency subject required, but missing")?;
            Ok(Latency { sampling, subject })
        }
        other => Err(format!(
            "Expected latency entry to be a map/struct or string, got {}",
            other.go_type()
        )),
    }
}

/// Parses `imports: [...]`; bad entries are reported and left out.
pub(super) fn imports(p: &mut Processor, e: &Entry) -> Vec<Import> {
    let Value::Array(items) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Imports should be an array, got {}",
                e.value.value.go_type()
            ),
        );
        return Vec::new();
    };
    let mut out: Vec<Import> = Vec::new();
    for item in items {
        let Some(im) = import(p, &item.value, &item.pos) else {
            continue;
        };
        if im.kind == ExportKind::Service {
            let to = im.local_subject();
            if let Some(dup) = out.iter().find(|d| {
                d.kind == ExportKind::Service && d.account == im.account && d.local_subject() == to
            }) {
                p.error(
                    &item.pos,
                    format!(
                        "Duplicate service import subject {}, previously used in import for account {}, subject {}",
                        go_quote(&to),
                        go_quote(&dup.account),
                        go_quote(&dup.subject)
                    ),
                );
                continue;
            }
        }
        out.push(im);
    }
    out
}

fn import(p: &mut Processor, v: &Value, pos: &Pos) -> Option<Import> {
    let Value::Map(m) = v else {
        p.error(
            pos,
            format!(
                "Import Items should be a map with type entry, got {}",
                v.go_type()
            ),
        );
        return None;
    };
    let mut kind: Option<ExportKind> = None;
    let mut im = Import {
        kind: ExportKind::Stream,
        account: String::new(),
        subject: String::new(),
        to: String::new(),
        prefix: String::new(),
        share: false,
        allow_trace: false,
        pos: Some(pos.clone()),
    };
    let mut trace_at = None;
    for fe in m.iter() {
        let at = &fe.key_pos;
        let fv = &fe.value.value;
        match fe.key.to_lowercase().as_str() {
            k @ ("stream" | "service") => {
                let k = if k == "stream" {
                    ExportKind::Stream
                } else {
                    ExportKind::Service
                };
                if let Some(prev) = kind
                    && prev != k
                {
                    p.error(
                        at,
                        format!("Detected {} but already saw a {}", k.word(), prev.word()),
                    );
                    return None;
                }
                let Value::Map(am) = fv else {
                    let what = if k == ExportKind::Stream {
                        "Stream"
                    } else {
                        "Service"
                    };
                    p.error(
                        at,
                        format!(
                            "{what} entry should be an account map, got {}",
                            fv.go_type()
                        ),
                    );
                    return None;
                };
                for ae in am.iter() {
                    match ae.key.to_lowercase().as_str() {
                        "account" => im.account = p.string(&ae.key_pos, &ae.value.value)?,
                        "subject" => im.subject = p.string(&ae.key_pos, &ae.value.value)?,
                        _ => p.unknown(ae),
                    }
                }
                if im.account.is_empty() || im.subject.is_empty() {
                    p.error(at, "Expect an account name and a subject");
                    return None;
                }
                kind = Some(k);
            }
            "prefix" => im.prefix = p.string(at, fv)?,
            "to" => im.to = p.string(at, fv)?,
            "share" => im.share = p.boolean(at, fv)?,
            "allow_trace" => {
                im.allow_trace = p.boolean(at, fv)?;
                trace_at = Some(at.clone());
            }
            _ => p.unknown(fe),
        }
    }
    let kind = kind?;
    im.kind = kind;
    if kind == ExportKind::Stream && !im.prefix.is_empty() && !im.to.is_empty() {
        p.error(
            pos,
            "Stream import can not have a 'prefix' and a 'to' property",
        );
        return None;
    }
    if kind == ExportKind::Service
        && let Some(at) = trace_at
    {
        p.error(&at, "Detected allow_trace directive on a non-stream");
        return None;
    }
    Some(im)
}

/// The cross-account checks, once every account's exports and imports are parsed
/// (nats-server's second pass in `parseAccounts`). Refused imports are reported and
/// removed.
pub(super) fn check(
    p: &mut Processor,
    at: &Pos,
    accounts: &[String],
    exports: &[(String, Vec<Export>)],
    imports: &mut [(String, Vec<Import>)],
) {
    let defined = |name: &str| accounts.iter().any(|a| a == name);
    for (_, list) in exports {
        for e in list {
            for a in e.accounts.iter().flatten() {
                if !defined(a) {
                    let at = e.pos.clone().unwrap_or_else(|| at.clone());
                    p.error(
                        &at,
                        format!(
                            "{} account not defined for {} export",
                            go_quote(a),
                            e.kind.word()
                        ),
                    );
                }
            }
            if !is_valid_subject(&e.subject) {
                let at = e.pos.clone().unwrap_or_else(|| at.clone());
                p.error(
                    &at,
                    format!(
                        "Error adding {} export {}: invalid subject",
                        e.kind.word(),
                        go_quote(&e.subject)
                    ),
                );
            }
        }
    }
    let exports_of = |name: &str| -> &[Export] {
        exports
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[][..], |(_, l)| l.as_slice())
    };
    let snapshot: Vec<(String, Vec<Import>)> = imports.to_vec();
    for (importer, list) in imports.iter_mut() {
        list.retain(|im| {
            let at = im.pos.clone().unwrap_or_else(|| at.clone());
            if !defined(&im.account) {
                p.error(
                    &at,
                    format!(
                        "{} account not defined for {} import",
                        go_quote(&im.account),
                        im.kind.word()
                    ),
                );
                return false;
            }
            let err = import_error(
                importer,
                im,
                exports_of(&im.account),
                &snapshot,
                &exports_of,
            );
            match err {
                None => true,
                Some(err) => {
                    let what = match im.kind {
                        ExportKind::Stream => "stream",
                        ExportKind::Service => "service",
                    };
                    p.error(
                        &at,
                        format!(
                            "Error adding {what} import {}: {err}",
                            go_quote(&im.subject)
                        ),
                    );
                    false
                }
            }
        });
    }
}

fn import_error<'a>(
    importer: &str,
    im: &Import,
    exporter_exports: &[Export],
    all_imports: &'a [(String, Vec<Import>)],
    exports_of: &dyn Fn(&str) -> &'a [Export],
) -> Option<ImportError> {
    if !is_valid_subject(&im.subject) || !is_valid_subject(&im.local_subject()) {
        return Some(ImportError::InvalidSubject);
    }
    if !authorized(exporter_exports, im.kind, importer, &im.subject, false) {
        return Some(match im.kind {
            ExportKind::Stream => ImportError::StreamNotAuthorized,
            ExportKind::Service => ImportError::ServiceNotAuthorized,
        });
    }
    if im.kind == ExportKind::Stream && im.prefix.contains(['*', '>']) {
        return Some(ImportError::BadPrefix);
    }
    let imports_of = |name: &str| -> &'a [Import] {
        all_imports
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[][..], |(_, l)| l.as_slice())
    };
    if forms_cycle(importer, im, &imports_of, exports_of) {
        return Some(ImportError::Cycle);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(kind: ExportKind, subject: &str, accounts: Option<&[&str]>) -> Export {
        Export {
            kind,
            subject: subject.into(),
            accounts: accounts.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
            response_type: ResponseType::Singleton,
            response_threshold: None,
            latency: None,
            token_position: 0,
            allow_trace: false,
            pos: None,
        }
    }

    fn import(kind: ExportKind, account: &str, subject: &str, to: &str) -> Import {
        Import {
            kind,
            account: account.into(),
            subject: subject.into(),
            to: to.into(),
            prefix: String::new(),
            share: false,
            allow_trace: false,
            pos: None,
        }
    }

    #[test]
    fn authorization_follows_public_private_and_token_position() {
        let exports = vec![
            export(ExportKind::Stream, "public.>", None),
            export(ExportKind::Service, "private.>", Some(&["B"])),
        ];
        assert!(authorized(
            &exports,
            ExportKind::Stream,
            "X",
            "public.a",
            false
        ));
        assert!(!authorized(
            &exports,
            ExportKind::Service,
            "X",
            "public.a",
            false
        ));
        assert!(authorized(
            &exports,
            ExportKind::Service,
            "B",
            "private.x",
            false
        ));
        assert!(!authorized(
            &exports,
            ExportKind::Service,
            "C",
            "private.x",
            false
        ));
        assert!(authorized(
            &exports,
            ExportKind::Service,
            "C",
            "private.x",
            true
        ));
        assert!(!authorized(
            &exports,
            ExportKind::Stream,
            "B",
            "other",
            false
        ));
        let mut pos = export(ExportKind::Service, "req.*.>", None);
        pos.token_position = 2;
        assert!(authorized(
            &[pos.clone()],
            ExportKind::Service,
            "ACC",
            "req.ACC.x",
            false
        ));
        assert!(!authorized(
            &[pos],
            ExportKind::Service,
            "ACC",
            "req.OTHER.x",
            false
        ));
    }

    #[test]
    fn subjects_collide_like_nats_server() {
        assert!(subjects_collide("foo.*", "foo.bar"));
        assert!(subjects_collide("foo.>", "foo.bar.baz"));
        assert!(!subjects_collide("foo.bar", "foo.baz"));
        assert!(!subjects_collide("foo.*", "foo.bar.baz"));
        assert!(subjects_collide("*.bar", "foo.*"));
    }

    #[test]
    fn service_import_cycles_are_found() {
        let a_imports = vec![import(ExportKind::Service, "B", "svc", "svc")];
        let b_imports = vec![import(ExportKind::Service, "A", "svc", "svc")];
        let all = [("A".to_owned(), a_imports), ("B".to_owned(), b_imports)];
        let imports_of = |n: &str| -> &[Import] {
            all.iter()
                .find(|(x, _)| x == n)
                .map_or(&[][..], |(_, l)| l.as_slice())
        };
        let exports_of = |_: &str| -> &[Export] { &[] };
        assert!(forms_cycle("A", &all[0].1[0], &imports_of, &exports_of));
        let other = import(ExportKind::Service, "B", "other", "other");
        assert!(!forms_cycle("A", &other, &imports_of, &exports_of));
    }

    #[test]
    fn local_subject_from_prefix_or_to() {
        let mut i = import(ExportKind::Stream, "A", "foo.>", "");
        assert_eq!(i.local_subject(), "foo.>");
        i.prefix = "from_a".into();
        assert_eq!(i.local_subject(), "from_a.foo.>");
        i.prefix = "from_a.".into();
        assert_eq!(i.local_subject(), "from_a.foo.>");
        let s = import(ExportKind::Service, "A", "svc.x", "local.x");
        assert_eq!(s.local_subject(), "local.x");
    }
}
