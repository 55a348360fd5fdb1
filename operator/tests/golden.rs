//! Golden files: every example in `deploy/examples/` rendered to its `nats.conf` and its
//! Kubernetes objects. A change to rendering shows up as a reviewable diff of these files
//! (regenerate with `UPDATE_GOLDEN=1`).

mod common;

use natrix_operator::controller::gateways;
use natrix_operator::render::{self, Inputs};

#[test]
fn examples_render_to_golden_files() {
    let examples = common::examples();
    assert!(examples.len() >= 4, "examples missing: {examples:?}");
    for path in examples {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let clusters = common::clusters_in(&path);
        assert!(
            !clusters.is_empty(),
            "{} has no NatsCluster",
            path.display()
        );
        for nc in &clusters {
            let resolved = gateways::resolve(nc, &clusters);
            assert_eq!(
                resolved.warnings,
                Vec::<String>::new(),
                "{}",
                path.display()
            );
            let r = render::render(
                nc,
                &Inputs {
                    gateways: resolved.peers,
                    restart_base: None,
                    ..Inputs::default()
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = nc.metadata.name.clone().unwrap();
            common::golden(&format!("{stem}-{name}.conf"), &r.config.text);

            let mut docs = vec![
                serde_norway::to_string(&r.config_map).unwrap(),
                serde_norway::to_string(&r.headless_service).unwrap(),
                serde_norway::to_string(&r.client_service).unwrap(),
                serde_norway::to_string(&r.statefulset).unwrap(),
            ];
            if let Some(p) = &r.pdb {
                docs.push(serde_norway::to_string(p).unwrap());
            }
            if let Some(sm) = &r.service_monitor {
                docs.push(serde_norway::to_string(sm).unwrap());
            }
            common::golden(&format!("{stem}-{name}.yaml"), &docs.join("---\n"));
        }
    }
}
