//! Feeds arbitrary bytes to the JWT decoder, the creds parser and, when the bytes happen to be
//! a valid token, the time check, and checks none of them panics. Tokens reach the server from
//! clients (CONNECT `jwt`), resolvers and auth callout responses, so all of this is untrusted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(claims) = natrix_jwt::decode(&text) {
        let _ = natrix_jwt::validate(&claims, 0);
        let _ = claims.claim_type();
    }
    let _ = natrix_jwt::parse_creds(&text);
    let _ = natrix_jwt::parse_decorated_jwt(&text);
    // Also a well-formed envelope around arbitrary claims, so the JSON path gets exercised
    // rather than only the base64 checks.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.{}.{}",
        b64.encode(data),
        b64.encode([0u8; 64])
    );
    let _ = natrix_jwt::decode(&token);
});
