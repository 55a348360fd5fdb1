//! `allow_responses`: a responder whose publish permissions allow nothing may still answer
//! the requests it receives, once each (the default), and nothing else. The same exchange
//! runs on nats-server and natrix and must read the same.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{NATRIX, Raw, reference_binary, start};

const CONF: &str = r#"
authorization {
  users = [
    { user: req, password: r }
    { user: svc, password: s, permissions: { subscribe: "svc.>", allow_responses: true } }
    { user: svc2, password: s, permissions: { subscribe: "svc.>", allow_responses: { max: 2, expires: "1m" } } }
  ]
}
"#;

fn login(port: u16, user: &str, pass: &str) -> Raw {
    let mut c = Raw::connect(port);
    c.send(&format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\n"
    ));
    assert!(c.sync().contains("PONG"), "{user} login");
    c
}

/// The transcript: what the requester and the two responders see.
fn exchange(bin: &Path) -> Vec<String> {
    let server = start(bin, CONF, false);
    let mut req = login(server.port, "req", "r");
    let mut svc = login(server.port, "svc", "s");
    let mut svc2 = login(server.port, "svc2", "s");
    req.send("SUB _INBOX.a 1\r\nSUB _INBOX.b 2\r\n");
    req.sync();
    svc.send("SUB svc.one 1\r\n");
    svc.sync();
    svc2.send("SUB svc.two 1\r\n");
    svc2.sync();
    req.send("PUB svc.one _INBOX.a 3\r\nask\r\nPUB svc.two _INBOX.b 3\r\nask\r\n");
    req.sync();
    let mut out = Vec::new();
    out.push(format!("svc got: {}", svc.sync()));
    out.push(format!("svc2 got: {}", svc2.sync()));
    // svc: one answer allowed, the second refused; an unrelated subject refused.
    svc.send("PUB _INBOX.a 2\r\nok\r\nPUB _INBOX.a 5\r\nagain\r\nPUB other 1\r\nx\r\n");
    out.push(format!("svc: {}", svc.sync()));
    // svc2: two answers allowed, the third refused.
    svc2.send("PUB _INBOX.b 1\r\n1\r\nPUB _INBOX.b 1\r\n2\r\nPUB _INBOX.b 1\r\n3\r\n");
    out.push(format!("svc2: {}", svc2.sync()));
    std::thread::sleep(Duration::from_millis(100));
    out.push(format!("req got: {}", req.sync()));
    // The servers' own keepalive PINGs land wherever the clock puts them.
    out.iter().map(|t| t.replace("PING\r\n", "")).collect()
}

#[test]
fn allow_responses_like_nats_server() {
    let ours = exchange(Path::new(NATRIX));
    assert!(
        ours[2].contains("-ERR 'Permissions Violation for Publish to \"_INBOX.a\"'"),
        "{ours:?}"
    );
    assert!(
        ours[2].contains("-ERR 'Permissions Violation for Publish to \"other\"'"),
        "{ours:?}"
    );
    assert!(ours[4].contains("MSG _INBOX.a 1 2\r\nok"), "{ours:?}");
    assert_eq!(ours[4].matches("MSG _INBOX.b 2 1").count(), 2, "{ours:?}");
    if let Some(reference) = reference_binary() {
        let theirs = exchange(&reference);
        assert_eq!(ours, theirs, "natrix vs nats-server");
    }
}
