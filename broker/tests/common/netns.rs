//! Private networks for multi-server tests: one network namespace per server, all
//! plugged by veth pairs into a bridge that lives in a hub namespace of the test's own,
//! plus a client namespace from which the test talks to the servers. Nothing is added
//! to the host's network; dropping the [`Lab`] deletes every namespace it made (and
//! with them the veths and the bridge).
//!
//! Servers bind fixed ports (4222 clients, 6222 routes, 7222 gateways, 7422 leaf nodes,
//! 8222 monitoring) on their own address `10.77.0.<n>`. A partition takes a server's
//! link to the bridge down; healing brings it back up.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{HttpReply, Proc, Raw};

/// The namespaces of one test.
pub struct Lab {
    prefix: String,
    nodes: Vec<String>,
}

/// Address of node `n` (clients live at `.200`).
pub fn addr(n: u8) -> String {
    format!("10.77.0.{n}")
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    /// A hub namespace with a bridge and a client namespace at `10.77.0.200`; `None`
    /// (with the reason) where namespaces cannot be made, e.g. without root.
    pub fn new(tag: &str) -> Result<Self, String> {
        let prefix = format!("nx{}{tag}", std::process::id());
        let mut lab = Self {
            prefix,
            nodes: Vec::new(),
        };
        let hub = lab.ns("hub");
        ip(&["netns", "add", &hub])?;
        lab.nodes.push(hub.clone());
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        lab.add_ns("c", 200)?;
        Ok(lab)
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// A namespace `role` at `10.77.0.<n>`, wired to the bridge.
    fn add_ns(&mut self, role: &str, n: u8) -> Result<String, String> {
        let ns = self.ns(role);
        let hub = self.ns("hub");
        ip(&["netns", "add", &ns])?;
        self.nodes.push(ns.clone());
        let (inner, outer) = (format!("v{n}i"), format!("v{n}"));
        ip(&[
            "-n", &hub, "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
        ])?;
        ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", addr(n)),
            "dev",
            &inner,
        ])?;
        ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A namespace for server `n` (address `10.77.0.<n>`).
    pub fn node(&mut self, n: u8) -> String {
        self.add_ns(&format!("n{n}"), n)
            .unwrap_or_else(|e| panic!("namespace for node {n}: {e}"))
    }

    /// Cuts server `n` off the bridge (`up` false) or plugs it back in.
    pub fn link(&self, n: u8, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.ns("hub"),
            "link",
            "set",
            &format!("v{n}"),
            state,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `f` on a thread inside the client namespace: sockets it opens stay there.
    pub fn in_client_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ns("c"));
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|_| panic!("client thread panicked"))
        })
    }

    /// Moves the calling thread into the client namespace for good: for a thread that
    /// runs a whole client scenario (an async runtime whose sockets must all be there).
    pub fn enter_client_ns(&self) {
        let path = format!("/run/netns/{}", self.ns("c"));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
    }

    /// A raw client of server `n`'s port 4222, connected with headers on.
    pub fn client(&self, n: u8) -> Raw {
        self.client_as(n, "")
    }

    /// A raw client of server `n` logging in with `credentials`, extra CONNECT fields
    /// such as `"user":"a","pass":"a",` (note the trailing comma).
    pub fn client_as(&self, n: u8, credentials: &str) -> Raw {
        let target: SocketAddr = format!("{}:4222", addr(n)).parse().expect("address");
        let s = self.in_client_ns(|| TcpStream::connect_timeout(&target, Duration::from_secs(2)));
        let s = s.unwrap_or_else(|e| panic!("connect {target}: {e}"));
        let mut c = Raw::from_stream(s);
        c.send(&format!(
            "CONNECT {{{credentials}\"verbose\":false,\"pedantic\":false,\"headers\":true}}\r\n"
        ));
        let hello = c.sync();
        assert!(hello.contains("PONG"), "{hello}");
        c
    }

    /// GET `path` from server `n`'s monitoring port.
    pub fn http(&self, n: u8, path: &str) -> Option<HttpReply> {
        let target: SocketAddr = format!("{}:8222", addr(n)).parse().expect("address");
        let s = self
            .in_client_ns(|| TcpStream::connect_timeout(&target, Duration::from_millis(500)))
            .ok()?;
        super::http_get_on(s, path)
    }

    /// Polls server `n`'s monitoring `path` until `ok` holds, failing after `within`.
    pub fn wait_json(
        &self,
        n: u8,
        path: &str,
        within: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self
                .http(n, path)
                .map(|r| r.json())
                .unwrap_or(serde_json::Value::Null);
            if ok(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "node {n} {path} never as expected: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts `bin` with `conf` inside namespace `ns` as server `n`, and waits for its
    /// monitoring port to answer.
    pub fn start(&self, bin: &Path, ns: &str, n: u8, conf: &str) -> Proc {
        self.start_with_env(bin, ns, n, conf, &[])
    }

    /// [`Lab::start`] with extra environment variables for the server.
    pub fn start_with_env(
        &self,
        bin: &Path,
        ns: &str,
        n: u8,
        conf: &str,
        env: &[(&str, &str)],
    ) -> Proc {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf_path = dir.path().join("server.conf");
        std::fs::write(&conf_path, conf).expect("write config");
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(bin)
            .arg("-c")
            .arg(&conf_path)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} in {ns}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.http(n, "/healthz").is_none() {
            assert!(
                Instant::now() < deadline,
                "{} in {ns} did not start: {}",
                bin.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Proc {
            child,
            port: 4222,
            http_port: Some(8222),
            dir,
            log,
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.nodes.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A lab, or `None` where this machine cannot make namespaces; under CI that is a
/// failure rather than a skip.
pub fn lab(tag: &str) -> Option<Lab> {
    match Lab::new(tag) {
        Ok(l) => Some(l),
        Err(e) if std::env::var_os("CI").is_some() => panic!("network namespaces: {e}"),
        Err(e) => {
            eprintln!("skipped: cannot create network namespaces ({e})");
            None
        }
    }
}
