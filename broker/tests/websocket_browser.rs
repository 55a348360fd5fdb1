//! A real browser over WebSocket: headless Chromium loads pages served by this test.
//! One uses nats.js (the `nats.ws` bundle) to send a request to a Rust async-nats
//! service and to answer the service's request, both through natrix-server; the other
//! uses mqtt.js over `ws://…/mqtt` and exchanges messages with a NATS client. The pages
//! write what they received into the DOM, and the test reads it from
//! `chromium --dump-dom`: the check is the messages that crossed.
//!
//! `--dump-dom` prints the DOM once the page has loaded, so each page holds its load
//! open with an image the test serves only after the page reported its results (or
//! after a bound), which makes the dump come after the exchange.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{NATRIX, free_port, start};
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long a page may take for its whole exchange.
const PAGE_BOUND: Duration = Duration::from_secs(40);

fn chromium() -> Option<PathBuf> {
    let found = std::env::var("CHROMIUM_BIN")
        .ok()
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")))
        .filter(|p| p.exists());
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "chromium is not installed (run scripts/deps)"
    );
    found
}

/// The test's web server: the pages, the client libraries, `/result` (where a page
/// posts what it saw) and `/hold` (answered once a result came, keeping the page's
/// load open until then).
struct Site {
    pages: Vec<(&'static str, String)>,
    modules: PathBuf,
    result: Notify,
}

async fn serve_site(site: Arc<Site>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let site = site.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(PAGE_BOUND, answer(&site, stream)).await;
        });
    }
}

async fn answer(site: &Site, mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let (ctype, body): (&str, Vec<u8>) = match path.as_str() {
        "/result" => {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            site.result.notify_waiters();
            site.result.notify_one();
            ("text/plain", b"ok".to_vec())
        }
        "/hold" => {
            let _ = tokio::time::timeout(PAGE_BOUND, site.result.notified()).await;
            // Let the page's last DOM writes land before the load event.
            tokio::time::sleep(Duration::from_millis(200)).await;
            (
                "image/svg+xml",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
            )
        }
        "/lib/nats.js" => (
            "text/javascript",
            std::fs::read(site.modules.join("nats.ws/esm/nats.js"))?,
        ),
        "/lib/mqtt.min.js" => (
            "text/javascript",
            std::fs::read(site.modules.join("mqtt/dist/mqtt.min.js"))?,
        ),
        p => match site.pages.iter().find(|(name, _)| *name == p) {
            Some((_, html)) => ("text/html; charset=utf-8", html.clone().into_bytes()),
            None => {
                s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await?;
                return Ok(());
            }
        },
    };
    s.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    s.write_all(&body).await
}

/// Page 1: nats.js requests `rust.echo`, serves `browser.echo`, and waits for
/// `browser.done` (what the Rust side got back from it).
fn nats_page(ws: u16) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>nats.js</title></head><body>
<pre id="log"></pre>
<img src="/hold" alt="">
<script type="module">
import {{ connect, StringCodec }} from '/lib/nats.js';
const out = document.getElementById('log');
const log = (line) => {{ out.textContent += line + '\n'; }};
const report = () => fetch('/result', {{ method: 'POST', body: out.textContent }});
try {{
  const sc = StringCodec();
  const nc = await connect({{ servers: 'ws://127.0.0.1:{ws}', name: 'chromium-nats' }});
  log('connected');
  const reply = await nc.request('rust.echo', sc.encode('from-browser'), {{ timeout: 10000 }});
  log('reply: ' + sc.decode(reply.data));
  const done = nc.subscribe('browser.done', {{ max: 1 }});
  const svc = nc.subscribe('browser.echo');
  (async () => {{
    for await (const m of svc) {{
      const text = sc.decode(m.data);
      log('served: ' + text);
      m.respond(sc.encode('browser says: ' + text));
    }}
  }})();
  await nc.flush();
  nc.publish('browser.ready', sc.encode('ready'));
  for await (const m of done) {{ log('done: ' + sc.decode(m.data)); }}
  await nc.close();
  log('closed');
}} catch (e) {{
  log('error: ' + e);
}}
await report();
</script></body></html>"#
    )
}

/// Page 2: mqtt.js subscribes `to/browser`, announces itself on `from/browser/ready`,
/// and acknowledges what it gets on `from/browser/ack`.
fn mqtt_page(ws: u16) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>mqtt.js</title>
<script src="/lib/mqtt.min.js"></script></head><body>
<pre id="log"></pre>
<img src="/hold" alt="">
<script>
const out = document.getElementById('log');
const log = (line) => {{ out.textContent += line + '\n'; }};
const report = () => fetch('/result', {{ method: 'POST', body: out.textContent }});
const c = mqtt.connect('ws://127.0.0.1:{ws}/mqtt', {{
  clientId: 'chromium-mqtt', protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10000,
}});
c.on('error', (e) => {{ log('error: ' + e.message); report(); }});
c.on('connect', () => {{
  log('connected');
  c.subscribe('to/browser', {{ qos: 0 }}, (err) => {{
    if (err) {{ log('suback error: ' + err.message); report(); return; }}
    c.publish('from/browser/ready', 'hi from chromium');
  }});
}});
c.on('message', (topic, payload) => {{
  log('got ' + topic + ': ' + payload.toString());
  c.publish('from/browser/ack', 'ack ' + payload.toString(), () => {{
    c.end(false, {{}}, () => {{ log('closed'); report(); }});
  }});
}});
</script></body></html>"#
    )
}

