//! URL query parameters, decoded and typed with nats-server's error texts (which quote
//! Go's `strconv` messages, so tools that match on them keep working).

use std::collections::HashMap;

/// A bad query parameter, worded as nats-server words it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error(
        "Error decoding boolean for '{key}': strconv.ParseBool: parsing \"{value}\": invalid syntax"
    )]
    Bool { key: String, value: String },
    #[error("Error decoding int for '{key}': strconv.Atoi: parsing \"{value}\": invalid syntax")]
    Int { key: String, value: String },
    #[error(
        "Error decoding uint64 for '{key}': strconv.ParseUint: parsing \"{value}\": invalid syntax"
    )]
    Uint { key: String, value: String },
    /// Any endpoint-specific refusal (sort options, states, unknown accounts ...).
    #[error("{0}")]
    Other(String),
}

/// Decoded query parameters; the first value of a repeated key wins, as Go's
/// `url.Values.Get` does.
#[derive(Debug, Default)]
pub struct Query {
    values: HashMap<String, String>,
}

impl Query {
    pub fn parse(raw: &str) -> Self {
        let mut values = HashMap::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            values
                .entry(percent_decode(k))
                .or_insert_with(|| percent_decode(v));
        }
        Self { values }
    }

    /// The raw value, if present and non-empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A boolean as Go's `strconv.ParseBool` reads it; absent means false.
    pub fn bool(&self, key: &str) -> Result<bool, QueryError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| QueryError::Bool {
                key: key.into(),
                value: v.into(),
            }),
        }
    }

    /// An int as `strconv.Atoi` reads it; absent means 0.
    pub fn int(&self, key: &str) -> Result<i64, QueryError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => v.parse::<i64>().map_err(|_| QueryError::Int {
                key: key.into(),
                value: v.into(),
            }),
        }
    }

    /// An unsigned 64-bit int; absent means 0.
    pub fn uint(&self, key: &str) -> Result<u64, QueryError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => v.parse::<u64>().map_err(|_| QueryError::Uint {
                key: key.into(),
                value: v.into(),
            }),
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; malformed
/// escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_types() {
        let q = Query::parse("acc=%24G&subs=1&limit=abc&x=a+b&bad=%zz&end=%2");
        assert_eq!(q.get("acc"), Some("$G"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("end"), Some("%2"));
        assert_eq!(q.bool("subs"), Ok(true));
        assert_eq!(q.bool("missing"), Ok(false));
        assert_eq!(
            q.int("limit").map_err(|e| e.to_string()),
            Err(
                "Error decoding int for 'limit': strconv.Atoi: parsing \"abc\": invalid syntax"
                    .into()
            )
        );
    }
}
