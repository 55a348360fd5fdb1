//! Creds files: a user JWT and its nkey seed between dashed markers, as `nsc generate creds`
//! writes them and nats.go reads them (`nkeys.ParseDecoratedJWT` / `ParseDecoratedNKey`).
//!
//! Reading follows the Go regular expression without a regex engine: a block is a line ending
//! in a dashed marker (at least 3 dashes, something, at least 3 dashes), one line of
//! `[A-Za-z0-9_\-.=]+`, and a line starting and ending with dashes, followed by a newline.
//! The first block is the JWT, the second the seed.

use crate::{ClaimType, JwtError, decode};
use nkeys::KeyPair;

/// The two secrets in a creds file.
#[derive(Clone, PartialEq, Eq)]
pub struct Creds {
    pub jwt: String,
    pub seed: String,
}

impl std::fmt::Debug for Creds {
    /// Never prints the seed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("jwt", &self.jwt)
            .field("seed", &"<redacted>")
            .finish()
    }
}

impl Creds {
    /// The key pair of the seed, which signs the server's connect nonce.
    pub fn key_pair(&self) -> Result<KeyPair, JwtError> {
        KeyPair::from_seed(&self.seed).map_err(JwtError::NKey)
    }
}

fn is_marker_open(line: &str) -> bool {
    // `[-]{3,}.*[-]{3,}` ending the line, anywhere in it.
    line.ends_with("---") && line[..line.len() - 3].contains("---")
}

fn is_marker_close(line: &str) -> bool {
    line.len() >= 6 && line.starts_with("---") && line.ends_with("---")
}

fn is_body(line: &str) -> bool {
    !line.is_empty()
        && line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'='))
}

