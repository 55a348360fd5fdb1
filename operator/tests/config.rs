//! The rendered `nats.conf` against natrix-server's own config crate: a matrix of specs
//! that must all load, errors the broker would raise surfacing before anything is applied,
//! the digest being the one the broker reports, and reload-vs-restart decisions agreeing
//! with the broker's reload rules.

use natrix_operator::crd::NatsCluster;
use natrix_operator::render::{self, GatewayPeer, Inputs, RenderError, names};
use serde_json::{Value, json};

fn cluster(spec: Value) -> NatsCluster {
    let mut nc: NatsCluster = serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1",
        "kind": "NatsCluster",
        "metadata": {"name": "nc", "namespace": "ns", "uid": "u-1"},
        "spec": spec,
    }))
    .unwrap();
    nc.metadata.generation = Some(1);
    nc
}

fn render_ok(nc: &NatsCluster) -> render::Rendered {
    render::render(nc, &Inputs::default()).unwrap_or_else(|e| panic!("{e}\n{:#?}", nc.spec))
}

#[test]
fn matrix_of_specs_loads_in_natrix_config() {
    let hash = "$2a$11$W2zko751KUvVy59mUTWmpOdWZj5kd3fBhwWq2e8VR9kH5Y.0n3Yw6";
    let mut count = 0;
    for replicas in [1, 3, 5] {
        for js in 0..4 {
            for tls in [false, true] {
                for gw in [false, true] {
                    for leaf in [false, true] {
                        for fronts in 0..3 {
                            for users in [false, true] {
                                let mut spec = json!({"replicas": replicas, "config": {"maxPayload": 2_000_000 + replicas}});
                                let jetstream = match js {
                                    1 => Some(
                                        json!({"enabled": true, "memoryStorage": {"size": "1Gi"}}),
                                    ),
                                    2 => Some(
                                        json!({"enabled": true, "fileStorage": {"size": "10Gi", "storageClassName": "ssd"}}),
                                    ),
                                    3 => Some(
                                        json!({"enabled": true, "memoryStorage": {"size": "512Mi"}, "fileStorage": {"size": "1Ti"}, "domain": "hub"}),
                                    ),
                                    _ => None,
                                };
                                if let Some(j) = &jetstream {
                                    spec["jetstream"] = j.clone();
                                }
                                if tls {
                                    spec["tls"] = json!({
                                        "client": {"secretName": "c", "ca": "ca.crt", "verify": true},
                                        "routes": {"secretName": "r"},
                                        "gateway": {"secretName": "g"},
                                        "leafnodes": {"secretName": "l"},
                                        "websocket": {"secretName": "w"},
                                    });
                                }
                                if gw {
                                    spec["gateways"] = json!({"port": 7522, "rejectUnknown": true, "remotes": [{"name": "ext", "urls": ["nats://gw.example.com:7222"]}]});
                                }
                                if leaf {
                                    spec["leafnodes"] = json!({"port": 7422, "remotes": [{"urls": ["nats-leaf://hub:7422"], "credentials": {"name": "s", "key": "k.creds"}}]});
                                }
                                if fronts >= 1 {
                                    spec["websocket"] = json!({"port": 8443, "compression": true});
                                }
                                if fronts == 2 && jetstream.is_some() {
                                    spec["mqtt"] = json!({"port": 1883});
                                }
                                if users {
                                    spec["config"]["authorization"] = json!({"users": [
                                        {"user": "a", "password": hash, "permissions": {"publish": {"allow": ["a.>"]}, "allowResponses": true}},
                                    ], "noAuthUser": "a"});
                                }
                                let nc = cluster(spec);
                                let peers = if gw {
                                    vec![GatewayPeer {
                                        name: "ext".into(),
                                        urls: vec!["nats://gw.example.com:7222".into()],
                                    }]
                                } else {
                                    vec![]
                                };
                                let r = render::render(
                                    &nc,
                                    &Inputs {
                                        gateways: peers,
                                        restart_base: None,
                                        ..Inputs::default()
                                    },
                                )
                                .unwrap_or_else(|e| panic!("{e}\n{:#?}", nc.spec));
                                let o = &r.config.options;
                                assert_eq!(o.routes.len(), replicas as usize);
                                assert_eq!(o.cluster.name, "nc");
                                assert_eq!(o.max_payload, 2_000_000 + replicas);
                                assert_eq!(o.http_port, 8222);
                                assert_eq!(o.pid_file, "/var/run/natrix/natrix.pid");
                                assert_eq!(o.jetstream.enabled, jetstream.is_some());
                                assert_eq!(o.gateway.port, if gw { 7522 } else { 0 });
                                assert_eq!(o.tls.is_some(), tls);
                                assert_eq!(o.users.len(), usize::from(users));
                                assert_eq!(o.leafnode.remotes.len(), usize::from(leaf));
                                assert_eq!(o.websocket.port, if fronts >= 1 { 8443 } else { 0 });
                                count += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(count, 3 * 4 * 2 * 2 * 2 * 3 * 2);
}

#[test]
fn digest_is_the_one_the_broker_reports() {
    let r = render_ok(&cluster(json!({"replicas": 3, "config": {"debug": true}})));
    // What natrix-server computes when it loads the mounted file.
    let dir = std::env::temp_dir().join(format!("natrix-operator-digest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nats.conf");
    std::fs::write(&path, &r.config.text).unwrap();
    let (opts, _) = natrix_config::Options::from_file(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        opts.config_digest.as_deref(),
        Some(r.config.digest.as_str())
    );
    assert!(r.config.digest.starts_with("fnv1a64:"));
    assert_eq!(
        r.config_map.metadata.annotations.unwrap()["natrix.io/config-digest"],
        r.config.digest
    );
}

#[test]
fn config_the_broker_refuses_is_reported_with_its_position() {
    let err = render::render(
        &cluster(json!({"config": {"merge": {"bogus_option": 1}}})),
        &Inputs::default(),
    )
    .unwrap_err();
    let RenderError::InvalidConfig(msgs) = &err else {
        panic!("{err:?}")
    };
    assert!(msgs[0].starts_with("nats.conf:"), "{msgs:?}");
    assert!(msgs[0].contains("bogus_option"), "{msgs:?}");
    assert_eq!(err.reason(), "InvalidConfig");

    let err = render::render(
        &cluster(json!({"config": {"merge": {"jetstream": {"max_file_store": "lots"}}}})),
        &Inputs::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("max_file_store"), "{err}");

    let err = render::render(
        &cluster(json!({"config": {"merge": {"cluster": {"routes": [null]}}}})),
        &Inputs::default(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
    assert!(
        err.to_string().contains("config.merge.cluster.routes[0]"),
        "{err}"
    );
}

#[test]
fn merge_deep_merges_and_null_removes() {
    let r = render_ok(&cluster(json!({"config": {"merge": {
        "cluster": {"pool_size": 5, "no_advertise": null},
        "lame_duck_grace_period": null,
        "server_metadata": {"rack": "r1"},
    }}})));
    let t = &r.config.text;
    assert!(t.contains("pool_size = 5"), "{t}");
    assert!(!t.contains("no_advertise"), "{t}");
    assert!(!t.contains("lame_duck_grace_period"), "{t}");
    assert!(
        t.contains("name = \"nc\""),
        "merge keeps generated keys: {t}"
    );
    assert_eq!(r.config.options.cluster.pool_size, 5);
}

fn restart_after(old: Value, new: Value) -> (render::Rendered, render::Rendered) {
    let before = render_ok(&cluster(old));
    let after = render::render(
        &cluster(new),
        &Inputs {
            gateways: vec![],
            restart_base: Some(before.restart.base_text.clone()),
            ..Inputs::default()
        },
    )
    .unwrap();
    (before, after)
}

fn restart_digest(r: &render::Rendered) -> String {
    r.statefulset
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[names::ANNOTATION_RESTART]
        .clone()
}

#[test]
fn reloadable_changes_touch_only_the_config_map() {
    for (old, new, field) in [
        (json!({"replicas": 3}), json!({"replicas": 5}), "Routes"),
        (
            json!({}),
            json!({"config": {"maxPayload": 4_000_000}}),
            "MaxPayload",
        ),
        (
            json!({}),
            json!({"config": {"debug": true, "trace": true}}),
            "Debug",
        ),
        (
            json!({}),
            json!({"config": {"authorization": {"users": [{"nkey": "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"}]}}}),
            "Nkeys",
        ),
        // Tracing turned on, moved and renamed on a running cluster.
        (
            json!({}),
            json!({"tracing": {"endpoint": "http://otel:4317", "sampleRatio": 0.5}}),
            "TelemetryEndpoint",
        ),
        (
            json!({"tracing": {"endpoint": "http://otel:4317"}}),
            json!({"tracing": {"endpoint": "http://jaeger.obs:4317", "serviceName": "edge"}}),
            "TelemetryServiceName",
        ),
    ] {
        let (before, after) = restart_after(old, new);
        assert_ne!(before.config.digest, after.config.digest);
        assert!(
            after.restart.reasons.is_empty(),
            "{:?}",
            after.restart.reasons
        );
        assert!(
            after.restart.reloadable.iter().any(|f| f == field),
            "{field}: {:?}",
            after.restart.reloadable
        );
        assert_eq!(
            restart_digest(&before),
            restart_digest(&after),
            "{field} must not roll the pods"
        );
        assert_eq!(
            after.restart.base_text, before.config.text,
            "the restart base stays"
        );
        // Only the replica count may differ in the StatefulSet.
        let mut a = after.statefulset.clone();
        a.spec.as_mut().unwrap().replicas = before.statefulset.spec.as_ref().unwrap().replicas;
        assert_eq!(a, before.statefulset, "{field}");
    }
}

#[test]
fn restart_needed_changes_roll_the_statefulset() {
    for (old, new, reason) in [
        (json!({}), json!({"monitoring": {"port": 9222}}), "HTTPPort"),
        (
            json!({}),
            json!({"lameDuckDuration": "45s"}),
            "LameDuckDuration",
        ),
        (
            json!({}),
            json!({"config": {"maxSubscriptions": 10}}),
            "MaxSubs",
        ),
        (json!({}), json!({"gateways": {}}), "Gateway"),
    ] {
        let (before, after) = restart_after(old, new);
        assert!(
            after.restart.reasons.iter().any(|r| r.contains(reason)),
            "{reason}: {:?}",
            after.restart.reasons
        );
        assert_eq!(restart_digest(&after), after.config.digest);
        assert_ne!(restart_digest(&before), restart_digest(&after));
        assert_eq!(after.restart.base_text, after.config.text);
    }
}

#[test]
fn a_failed_rollout_is_not_forgotten() {
    // Config changed to something needing a restart, the ConfigMap (with the new base) was
    // applied, the StatefulSet apply failed. The next render must still roll.
    let (_, first) = restart_after(json!({}), json!({"monitoring": {"port": 9222}}));
    let again = render::render(
        &cluster(json!({"monitoring": {"port": 9222}})),
        &Inputs {
            gateways: vec![],
            restart_base: Some(first.restart.base_text.clone()),
            ..Inputs::default()
        },
    )
    .unwrap();
    assert_eq!(restart_digest(&again), restart_digest(&first));
    assert_eq!(restart_digest(&again), again.config.digest);
}

#[test]
fn image_change_rolls_through_the_pod_template_only() {
    let (before, after) = restart_after(json!({"version": "0.1.0"}), json!({"version": "0.2.0"}));
    assert_eq!(before.config.digest, after.config.digest);
    assert_eq!(restart_digest(&before), restart_digest(&after));
    let image = |r: &render::Rendered| {
        r.statefulset
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
    };
    assert_eq!(image(&after).as_deref(), Some("natrix/natrix-server:0.2.0"));
}

#[test]
fn unreadable_restart_base_restarts() {
    let r = render::render(
        &cluster(json!({})),
        &Inputs {
            gateways: vec![],
            restart_base: Some("port = [".into()),
            ..Inputs::default()
        },
    )
    .unwrap();
    assert_eq!(r.restart.reasons.len(), 1);
    assert!(r.restart.reasons[0].contains("no longer loads"));
    assert_eq!(restart_digest(&r), r.config.digest);
}

#[test]
fn termination_grace_outlasts_lame_duck() {
    for (ldm, grace) in [("30s", 60), ("2m", 150), ("30.5s", 61)] {
        let r = render_ok(&cluster(json!({"lameDuckDuration": ldm})));
        let pod = r.statefulset.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(grace), "{ldm}");
    }
    // The broker's own floor on lame duck surfaces before anything is applied.
    let err = render::render(
        &cluster(json!({"lameDuckDuration": "10s"})),
        &Inputs::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("minimum is 30 seconds"), "{err}");
}

#[test]
fn defaults_follow_the_chart_lessons() {
    let nc = cluster(json!({}));
    assert_eq!(nc.spec.replicas, 3);
    let r = render_ok(&nc);
    let sts = r.statefulset.spec.unwrap();
    assert_eq!(sts.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(sts.volume_claim_templates, None);
    let pod = sts.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz?js-server-only=true")
    );
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz?js-enabled-only=true")
    );
    assert_eq!(
        c.startup_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "config")
        .unwrap();
    assert_eq!(
        mount.sub_path, None,
        "subPath mounts never see ConfigMap updates"
    );
    assert_eq!(mount.mount_path, "/etc/natrix");
    assert_eq!(
        r.headless_service.spec.unwrap().publish_not_ready_addresses,
        Some(true)
    );
    let pdb = r.pdb.unwrap().spec.unwrap();
    assert_eq!(
        pdb.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert!(r.service_monitor.is_none());
}

#[test]
fn pod_template_spec_that_is_no_pod_spec_is_refused() {
    let err = render::render(
        &cluster(json!({"podTemplate": {"spec": {"containers": "nope"}}})),
        &Inputs::default(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
    assert!(err.to_string().contains("podTemplate.spec"), "{err}");
}

#[test]
fn deletion_policy_maps_to_claim_retention() {
    for (policy, when) in [("Delete", "Delete"), ("Orphan", "Retain")] {
        let r = render_ok(&cluster(
            json!({"deletionPolicy": policy, "jetstream": {"enabled": true, "fileStorage": {"size": "1Gi"}}}),
        ));
        let sts = r.statefulset.spec.unwrap();
        let fs_group = sts
            .template
            .spec
            .as_ref()
            .unwrap()
            .security_context
            .as_ref()
            .unwrap()
            .fs_group;
        assert_eq!(
            fs_group,
            Some(65534),
            "the data volume is writable by the image's user"
        );
        let p = sts.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(p.when_deleted.as_deref(), Some(when));
        assert_eq!(p.when_scaled.as_deref(), Some("Retain"));
    }
}
