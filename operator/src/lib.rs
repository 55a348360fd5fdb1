//! natrix-operator: runs natrix-server clusters on Kubernetes from `NatsCluster` resources.
//!
//! - [`crd`]: the `NatsCluster` API and the JetStream assets (`Stream`, `Consumer`,
//!   `KeyValue`, `ObjectStore`): spec, status, schema with CEL rules.
//! - [`jetstream`]: specs → JetStream API configs, the API client and its connections.
//! - [`render`]: pure functions from a spec to `nats.conf` and Kubernetes objects, with the
//!   broker's own parser as the judge of the config and its reload rules as the judge of
//!   reload vs. restart.
//! - [`controller`]: the reconcile loops (fetch → render → server-side apply → status for
//!   NatsClusters; spec → JetStream API → status for the JetStream assets).
//! - [`leader`], [`metrics`]: leader election on a Lease, Prometheus metrics and health.
//! - [`reference`]: the CRD field reference for the docs, generated from the schema.
//! - [`telemetry`]: OpenTelemetry spans of reconciles (OTLP, as the broker).
//! - [`rbac`]: the permissions the operator needs (the install manifests are checked
//!   against them).

pub mod accounts;
pub mod controller;
pub mod crd;
pub mod jetstream;
pub mod leader;
pub mod metrics;
pub mod rbac;
pub mod reference;
pub mod render;
pub mod telemetry;