/// Loads `url` in headless Chromium and returns the `#log` text of the dumped DOM.
async fn load(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let child = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromium");
    let out = tokio::time::timeout(
        PAGE_BOUND + Duration::from_secs(20),
        child.wait_with_output(),
    )
    .await
    .expect("chromium finished in time")
    .expect("chromium output");
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    let log = dom
        .split_once("<pre id=\"log\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(log, _)| log.to_owned())
        .unwrap_or_else(|| panic!("no #log in the dumped DOM: {dom}"));
    log.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

struct Setup {
    _server: common::Proc,
    _store: tempfile::TempDir,
    nats_port: u16,
    http: u16,
}

/// natrix with WebSocket (origins limited to the test's site) and MQTT, and the site.
async fn setup(modules: PathBuf) -> Setup {
    let site_listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind site");
    let http = site_listener.local_addr().expect("addr").port();
    let (ws, mqtt) = (free_port(), free_port());
    let store = tempfile::tempdir().expect("store");
    let conf = format!(
        "server_name: browser\njetstream {{ store_dir: {:?} }}\nmqtt {{ host: 127.0.0.1, port: {mqtt} }}\nwebsocket {{ host: 127.0.0.1, port: {ws}, no_tls: true, allowed_origins: [\"http://127.0.0.1:{http}\"] }}\n",
        store.path().display().to_string()
    );
    let server = start(Path::new(NATRIX), &conf, false);
    let site = Arc::new(Site {
        pages: vec![("/nats.html", nats_page(ws)), ("/mqtt.html", mqtt_page(ws))],
        modules,
        result: Notify::new(),
    });
    tokio::spawn(serve_site(site, site_listener));
    Setup {
        nats_port: server.port,
        _server: server,
        _store: store,
        http,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_js_in_chromium_requests_and_serves_through_natrix() {
    let (Some(chromium), Some(modules)) = (chromium(), common::node_modules()) else {
        eprintln!("skipped: chromium or the npm packages missing (scripts/deps)");
        return;
    };
    let s = setup(modules).await;
    let nc = async_nats::connect(format!("nats://127.0.0.1:{}", s.nats_port))
        .await
        .expect("connect");
    // The Rust service the page calls.
    let mut svc = nc.subscribe("rust.echo").await.expect("subscribe");
    let answering = nc.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let mut body = b"echo: ".to_vec();
                body.extend_from_slice(&m.payload);
                let _ = answering.publish(reply, body.into()).await;
            }
        }
    });
    // Once the page serves `browser.echo`, call it, and tell the page what came back.
    let mut ready = nc.subscribe("browser.ready").await.expect("subscribe");
    nc.flush().await.expect("flush");
    let caller = nc.clone();
    let calls = tokio::spawn(async move {
        tokio::time::timeout(PAGE_BOUND, ready.next())
            .await
            .expect("the page is ready in time")
            .expect("ready message");
        let r = caller
            .request("browser.echo", "from-rust".into())
            .await
            .expect("the browser answers");
        let text = String::from_utf8_lossy(&r.payload).into_owned();
        caller
            .publish("browser.done", text.clone().into())
            .await
            .expect("publish");
        caller.flush().await.expect("flush");
        text
    });
    let log = load(&chromium, &format!("http://127.0.0.1:{}/nats.html", s.http)).await;
    eprintln!("page log:\n{log}");
    let rust_got = calls.await.expect("caller");
    assert_eq!(rust_got, "browser says: from-rust");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        [
            "connected",
            "reply: echo: from-browser",
            "served: from-rust",
            "done: browser says: from-rust",
            "closed"
        ],
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_in_chromium_exchanges_messages_with_nats() {
    let (Some(chromium), Some(modules)) = (chromium(), common::node_modules()) else {
        eprintln!("skipped: chromium or the npm packages missing (scripts/deps)");
        return;
    };
    let s = setup(modules).await;
    let nc = async_nats::connect(format!("nats://127.0.0.1:{}", s.nats_port))
        .await
        .expect("connect");
    let mut from_browser = nc.subscribe("from.browser.>").await.expect("subscribe");
    nc.flush().await.expect("flush");
    let talker = nc.clone();
    let talk = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let m = tokio::time::timeout(PAGE_BOUND, from_browser.next())
                .await
                .expect("a message from the page in time")
                .expect("message");
            let text = String::from_utf8_lossy(&m.payload).into_owned();
            if m.subject.as_str() == "from.browser.ready" {
                talker
                    .publish("to.browser", "hello from nats".into())
                    .await
                    .expect("publish");
                talker.flush().await.expect("flush");
            }
            seen.push(format!("{}: {text}", m.subject));
        }
        seen
    });
    let log = load(&chromium, &format!("http://127.0.0.1:{}/mqtt.html", s.http)).await;
    eprintln!("page log:\n{log}");
    let seen = talk.await.expect("nats side");
    assert_eq!(
        seen,
        [
            "from.browser.ready: hi from chromium",
            "from.browser.ack: ack hello from nats"
        ]
    );
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        ["connected", "got to/browser: hello from nats", "closed"],
        "{log}"
    );
}