/// The bodies of all decorated blocks, in order.
fn blocks(text: &str) -> Vec<&str> {
    // Lines with their terminating newline state: the closing marker must be followed by one.
    let mut lines: Vec<(&str, bool)> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                lines.push((rest[..i].strip_suffix('\r').unwrap_or(&rest[..i]), true));
                rest = &rest[i + 1..];
            }
            None => {
                lines.push((rest, false));
                rest = "";
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < lines.len() {
        let (open, open_nl) = lines[i];
        let (body, body_nl) = lines[i + 1];
        let (close, close_nl) = lines[i + 2];
        if open_nl
            && is_marker_open(open)
            && body_nl
            && is_body(body)
            && close_nl
            && is_marker_close(close)
        {
            out.push(body);
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// The JWT of a creds file; text without blocks is returned as is (Go does the same, so a
/// bare JWT file works).
pub fn parse_decorated_jwt(text: &str) -> String {
    match blocks(text).first() {
        Some(jwt) => jwt.trim().to_string(),
        None => text.to_string(),
    }
}

/// The seed of a creds or nkey file: the second block, or else the first line that starts
/// with `SO`, `SA` or `SU`.
pub fn parse_decorated_nkey(text: &str) -> Result<KeyPair, JwtError> {
    let seed = seed_text(text)?;
    KeyPair::from_seed(seed).map_err(JwtError::NKey)
}

fn seed_text(text: &str) -> Result<&str, JwtError> {
    let b = blocks(text);
    let seed = match b.get(1) {
        Some(s) => *s,
        None => text
            .split('\n')
            .find(|l| {
                let t = l.trim();
                t.starts_with("SO") || t.starts_with("SA") || t.starts_with("SU")
            })
            .ok_or(JwtError::Creds("no nkey seed found"))?,
    };
    if !(seed.starts_with("SO") || seed.starts_with("SA") || seed.starts_with("SU")) {
        return Err(JwtError::Creds("doesn't contain a seed nkey"));
    }
    Ok(seed.trim_end_matches('\r'))
}

/// Reads a creds file: the user JWT and the seed (checked to parse as an nkey seed).
pub fn parse_creds(text: &str) -> Result<Creds, JwtError> {
    let jwt = parse_decorated_jwt(text);
    let seed = seed_text(text)?.to_string();
    KeyPair::from_seed(&seed).map_err(JwtError::NKey)?;
    Ok(Creds { jwt, seed })
}

/// A JWT between markers, as Go's `formatJwt` (`kind` is upper-cased).
pub fn format_jwt(kind: &str, jwt: &str) -> String {
    let kind = kind.to_uppercase();
    format!("-----BEGIN NATS {kind} JWT-----\n{jwt}\n------END NATS {kind} JWT------\n\n")
}

/// A seed between markers with nsc's warning, as Go's `DecorateSeed`.
pub fn decorate_seed(seed: &str) -> Result<String, JwtError> {
    let seed = seed.trim();
    let kind = match seed.get(..2) {
        Some("SU") => "USER",
        Some("SA") => "ACCOUNT",
        Some("SO") => "OPERATOR",
        Some(_) => {
            return Err(JwtError::Creds(
                "seed is not an operator, account or user seed",
            ));
        }
        None => return Err(JwtError::Creds("seed is too short")),
    };
    Ok(format!(
        "************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\
         \n\
         -----BEGIN {kind} NKEY SEED-----\n\
         {seed}\n\
         ------END {kind} NKEY SEED------\n\
         \n\
         *************************************************************\n"
    ))
}

/// The creds file text `nsc generate creds` writes (Go's `FormatUserConfig`): the JWT must be
/// a valid user JWT and the seed that user's seed.
pub fn format_creds(jwt: &str, seed: &str) -> Result<String, JwtError> {
    let claims = decode(jwt)?;
    let kind = claims.claim_type();
    if kind != ClaimType::USER {
        return Err(JwtError::InvalidClaims(format!(
            "{kind:?} cannot be serialized as a user config"
        )));
    }
    if !seed.trim().starts_with("SU") {
        return Err(JwtError::Creds("nkey seed is not an user seed"));
    }
    let kp = KeyPair::from_seed(seed.trim()).map_err(JwtError::NKey)?;
    if kp.public_key() != claims.data().subject {
        return Err(JwtError::Creds("nkey seed does not match the jwt subject"));
    }
    Ok(format_jwt(&kind, jwt) + &decorate_seed(seed)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "-----BEGIN NATS USER JWT-----\neyJhbGc.eyJq.sig-_x\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\nNKEYs are sensitive and should be treated as secrets.\n\n-----BEGIN USER NKEY SEED-----\nSUAKYQZCBPBRJ3T3Y5XNC2OVPDMCXL3446OEWXOJ45ILPIK57ZOWZTLFEI\n------END USER NKEY SEED------\n\n*************************************************************\n";

    #[test]
    fn parses_nsc_layout() {
        let c = parse_creds(SAMPLE);
        assert!(c.is_ok(), "{c:?}");
        let c = c.ok();
        assert_eq!(
            c.as_ref().map(|c| c.jwt.as_str()),
            Some("eyJhbGc.eyJq.sig-_x")
        );
        assert_eq!(
            c.as_ref().map(|c| c.seed.as_str()),
            Some("SUAKYQZCBPBRJ3T3Y5XNC2OVPDMCXL3446OEWXOJ45ILPIK57ZOWZTLFEI")
        );
    }

    #[test]
    fn crlf_and_bare_inputs() {
        let crlf = SAMPLE.replace('\n', "\r\n");
        let c = parse_creds(&crlf).ok();
        assert_eq!(c.map(|c| c.jwt), Some("eyJhbGc.eyJq.sig-_x".to_string()));
        assert_eq!(parse_decorated_jwt("a.b.c"), "a.b.c");
        let seed_only = "SUAKYQZCBPBRJ3T3Y5XNC2OVPDMCXL3446OEWXOJ45ILPIK57ZOWZTLFEI\n";
        assert!(parse_decorated_nkey(seed_only).is_ok());
        assert!(matches!(
            parse_decorated_nkey("nothing here"),
            Err(JwtError::Creds("no nkey seed found"))
        ));
    }

    #[test]
    fn decorate_seed_matches_nsc() {
        let seed = "SUAKYQZCBPBRJ3T3Y5XNC2OVPDMCXL3446OEWXOJ45ILPIK57ZOWZTLFEI";
        let text = decorate_seed(seed).ok().unwrap_or_default();
        assert!(SAMPLE.ends_with(&text));
        assert!(decorate_seed("S").is_err());
        assert!(decorate_seed("XX").is_err());
    }
}
