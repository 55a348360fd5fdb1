//! nkey authentication: the INFO nonce, a client signing it with its seed (async-nats's
//! own nkey support), wrong keys refused, and nkey users bound to accounts.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{NATRIX, Raw, start};

#[tokio::test]
async fn nkey_users_sign_the_nonce() {
    let alice = nkeys::KeyPair::new_user();
    let bob = nkeys::KeyPair::new_user();
    let mallory = nkeys::KeyPair::new_user();
    let conf = format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}\naccounts {{ B: {{ users: [ {{ nkey: {} }} ] }} }}\n",
        alice.public_key(),
        bob.public_key()
    );
    let server = start(Path::new(NATRIX), &conf, false);
    let url = format!("nats://127.0.0.1:{}", server.port);

    // The INFO carries a fresh nonce per connection.
    let info = |port| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 2048];
        let n = std::io::Read::read(&mut s, &mut buf).expect("read");
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        let json: serde_json::Value =
            serde_json::from_str(line.trim_start_matches("INFO ").trim()).expect("json");
        json["nonce"].as_str().map(str::to_owned)
    };
    let (n1, n2) = (info(server.port), info(server.port));
    assert!(n1.as_ref().is_some_and(|n| n.len() >= 11), "{n1:?}");
    assert_ne!(n1, n2, "nonces must differ");

    let seed = alice.seed().expect("seed");
    let nc = async_nats::ConnectOptions::with_nkey(seed)
        .connect(&url)
        .await
        .expect("alice logs in with her nkey");
    let mut sub = nc.subscribe("hello").await.expect("sub");
    nc.publish("hello", "signed".into()).await.expect("pub");
    let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub))
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(msg.payload.as_ref(), b"signed");

    // An unknown key, and a known key with someone else's signature, are refused.
    let refused = async_nats::ConnectOptions::with_nkey(mallory.seed().expect("seed"))
        .max_reconnects(0)
        .connect(&url)
        .await;
    assert!(refused.is_err(), "unknown nkey must be refused");
    let mut forged = Raw::connect(server.port);
    forged.send(&format!(
        "CONNECT {{\"verbose\":false,\"nkey\":\"{}\",\"sig\":\"AAAA\"}}\r\nPING\r\n",
        alice.public_key()
    ));
    let got = forged.read_for(Duration::from_millis(300));
    assert!(got.contains("-ERR 'Authorization Violation'"), "{got}");

    // bob's key binds him to account B: he does not see $G traffic.
    let b = async_nats::ConnectOptions::with_nkey(bob.seed().expect("seed"))
        .connect(&url)
        .await
        .expect("bob logs in");
    let mut b_sub = b.subscribe("hello").await.expect("sub");
    b.flush().await.expect("flush");
    nc.publish("hello", "for $G only".into())
        .await
        .expect("pub");
    nc.flush().await.expect("flush");
    let none = tokio::time::timeout(
        Duration::from_millis(300),
        futures::StreamExt::next(&mut b_sub),
    )
    .await;
    assert!(none.is_err(), "account B must not see $G messages");
}
