//! The command line: Go `flag` syntax, nats-server's flags, and their precedence over the
//! config file.

mod common;

use std::time::Duration;

use common::config;
use natrix_config::options::Options;
use natrix_config::{Configured, FlagError, Flags, SignalCommand, configure};

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|a| a.to_string()).collect()
}

fn run(a: &[&str]) -> Options {
    match configure(args(a)) {
        Ok(Configured::Run { options, .. }) => *options,
        other => panic!("{a:?}: expected Run, got {other:?}"),
    }
}

fn err(a: &[&str]) -> String {
    match configure(args(a)) {
        Err(e) => e.to_string(),
        Ok(other) => panic!("{a:?}: expected an error, got {other:?}"),
    }
}

#[test]
fn no_flags_means_defaults() {
    let o = run(&[]);
    assert_eq!(o.port, 4222);
    assert_eq!(o.host, "0.0.0.0");
    assert!(o.logtime);
}

#[test]
fn go_flag_syntax() {
    for a in [
        &["-p", "5000"][..],
        &["--p", "5000"],
        &["-port", "5000"],
        &["--port=5000"],
        &["-p=5000"],
        &["-port=0x1388"],
    ] {
        assert_eq!(run(a).port, 5000, "{a:?}");
    }
    // The value of a flag is taken as is, even when it starts with '-'.
    assert_eq!(run(&["-p", "-1"]).port, -1);
    assert_eq!(run(&["-n", "-odd-name"]).server_name, "-odd-name");
    // Single-dash multi-letter flags are flags, not bundles of short ones.
    let o = run(&["-ms", "8443", "-m", "8222", "-js", "-sd", "/tmp/js"]);
    assert_eq!((o.https_port, o.http_port), (8443, 8222));
    assert!(o.jetstream.enabled);
    assert_eq!(o.jetstream.store_dir, "/tmp/js");
    let o = run(&[
        "-a",
        "127.0.0.1",
        "--name",
        "srv",
        "-P",
        "/tmp/p.pid",
        "--ports_file_dir",
        "/tmp",
    ]);
    assert_eq!(o.host, "127.0.0.1");
    assert_eq!(o.server_name, "srv");
    assert_eq!(o.pid_file, "/tmp/p.pid");
    assert_eq!(o.ports_file_dir, "/tmp");
    assert_eq!(run(&["--net", "::1"]).host, "::1");
    assert_eq!(run(&["--server_name", "x"]).server_name, "x");
    assert_eq!(run(&["--client_advertise", "a:1"]).client_advertise, "a:1");
}

#[test]
fn logging_flags() {
    let o = run(&["-D", "-V"]);
    assert!(o.debug && o.trace && !o.trace_verbose);
    let o = run(&["-DV"]);
    assert!(o.debug && o.trace && !o.trace_verbose);
    let o = run(&["-VV"]);
    assert!(!o.debug && o.trace && o.trace_verbose);
    let o = run(&["-DVV"]);
    assert!(o.debug && o.trace && o.trace_verbose);
    // -DV wins over -D=false whatever the order, as Go visits flags by name.
    let o = run(&["-DV", "-D=false"]);
    assert!(o.debug && o.trace);
    let o = run(&[
        "-T=false",
        "-s",
        "-r",
        "udp://h:514",
        "-l",
        "/tmp/n.log",
        "--log_size_limit",
        "1000",
        "--max_traced_msg_len",
        "64",
        "--logtime_utc",
    ]);
    assert!(!o.logtime && o.syslog && o.logtime_utc);
    assert_eq!(o.remote_syslog, "udp://h:514");
    assert_eq!(o.log_file, "/tmp/n.log");
    assert_eq!(o.log_size_limit, 1000);
    assert_eq!(o.max_traced_msg_len, 64);
}

#[test]
fn flags_override_the_config_file_only_when_given() {
    let file = config("everything.conf");
    let path = file.to_str().unwrap();
    // everything.conf sets debug, logtime false, port 4999, user admin.
    let o = run(&["-c", path]);
    assert_eq!(o.port, 4999);
    assert!(o.debug && !o.logtime);
    let o = run(&[
        "-c", path, "-p", "7000", "-D=false", "--user", "u2", "--pass", "p2",
    ]);
    assert_eq!(o.port, 7000);
    assert!(!o.debug, "explicit -D=false overrides debug: true");
    assert!(
        !o.logtime,
        "logtime stays as the file says when -T is not given"
    );
    assert_eq!((o.username.as_str(), o.password.as_str()), ("u2", "p2"));
    assert_eq!(o.config_file.as_deref(), Some(file.as_path()));
}

#[test]
fn flag_errors_use_go_wording() {
    assert_eq!(err(&["-x"]), "flag provided but not defined: -x");
    assert_eq!(err(&["--nope=1"]), "flag provided but not defined: -nope");
    assert_eq!(err(&["-d"]), "flag provided but not defined: -d");
    assert_eq!(err(&["-p"]), "flag needs an argument: -p");
    assert_eq!(
        err(&["-p", "abc"]),
        "invalid value \"abc\" for flag -p: parse error"
    );
    assert_eq!(
        err(&["--port", "99999999999"]),
        "invalid value \"99999999999\" for flag -port: value out of range"
    );
    assert_eq!(
        err(&["-D=maybe"]),
        "invalid boolean value \"maybe\" for -D: parse error"
    );
    assert_eq!(err(&["---p"]), "bad flag syntax: ---p");
    assert!(configure(args(&["-x"])).unwrap_err().wants_usage());
}

#[test]
fn help_version_and_commands() {
    match configure(args(&["-h"])).unwrap() {
        Configured::Help(text) => {
            assert!(text.contains("Usage: natrix-server [options]"));
            assert!(text.contains("-DVV"));
            assert!(text.contains("--cluster_listen <url>"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        configure(args(&["--help"])),
        Ok(Configured::Help(_))
    ));
    assert!(matches!(
        configure(args(&["--help_tls"])),
        Ok(Configured::HelpTls(_))
    ));
    assert!(matches!(configure(args(&["-v"])), Ok(Configured::Version)));
    assert!(matches!(
        configure(args(&["--version"])),
        Ok(Configured::Version)
    ));
    // Arguments after the flags are commands; flags after them are not parsed.
    assert!(matches!(
        configure(args(&["-p", "1", "VERSION", "-bogus"])),
        Ok(Configured::Version)
    ));
    assert!(matches!(
        configure(args(&["help"])),
        Ok(Configured::Help(_))
    ));
    assert_eq!(err(&["start"]), "unrecognized command: \"start\"");
    assert_eq!(err(&["--", "-p"]), "unrecognized command: \"-p\"");
    assert!(natrix_config::flags::version_text().starts_with("natrix-server: v"));
}

#[test]
fn signals() {
    let sig = |a: &[&str]| match configure(args(a)) {
        Ok(Configured::Signal { command, target }) => (command, target),
        other => panic!("{a:?}: {other:?}"),
    };
    assert_eq!(sig(&["-sl", "reload"]), (SignalCommand::Reload, None));
    assert_eq!(
        sig(&["--signal", "ldm=1234"]),
        (SignalCommand::Ldm, Some("1234".into()))
    );
    assert_eq!(
        sig(&["-sl=stop=/var/run/natrix.pid"]),
        (SignalCommand::Stop, Some("/var/run/natrix.pid".into()))
    );
    for (name, cmd, signal) in [
        ("quit", SignalCommand::Quit, "SIGINT"),
        ("term", SignalCommand::Term, "SIGTERM"),
        ("reopen", SignalCommand::Reopen, "SIGUSR1"),
        ("reload", SignalCommand::Reload, "SIGHUP"),
        ("ldm", SignalCommand::Ldm, "SIGUSR2"),
        ("stop", SignalCommand::Stop, "SIGKILL"),
    ] {
        assert_eq!(sig(&["-sl", name]).0, cmd);
        assert_eq!(cmd.signal_name(), signal);
        assert_eq!(cmd.to_string(), name);
    }
    assert_eq!(err(&["-sl", "restart"]), "unknown signal \"restart\"");
    assert_eq!(err(&["-sl", "stop=1=2"]), "invalid signal parameters: [2]");
}

#[test]
fn check_config() {
    let path = config("simple.conf");
    match configure(args(&["-t", "-c", path.to_str().unwrap()])).unwrap() {
        Configured::CheckConfig {
            config_file,
            digest,
        } => {
            assert_eq!(config_file, path);
            assert!(digest.starts_with("fnv1a64:"));
            let msg = natrix_config::flags::check_message(&config_file, &digest);
            assert!(msg.contains("is valid (fnv1a64:"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err(&["-t"]),
        "must specify [-c, --config] option to check configuration file syntax"
    );
    // -t fails on warnings too, as nats-server's does.
    let dir = std::env::temp_dir().join(format!("natrix-config-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let warn = dir.join("warn.conf");
    std::fs::write(&warn, "ping_interval: 60\n").unwrap();
    let e = err(&["-t", "-c", warn.to_str().unwrap()]);
    assert!(
        e.contains("ping_interval should be converted to a duration"),
        "{e}"
    );
    // Without -t the same file starts, with the warning handed back.
    match configure(args(&["-c", warn.to_str().unwrap()])).unwrap() {
        Configured::Run { warnings, .. } => assert_eq!(warnings.len(), 1),
        other => panic!("{other:?}"),
    }
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, "port: \"x\"\n").unwrap();
    let e = configure(args(&["-c", bad.to_str().unwrap()])).unwrap_err();
    assert!(matches!(e, FlagError::Config(_)));
    assert!(
        e.to_string()
            .ends_with("bad.conf:1:1: interface conversion: interface {} is string, not int64")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cluster_and_routes_flags() {
    let o = run(&[
        "--cluster",
        "nats://ruser:rpass@127.0.0.1:6222",
        "--routes",
        "nats://a.example:6222, nats://b.example:6222",
        "--cluster_name",
        "c1",
        "--no_advertise",
        "--cluster_advertise",
        "adv:6222",
        "--connect_retries",
        "7",
    ]);
    let c = &o.cluster;
    assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 6222));
    assert_eq!(
        (c.username.as_str(), c.password.as_str()),
        ("ruser", "rpass")
    );
    assert_eq!(c.name, "c1");
    assert!(c.no_advertise);
    assert_eq!(c.advertise, "adv:6222");
    assert_eq!(c.connect_retries, 7);
    assert_eq!(o.routes.len(), 2);
    assert_eq!(o.routes[1].host, "b.example");
    // Defaults for an enabled cluster.
    assert_eq!(c.pool_size, 3);
    assert_eq!(c.compression.mode, "accept");

    let o = run(&["--cluster_listen", "nats://0.0.0.0:-1"]);
    assert_eq!(o.cluster.port, -1);
    assert_eq!(
        err(&["--routes", "nats://a:1"]),
        "solicited routes require cluster capabilities, e.g. --cluster"
    );
    assert_eq!(
        err(&["--cluster", "nats://user@h:1"]),
        "expected cluster password to be set"
    );
    // --cluster overrides the file's cluster listener.
    let path = config("cluster.conf");
    let o = run(&[
        "-c",
        path.to_str().unwrap(),
        "--cluster",
        "nats://10.0.0.1:7244",
    ]);
    assert_eq!(
        (o.cluster.host.as_str(), o.cluster.port),
        ("10.0.0.1", 7244)
    );
    assert!(
        o.cluster.username.is_empty(),
        "credentials from the file are dropped"
    );
}

#[test]
fn tls_flags() {
    let o = run(&["--tls", "--tlscert", "c.pem", "--tlskey", "k.pem"]);
    let t = o.tls.as_ref().unwrap();
    assert_eq!(
        (t.cert_file.as_str(), t.key_file.as_str()),
        ("c.pem", "k.pem")
    );
    assert!(!t.verify);
    // With TLS on, the auth timeout default follows the TLS timeout.
    assert_eq!(o.auth_timeout, Duration::from_secs(3));
    let o = run(&[
        "--tlsverify",
        "--tlscert",
        "c.pem",
        "--tlskey",
        "k.pem",
        "--tlscacert",
        "ca.pem",
    ]);
    let t = o.tls.as_ref().unwrap();
    assert!(t.verify);
    assert_eq!(t.ca_file, "ca.pem");
    assert_eq!(
        err(&["--tls"]),
        "TLS Server certificate must be present and valid"
    );
    assert_eq!(
        err(&["--tlscert", "c.pem"]),
        "TLS Server private key must be present and valid"
    );
    let path = config("tls.conf");
    let o = run(&["-c", path.to_str().unwrap(), "--tls=false"]);
    assert!(o.tls.is_none());
}

#[test]
fn auth_and_profile_flags() {
    let o = run(&["--auth", "s3cret", "--profile", "6060"]);
    assert_eq!(o.authorization, "s3cret");
    assert_eq!(o.prof_port, 6060);
}

#[test]
fn flags_are_kept_for_reload() {
    let dir = std::env::temp_dir().join(format!("natrix-config-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("n.conf");
    std::fs::write(&file, "port: 4300\nmax_payload: 1000\n").unwrap();
    let Configured::Run { options, flags, .. } =
        configure(args(&["-c", file.to_str().unwrap(), "-p", "4400", "-D"])).unwrap()
    else {
        panic!("expected Run");
    };
    assert_eq!(options.port, 4400);
    std::fs::write(&file, "port: 4300\nmax_payload: 2000\ndebug: false\n").unwrap();
    let (next, _) = Options::load(
        Some(&file),
        &flags,
        natrix_config::Strictness::Strict,
        &natrix_config::conf::SystemLoader,
    )
    .unwrap();
    assert_eq!(next.port, 4400, "the -p flag still wins");
    assert!(next.debug, "the -D flag still wins");
    assert_eq!(next.max_payload, 2000);
    let plan = natrix_config::diff(&options, &next);
    assert!(plan.is_allowed(), "{plan:?}");
    assert!(plan.changed("MaxPayload"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn normalize_is_exposed_for_diagnostics() {
    let canon = natrix_config::flags::normalize(&args(&["-p", "-1", "-DV", "-js", "x"])).unwrap();
    assert_eq!(canon, ["--port=-1", "--DV", "--jetstream", "--", "x"]);
    let f = Flags::parse_args(&args(&["-js=false"])).unwrap();
    assert_eq!(f.jetstream, Some(false));
}
