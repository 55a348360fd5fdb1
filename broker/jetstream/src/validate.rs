//! Stream and consumer configs as nats-server checks them on create and update: its
//! `checkStreamCfg`, what `addStream` and a stream update check after it, its
//! `setConsumerConfigDefaults` + `checkConsumerCfg`, what `addConsumer` checks for a new
//! consumer, and what a consumer update may change. Each rule runs in nats-server's
//! order, so the first failure gives the same error (code, number and text).
//!
//! Defaults are [`StreamConfig::apply_defaults`] and [`ConsumerConfig::apply_defaults`].
//! nats-server fills in a stream's defaults between its checks; here they are applied
//! first, and the checks read the value each field had at that point in nats-server (the
//! client's value where nats-server checks before defaulting it). Under `pedantic`, a
//! default that would change a value fails instead; that failure is held back until the
//! checks nats-server makes before it have passed.
//!
//! Subjects, subject transforms and Go's number and duration texts are checked here as
//! nats-server checks them (its `IsValidSubject`, `SubjectsCollide`,
//! `subjectIsSubsetMatch`, `ValidateMapping`, `NewSubjectTransform`, `strconv.Atoi`,
//! `time.Duration.String`), quirks included: error texts quote them.

use natrix_transform::go_quote;
use std::collections::{HashSet, VecDeque};

use crate::api::errors::{self, ApiError};
use crate::api::json::Nanos;
use crate::api::types::{
    AckPolicy, ConsumerConfig, ConsumerDefaultLimits, DeliverPolicy, DiscardPolicy, PersistMode,
    PriorityPolicy, RetentionPolicy, StorageType, StreamConfig, StreamDefaultLimits, StreamSource,
};

/// The server's `jetstream { limits {} }` that configs are checked against; 0 is unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_duplicate_window: Nanos,
    pub max_request_batch: i64,
    pub max_ack_pending: i64,
    /// The server's `max_payload` (0: nats-server's default, 1 MiB): the burst of a
    /// `rate_limit_bps` consumer on a stream without `max_msg_size`.
    pub max_payload: i64,
    /// Clustered JetStream: streams may have replicas.
    pub clustered: bool,
}

/// Longest stream or durable consumer name (nats-server's `JSMaxNameLen`).
const MAX_NAME_LEN: usize = 255;
/// Longest description (`JSMaxDescriptionLen`).
const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Most bytes of metadata keys and values together (`JSMaxMetadataLen`).
const MAX_METADATA_LEN: usize = 128 * 1024;
/// Most replicas a stream may ask for (`StreamMaxReplicas`).
const MAX_REPLICAS: i64 = 5;
/// The JetStream API prefix an external source's `api` must not overlap.
const JS_API_PREFIX: &str = "$JS.API";

const MILLISECOND: Nanos = 1_000_000;
const SECOND: Nanos = 1_000 * MILLISECOND;

/// A stream or consumer name: not empty, without whitespace, `.`, `*`, `>`, `\` or `/`
/// (nats-server's `isValidAssetName`).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains([' ', '\t', '\r', '\n', '\x0c', '.', '*', '>', '\\', '/'])
}

fn metadata_len(m: &std::collections::BTreeMap<String, String>) -> usize {
    m.iter().map(|(k, v)| k.len() + v.len()).sum()
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

/// Where in nats-server's `checkStreamCfg` a `pedantic` failure of
/// [`StreamConfig::apply_defaults`] happens: the checks before that point run first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    Limits,
    Duplicates,
    DeleteMarkers,
    Schedules,
    RePublish,
}

fn pedantic_step(e: &ApiError) -> Step {
    let d = e.description.as_str();
    if d.ends_with("must be set to -1") {
        Step::Limits
    } else if d.contains("duplicate window") {
        Step::Duplicates
    } else if d.starts_with("subject delete marker") {
        Step::DeleteMarkers
    } else if d.starts_with("message scheduling") {
        Step::Schedules
    } else {
        Step::RePublish
    }
}

fn invalid(text: impl std::fmt::Display) -> ApiError {
    errors::stream_invalid_config(text)
}

/// nats-server's `checkStreamCfg`: the config as it would store it, or the first error.
/// `others` are the account's other streams (mirror and source origins, cycles); with
/// `pedantic`, a default that would change a value the client set is an error.
pub fn stream_config(
    cfg: &StreamConfig,
    others: &[StreamConfig],
    limits: &ServerLimits,
    pedantic: bool,
) -> Result<StreamConfig, ApiError> {
    let o = cfg;
    if !valid_name(&o.name) {
        return Err(invalid(
            "stream name is required and can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if o.name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "stream name is too long, maximum allowed is {MAX_NAME_LEN}"
        )));
    }
    if o.description.len() > MAX_DESCRIPTION_LEN {
        return Err(invalid(format!(
            "stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}"
        )));
    }
    if metadata_len(&o.metadata) > MAX_METADATA_LEN {
        return Err(invalid(format!(
            "stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes"
        )));
    }

    let default_limits = StreamDefaultLimits {
        max_duplicate_window: limits.max_duplicate_window,
    };
    // The pedantic failure, if any, and where nats-server would report it.
    let held = if pedantic {
        let mut p = cfg.clone();
        p.apply_defaults(&default_limits, true)
            .err()
            .map(|e| (pedantic_step(&e), e))
    } else {
        None
    };
    let at = |step: Step| match &held {
        Some((s, e)) if *s == step => Err(e.clone()),
        _ => Ok(()),
    };
    let mut c = cfg.clone();
    c.apply_defaults(&default_limits, false)?;

    if c.num_replicas > MAX_REPLICAS {
        return Err(invalid(format!("maximum replicas is {MAX_REPLICAS}")));
    }
    if c.num_replicas < 0 {
        return Err(errors::replicas_count_cannot_be_negative());
    }
    at(Step::Limits)?;
    if c.max_age < 0 {
        return Err(invalid("max age can not be negative"));
    }
    if c.max_age != 0 && c.max_age < 100 * MILLISECOND {
        return Err(invalid("max age needs to be >= 100ms"));
    }
    at(Step::Duplicates)?;
    if c.duplicate_window < 0 {
        return Err(invalid("duplicates window can not be negative"));
    }
    if c.max_age != 0 && c.duplicate_window > c.max_age {
        return Err(invalid("duplicates window can not be larger then max age"));
    }
    if limits.max_duplicate_window > 0 && c.duplicate_window > limits.max_duplicate_window {
        return Err(invalid(format!(
            "duplicates window can not be larger then server limit of {}",
            go_duration(limits.max_duplicate_window)
        )));
    }
    if c.duplicate_window > 0 && c.duplicate_window < 100 * MILLISECOND {
        return Err(invalid("duplicates window needs to be >= 100ms"));
    }
    // Before the delete-marker and schedule defaults turn roll-ups on.
    if o.deny_purge && o.allow_rollup_hdrs {
        return Err(invalid("roll-ups require the purge permission"));
    }
    if c.allow_msg_counter {
        if c.discard == DiscardPolicy::New {
            return Err(invalid("counter stream cannot use discard new"));
        }
        // The client's value: delete markers turn message TTLs on only later.
        if o.allow_msg_ttl {
            return Err(invalid("counter stream cannot use message TTLs"));
        }
        if c.allow_msg_schedules {
            return Err(invalid("counter stream cannot use message schedules"));
        }
        if c.retention != RetentionPolicy::Limits {
            return Err(invalid("counter stream can only use limits retention"));
        }
    }
    if c.discard_new_per_subject {
        discard_new_per_subject(&c)?;
    }
    if c.subject_delete_marker_ttl > 0 {
        if c.subject_delete_marker_ttl < SECOND {
            return Err(invalid(
                "subject delete marker TTL must be at least 1 second",
            ));
        }
        at(Step::DeleteMarkers)?;
    } else if c.subject_delete_marker_ttl < 0 {
        return Err(invalid("subject delete marker TTL must not be negative"));
    }
    if c.allow_msg_schedules {
        if c.discard == DiscardPolicy::New {
            return Err(invalid("message scheduling cannot use discard new"));
        }
        at(Step::Schedules)?;
    }
    if c.persist_mode == PersistMode::Async {
        if c.storage != StorageType::File {
            return Err(invalid(
                "async persist mode is only supported on file storage",
            ));
        }
        if c.num_replicas > 1 {
            return Err(invalid(
                "async persist mode is not supported on replicated streams",
            ));
        }
        if c.allow_atomic {
            return Err(invalid(
                "async persist mode is not supported with atomic batch publish",
            ));
        }
    }

    let find = |name: &str| others.iter().find(|s| s.name == name);
    // Subjects of the local origins, delivery and API prefixes of the external ones.
    let mut origin_subjects: Vec<String> = Vec::new();
    let mut deliver_prefixes: Vec<String> = Vec::new();
    let mut api_prefixes: Vec<String> = Vec::new();

    if let Some(m) = c.mirror.clone() {
        mirror_rules(&c, &m)?;
        match &m.external {
            None => {
                if !valid_name(&m.name) {
                    return Err(errors::mirror_invalid_stream_name());
                }
                if let Some(origin) = find(&m.name) {
                    origin_subjects.extend(origin.subjects.iter().cloned());
                    if c.max_msg_size > 0
                        && origin.max_msg_size > 0
                        && c.max_msg_size < origin.max_msg_size
                    {
                        return Err(errors::mirror_max_message_size_too_big());
                    }
                    if pedantic && c.mirror_direct != origin.allow_direct {
                        return Err(errors::pedantic(
                            "origin stream has direct get set, mirror has it disabled",
                        ));
                    }
                    c.mirror_direct = origin.allow_direct;
                }
            }
            Some(ext) => {
                if !ext.deliver.is_empty() {
                    deliver_prefixes.push(ext.deliver.clone());
                }
                if !ext.api.is_empty() {
                    api_prefixes.push(ext.api.clone());
                }
            }
        }
    }

    if !c.sources.is_empty() && c.allow_msg_schedules {
        return Err(errors::source_with_msg_schedules());
    }
    let mut index_names = HashSet::new();
    let mut consumer_names = HashSet::new();
    for src in &c.sources {
        if !valid_name(&src.name) {
            return Err(errors::source_invalid_stream_name());
        }
        if !index_names.insert(source_index_name(src)) {
            return Err(errors::source_duplicate_detected());
        }
        if !src.filter_subject.is_empty() && !src.subject_transforms.is_empty() {
            return Err(errors::source_multiple_filters_not_allowed());
        }
        for tr in &src.subject_transforms {
            if !tr.src.is_empty() && !valid_subject(&tr.src) {
                return Err(errors::source_invalid_subject_filter(format!(
                    "invalid subject {}",
                    tr.src
                )));
            }
            validate_mapping(&tr.src, &tr.dest)
                .map_err(errors::source_invalid_transform_destination)?;
        }
        for (i, a) in src.subject_transforms.iter().enumerate() {
            for (j, b) in src.subject_transforms.iter().enumerate() {
                if i != j && subset_match(&a.src, &b.src) {
                    return Err(errors::source_overlapping_subject_filters());
                }
            }
        }
        if let Some(sc) = &src.consumer {
            if !valid_name(&sc.name)
                || !is_literal(&sc.deliver_subject)
                || !valid_subject(&sc.deliver_subject)
                || src.opt_start_seq != 0
                || src.opt_start_time.is_some()
                || !src.filter_subject.is_empty()
            {
                return Err(errors::source_durable_consumer_cfg_invalid());
            }
            let api = src.external.as_ref().map(|e| e.api.as_str());
            if !consumer_names.insert((src.name.clone(), api, sc.name.clone())) {
                return Err(errors::source_durable_consumer_duplicate_detected());
            }
        }
        match &src.external {
            None => {
                if let Some(origin) = find(&src.name) {
                    origin_subjects.extend(origin.subjects.iter().cloned());
                    if c.max_msg_size > 0
                        && origin.max_msg_size > 0
                        && c.max_msg_size < origin.max_msg_size
                    {
                        return Err(errors::source_max_message_size_too_big());
                    }
                }
            }
            Some(ext) => {
                if !ext.deliver.is_empty() {
                    deliver_prefixes.push(ext.deliver.clone());
                }
                if !ext.api.is_empty() {
                    api_prefixes.push(ext.api.clone());
                }
            }
        }
    }

    for pfx in &deliver_prefixes {
        if !valid_publish_subject(pfx) {
            return Err(errors::stream_invalid_external_delivery_subj(pfx));
        }
        for sub in &origin_subjects {
            if collide(sub, &format!("{pfx}.{sub}")) {
                return Err(errors::stream_external_del_prefix_overlaps(pfx, sub));
            }
        }
    }
    for pfx in &api_prefixes {
        if !valid_publish_subject(pfx) {
            return Err(invalid(format!(
                "stream external api prefix {} must be a valid subject without wildcards",
                go_quote(pfx)
            )));
        }
        if collide(pfx, JS_API_PREFIX) {
            return Err(errors::stream_external_api_overlap(pfx, JS_API_PREFIX));
        }
    }

    source_cycles(&c, others)?;

    // The subjects the client gave (a stream without any gets its name, unchecked).
    if !o.subjects.is_empty() {
        if c.mirror.is_some() {
            return Err(errors::mirror_with_subjects());
        }
        stream_subjects(&c)?;
    }
    if c.subjects.is_empty() && c.sources.is_empty() && c.mirror.is_none() {
        return Err(invalid(
            "stream needs at least one configured subject or be a source/mirror",
        ));
    }

    if let Some(tr) = &c.subject_transform {
        if !tr.src.is_empty() && !valid_subject(&tr.src) {
            return Err(errors::stream_transform_invalid_source(format!(
                "invalid subject {}",
                tr.src
            )));
        }
        validate_mapping(&tr.src, &tr.dest)
            .map_err(errors::stream_transform_invalid_destination)?;
    }

    if let Some(rp) = &c.republish {
        at(Step::RePublish)?;
        if c.subjects.iter().any(|s| collide(&rp.dest, s)) {
            return Err(invalid(
                "stream configuration for republish destination forms a cycle",
            ));
        }
        if new_transform(&rp.src, &rp.dest).is_err() {
            return Err(invalid(format!(
                "stream configuration for republish with transform from '{}' to '{}' not valid",
                rp.src, rp.dest
            )));
        }
    }

    if c.placement
        .as_ref()
        .is_some_and(|p| !p.preferred.is_empty())
    {
        return Err(invalid("preferred server not permitted in placement"));
    }
    // Every pedantic failure has its place above; this only guards against a new one.
    if let Some((_, e)) = held {
        return Err(e);
    }
    Ok(c)
}

/// `discard_new_per_subject` needs `discard: new` and a per-subject limit.
fn discard_new_per_subject(c: &StreamConfig) -> Result<(), ApiError> {
    if c.discard != DiscardPolicy::New {
        return Err(invalid(
            "discard new per subject requires discard new policy to be set",
        ));
    }
    if c.max_msgs_per_subject <= 0 {
        return Err(invalid(
            "discard new per subject requires max msgs per subject > 0",
        ));
    }
    Ok(())
}

/// What a mirror may not be combined with, and its own filters and transforms.
fn mirror_rules(c: &StreamConfig, m: &StreamSource) -> Result<(), ApiError> {
    if c.first_seq > 0 {
        return Err(errors::mirror_with_first_seq());
    }
    if !c.subjects.is_empty() {
        return Err(errors::mirror_with_subjects());
    }
    if !c.sources.is_empty() {
        return Err(errors::mirror_with_sources());
    }
    if c.allow_msg_counter {
        return Err(errors::mirror_with_counters());
    }
    if c.allow_atomic {
        return Err(errors::mirror_with_atomic_publish());
    }
    if c.allow_batched {
        return Err(errors::mirror_with_batch_publish());
    }
    if c.allow_msg_schedules {
        return Err(errors::mirror_with_msg_schedules());
    }
    if let Some(mc) = &m.consumer
        && (!valid_name(&mc.name)
            || !is_literal(&mc.deliver_subject)
            || !valid_subject(&mc.deliver_subject)
            || m.opt_start_seq != 0
            || m.opt_start_time.is_some()
            || !m.filter_subject.is_empty())
    {
        return Err(errors::mirror_durable_consumer_cfg_invalid());
    }
    if !m.filter_subject.is_empty() && !m.subject_transforms.is_empty() {
        return Err(errors::mirror_multiple_filters_not_allowed());
    }
    if c.subject_delete_marker_ttl > 0 {
        return Err(invalid("subject delete markers forbidden on mirrors"));
    }
    for (i, tr) in m.subject_transforms.iter().enumerate() {
        if !tr.src.is_empty() && !valid_subject(&tr.src) {
            return Err(errors::mirror_invalid_subject_filter(format!(
                "invalid subject {}",
                tr.src
            )));
        }
        validate_mapping(&tr.src, &tr.dest)
            .map_err(errors::mirror_invalid_transform_destination)?;
        for (j, other) in m.subject_transforms.iter().enumerate() {
            if i != j && collide(&tr.src, &other.src) {
                return Err(errors::mirror_overlapping_subject_filters());
            }
        }
    }
    Ok(())
}

/// nats-server's index name of a source: two sources with the same one are duplicates.
fn source_index_name(s: &StreamSource) -> String {
    let mut name = s.name.clone();
    if let Some(ext) = &s.external {
        name.push(':');
        name.push_str(&ext.api);
    }
    if let Some(sc) = &s.consumer {
        name.push_str(":C=");
        name.push_str(&sc.name);
    }
    let (src, dest) = if s.subject_transforms.is_empty() {
        let f = if s.filter_subject.is_empty() {
            ">"
        } else {
            s.filter_subject.as_str()
        };
        (f.to_owned(), ">".to_owned())
    } else {
        let or_all = |v: &str| {
            if v.is_empty() {
                ">".to_owned()
            } else {
                v.to_owned()
            }
        };
        let srcs: Vec<String> = s
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.src))
            .collect();
        let dests: Vec<String> = s
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.dest))
            .collect();
        (srcs.join("\x0c"), dests.join("\x0c"))
    };
    format!("{name} {src} {dest}")
}

/// A stream that sources (or mirrors), through local streams, a stream that sources it
/// back with overlapping subjects.
fn source_cycles(cfg: &StreamConfig, others: &[StreamConfig]) -> Result<(), ApiError> {
    let find = |name: &str| others.iter().find(|s| s.name == name);
    let mut to_visit: VecDeque<&StreamConfig> = VecDeque::from([cfg]);
    let mut visited: HashSet<&str> = HashSet::new();
    while let Some(s) = to_visit.pop_front() {
        visited.insert(&s.name);
        for src in s.sources.iter().filter(|src| src.external.is_none()) {
            if visited.contains(src.name.as_str()) {
                let overlaps = src.filter_subject.is_empty()
                    || s.subjects.iter().any(|x| collide(x, &src.filter_subject));
                if overlaps {
                    return Err(invalid("detected cycle"));
                }
            } else if let Some(next) = find(&src.name) {
                to_visit.push_back(next);
            }
        }
        if let Some(m) = s.mirror.as_ref().filter(|m| m.external.is_none()) {
            if visited.contains(m.name.as_str()) {
                return Err(invalid("detected cycle"));
            }
            if let Some(next) = find(&m.name) {
                to_visit.push_back(next);
            }
        }
    }
    Ok(())
}

/// The stream's own subjects: valid, distinct, not overlapping each other, and `no_ack`
/// where they overlap what the server itself listens on.
fn stream_subjects(c: &StreamConfig) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for (i, subj) in c.subjects.iter().enumerate() {
        if !valid_subject(subj) {
            return Err(invalid("invalid subject"));
        }
        if !seen.insert(subj.as_str()) {
            return Err(invalid("duplicate subjects detected"));
        }
        if subj == ">" {
            if !c.no_ack {
                return Err(invalid("capturing all subjects requires no-ack to be true"));
            }
            if c.num_replicas != 1 {
                return Err(invalid("capturing all subjects requires replicas of 1"));
            }
        }
        if !c.no_ack {
            for api in ["$JS.>", "$JSC.>", "$NRG.>"] {
                if collide(subj, api) && !subset_match(subj, "$JS.EVENT.>") {
                    return Err(invalid(
                        "subjects that overlap with jetstream api require no-ack to be true",
                    ));
                }
            }
            if collide(subj, "$SYS.>") && !subset_match(subj, "$SYS.ACCOUNT.>") {
                return Err(invalid(
                    "subjects that overlap with system api require no-ack to be true",
                ));
            }
        }
        for later in &c.subjects[i + 1..] {
            if collide(later, subj) {
                return Err(invalid(format!(
                    "subject {} overlaps with {}",
                    go_quote(subj),
                    go_quote(later)
                )));
            }
        }
    }
    Ok(())
}

/// A stream create after [`stream_config`]: a single server has no replicas (nats-server
/// checks this right after `checkStreamCfg`, before looking for an existing stream).
pub fn stream_create(
    cfg: &StreamConfig,
    others: &[StreamConfig],
    limits: &ServerLimits,
    pedantic: bool,
) -> Result<StreamConfig, ApiError> {
    let c = stream_config(cfg, others, limits, pedantic)?;
    if c.num_replicas > 1 && !limits.clustered {
        return Err(errors::stream_replicas_not_supported());
    }
    Ok(c)
}

/// What nats-server's `addStream` checks of a new stream after its limits: the mirror's
/// and sources' filters (as `JSStreamCreateErrF`), then overlaps with `others`.
pub fn stream_add(cfg: &StreamConfig, others: &[StreamConfig]) -> Result<(), ApiError> {
    if let Some(m) = &cfg.mirror {
        if m.subject_transforms.is_empty() {
            if !m.filter_subject.is_empty() && !valid_subject(&m.filter_subject) {
                return Err(errors::stream_create(format!(
                    "subject filter '{}' for the mirror invalid subject",
                    m.filter_subject
                )));
            }
        } else {
            for t in &m.subject_transforms {
                if !t.src.is_empty() && !valid_subject(&t.src) {
                    return Err(errors::stream_create(format!(
                        "invalid subject transform source '{}' for the mirror: invalid subject",
                        t.src
                    )));
                }
                if !t.dest.is_empty()
                    && let Err(e) = new_transform(&t.src, &t.dest)
                {
                    return Err(errors::stream_create(format!(
                        "subject transform from '{}' to '{}' for the mirror: {e}",
                        t.src, t.dest
                    )));
                }
            }
        }
    }
    for s in &cfg.sources {
        if s.subject_transforms.is_empty() {
            if !s.filter_subject.is_empty() && !valid_subject(&s.filter_subject) {
                return Err(errors::stream_create(format!(
                    "subject filter '{}' for the source: invalid subject",
                    s.filter_subject
                )));
            }
        } else {
            for t in &s.subject_transforms {
                if !t.src.is_empty() && !valid_subject(&t.src) {
                    return Err(errors::stream_create(format!(
                        "subject filter '{}' for the source: invalid subject",
                        t.src
                    )));
                }
                if !t.dest.is_empty()
                    && let Err(e) = new_transform(&t.src, &t.dest)
                {
                    return Err(errors::stream_create(format!(
                        "subject transform from '{}' to '{}' for the source: {e}",
                        t.src, t.dest
                    )));
                }
            }
        }
    }
    subjects_overlap(cfg, others)
}

/// The account's other streams may not capture any subject of `cfg`.
pub fn subjects_overlap(cfg: &StreamConfig, others: &[StreamConfig]) -> Result<(), ApiError> {
    for other in others.iter().filter(|o| o.name != cfg.name) {
        if other
            .subjects
            .iter()
            .any(|b| cfg.subjects.iter().any(|a| collide(a, b)))
        {
            return Err(errors::stream_subject_overlap());
        }
    }
    Ok(())
}

/// What an update may change (nats-server's `configUpdateCheck`), for a `new` config that
/// passed [`stream_config`]; the config to store (a sealed stream's limits adjusted).
pub fn stream_update(old: &StreamConfig, new: &StreamConfig) -> Result<StreamConfig, ApiError> {
    stream_update_in(old, new, false)
}

/// [`stream_update`], in a cluster when `clustered` (replicas allowed).
pub fn stream_update_in(
    old: &StreamConfig,
    new: &StreamConfig,
    clustered: bool,
) -> Result<StreamConfig, ApiError> {
    let mut c = new.clone();
    if c.name != old.name {
        return Err(invalid("stream configuration name must match original"));
    }
    if c.num_replicas > 1 && !clustered {
        return Err(errors::stream_replicas_not_supported());
    }
    if c.storage != old.storage {
        return Err(invalid(
            "stream configuration update can not change storage type",
        ));
    }
    if c.retention != old.retention
        && (old.retention == RetentionPolicy::WorkQueue
            || c.retention == RetentionPolicy::WorkQueue)
    {
        return Err(invalid(
            "stream configuration update can not change retention policy to/from workqueue",
        ));
    }
    if old.sealed && !c.sealed {
        return Err(invalid(
            "stream configuration update can not unseal a sealed stream",
        ));
    }
    if old.deny_delete && !c.deny_delete {
        return Err(invalid(
            "stream configuration update can not cancel deny message deletes",
        ));
    }
    if old.deny_purge && !c.deny_purge {
        return Err(invalid(
            "stream configuration update can not cancel deny purge",
        ));
    }
    if c.mirror.is_some() && c.mirror != old.mirror {
        return Err(errors::stream_mirror_not_updatable());
    }
    if c.discard_new_per_subject {
        discard_new_per_subject(&c)?;
    }
    if old.allow_msg_ttl && !c.allow_msg_ttl {
        return Err(invalid("message TTL status can not be disabled"));
    }
    if c.allow_msg_counter != old.allow_msg_counter {
        return Err(invalid(
            "stream configuration update can not change message counter setting",
        ));
    }
    if old.allow_msg_schedules && !c.allow_msg_schedules {
        return Err(invalid("message schedules can not be disabled"));
    }
    if c.persist_mode != old.persist_mode {
        return Err(invalid(
            "stream configuration update can not change persist mode",
        ));
    }
    if c.sealed {
        c.max_age = 0;
        c.discard = DiscardPolicy::New;
        c.deny_delete = true;
        c.deny_purge = true;
        c.allow_rollup_hdrs = false;
    }
    Ok(c)
}

/// A stream update that lowers `consumer_limits` below what existing consumers use fails
/// (as `JSStreamUpdateErrF`), naming them. `consumers` are (name, config) pairs.
pub fn stream_update_consumers<'a>(
    old: &StreamConfig,
    new: &StreamConfig,
    consumers: impl Iterator<Item = (&'a String, &'a ConsumerConfig)>,
) -> Result<(), ApiError> {
    let (old_l, new_l) = (&old.consumer_limits, &new.consumer_limits);
    let threshold = new_l.inactive_threshold;
    let pending = new_l.max_ack_pending;
    let changed = (threshold > 0 && old_l.inactive_threshold != threshold)
        || (pending > 0 && old_l.max_ack_pending != pending);
    if !changed {
        return Ok(());
    }
    let violating: Vec<&str> = consumers
        .filter(|(_, c)| {
            (threshold > 0 && c.inactive_threshold > threshold)
                || (pending > 0 && c.max_ack_pending > pending)
        })
        .map(|(n, _)| n.as_str())
        .collect();
    if violating.is_empty() {
        return Ok(());
    }
    Err(errors::stream_update(format!(
        "change to limits violates consumers: {}",
        violating.join(", ")
    )))
}

// ---------------------------------------------------------------------------------------
// Consumers
// ---------------------------------------------------------------------------------------

/// A consumer config as nats-server stores it (`setConsumerConfigDefaults` then
/// `checkConsumerCfg`), or its first error. A single server refuses replicas first, as
/// nats-server's request handler does.
pub fn consumer_config(
    cfg: &ConsumerConfig,
    stream: &StreamConfig,
    limits: &ServerLimits,
    account_max_ack_pending: i64,
    pedantic: bool,
) -> Result<ConsumerConfig, ApiError> {
    if cfg.num_replicas > 1 && !limits.clustered {
        return Err(errors::stream_replicas_not_supported());
    }
    let mut c = cfg.clone();
    c.apply_defaults(
        &stream.consumer_limits,
        &ConsumerDefaultLimits {
            server_max_ack_pending: limits.max_ack_pending,
            server_max_request_batch: limits.max_request_batch,
            account_max_ack_pending,
        },
        pedantic,
    )?;

    if !c.name.is_empty() && !valid_name(&c.name) {
        return Err(invalid(
            "consumer name can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if !c.durable_name.is_empty() && !valid_name(&c.durable_name) {
        return Err(invalid(
            "consumer durable name can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if c.num_replicas > 0 && c.num_replicas > stream.num_replicas {
        return Err(errors::consumer_replicas_exceeds_stream());
    }
    if c.num_replicas < 0 {
        return Err(errors::replicas_count_cannot_be_negative());
    }
    if matches!(
        stream.retention,
        RetentionPolicy::Interest | RetentionPolicy::WorkQueue
    ) && c.num_replicas != 0
        && c.num_replicas != stream.num_replicas
    {
        return Err(errors::consumer_replicas_should_match_stream());
    }
    if c.backoff.iter().any(|b| *b < 0) {
        return Err(errors::consumer_back_off_negative());
    }
    if c.ack_wait < 0 {
        return Err(errors::consumer_ack_wait_negative());
    }
    if c.ack_policy == AckPolicy::FlowControl {
        if c.deliver_subject.is_empty() {
            return Err(errors::consumer_ack_fc_requires_push());
        }
        if !c.flow_control {
            return Err(errors::consumer_ack_fc_requires_fc());
        }
        if c.idle_heartbeat != SECOND {
            return Err(invalid("flow control ack policy heartbeat needs to be 1s"));
        }
        if c.max_ack_pending <= 0 {
            return Err(errors::consumer_ack_fc_requires_max_ack_pending());
        }
        if c.ack_wait != 0 || !c.backoff.is_empty() {
            return Err(errors::consumer_ack_fc_requires_no_ack_wait());
        }
        if c.max_deliver > 0 {
            return Err(errors::consumer_ack_fc_requires_no_max_deliver());
        }
    }
    if !c.backoff.is_empty()
        && c.max_deliver != -1
        && i64::try_from(c.backoff.len()).unwrap_or(i64::MAX) > c.max_deliver
    {
        return Err(errors::consumer_max_deliver_backoff());
    }
    if c.description.len() > MAX_DESCRIPTION_LEN {
        return Err(errors::consumer_description_too_long(MAX_DESCRIPTION_LEN));
    }

    if c.deliver_subject.is_empty() {
        pull_rules(&c, stream, limits)?;
    } else {
        push_rules(&c, stream)?;
    }
    if limits.max_ack_pending > 0 && c.max_ack_pending > limits.max_ack_pending {
        return Err(errors::consumer_max_pending_ack_excess(
            limits.max_ack_pending,
        ));
    }
    if account_max_ack_pending > 0 && c.max_ack_pending > account_max_ack_pending {
        return Err(errors::consumer_max_pending_ack_excess(
            account_max_ack_pending,
        ));
    }
    let stream_limits = &stream.consumer_limits;
    if stream_limits.max_ack_pending > 0 && c.max_ack_pending > stream_limits.max_ack_pending {
        return Err(errors::consumer_max_pending_ack_excess(
            stream_limits.max_ack_pending,
        ));
    }
    if stream_limits.inactive_threshold > 0
        && c.inactive_threshold > stream_limits.inactive_threshold
    {
        return Err(errors::consumer_inactive_threshold_excess(go_duration(
            stream_limits.inactive_threshold,
        )));
    }
    if c.direct {
        if c.deliver_subject.is_empty() {
            return Err(errors::consumer_direct_requires_push());
        }
        if !c.durable_name.is_empty() {
            return Err(errors::consumer_direct_requires_ephemeral());
        }
    }

    filter_rules(&c)?;
    start_rules(&c)?;

    if !c.sample_freq.is_empty() {
        let s = c.sample_freq.strip_suffix('%').unwrap_or(&c.sample_freq);
        match go_atoi(s) {
            Err(e) => return Err(errors::consumer_invalid_sampling(e)),
            Ok(n) if n < 0 => return Err(errors::consumer_invalid_sampling("<nil>")),
            Ok(_) => {}
        }
    }
    if c.flow_control && c.idle_heartbeat == 0 {
        return Err(errors::consumer_with_flow_control_needs_heartbeats());
    }
    if !c.durable_name.is_empty() && !c.name.is_empty() && c.name != c.durable_name {
        return Err(errors::consumer_create_durable_and_name_mismatch());
    }
    if metadata_len(&c.metadata) > MAX_METADATA_LEN {
        return Err(errors::consumer_metadata_length(format!(
            "{}KB",
            MAX_METADATA_LEN / 1024
        )));
    }
    if c.priority_policy == PriorityPolicy::None {
        if !c.priority_groups.is_empty() {
            return Err(errors::consumer_priority_group_with_policy_none());
        }
        if c.priority_timeout > 0 {
            return Err(errors::consumer_pinned_ttl_without_priority_policy_none());
        }
    } else {
        if !c.deliver_subject.is_empty() {
            return Err(errors::consumer_push_with_priority_group());
        }
        if c.priority_groups.is_empty() {
            return Err(errors::consumer_priority_policy_without_group());
        }
        for g in &c.priority_groups {
            if g.is_empty() {
                return Err(errors::consumer_empty_group_name());
            }
            if !valid_group_name(g) {
                return Err(errors::consumer_invalid_group_name());
            }
        }
    }
    if stream
        .placement
        .as_ref()
        .is_some_and(|p| !p.preferred.is_empty())
    {
        return Err(invalid("preferred server not permitted in placement"));
    }
    Ok(c)
}

/// A push consumer: a literal deliver subject outside the stream, no pull settings.
fn push_rules(c: &ConsumerConfig, stream: &StreamConfig) -> Result<(), ApiError> {
    if !is_literal(&c.deliver_subject) {
        return Err(errors::consumer_deliver_to_wildcards());
    }
    if !valid_subject(&c.deliver_subject) {
        return Err(errors::consumer_invalid_deliver_subject());
    }
    if stream
        .subjects
        .iter()
        .any(|s| subset_match(&c.deliver_subject, s))
    {
        return Err(errors::consumer_deliver_cycle());
    }
    if c.max_waiting != 0 {
        return Err(errors::consumer_push_max_waiting());
    }
    if c.max_ack_pending > 0 && c.ack_policy == AckPolicy::None {
        return Err(errors::consumer_max_pending_ack_policy_required());
    }
    if c.idle_heartbeat > 0 && c.idle_heartbeat < 100 * MILLISECOND {
        return Err(errors::consumer_small_heartbeat());
    }
    Ok(())
}

/// A pull consumer: no push settings, pull request limits in range.
fn pull_rules(
    c: &ConsumerConfig,
    stream: &StreamConfig,
    limits: &ServerLimits,
) -> Result<(), ApiError> {
    if c.ack_policy == AckPolicy::None && stream.retention == RetentionPolicy::WorkQueue {
        return Err(errors::consumer_pull_requires_ack());
    }
    if c.rate_limit_bps > 0 {
        return Err(errors::consumer_pull_with_rate_limit());
    }
    if c.max_waiting < 0 {
        return Err(errors::consumer_max_waiting_negative());
    }
    if c.idle_heartbeat > 0 {
        return Err(errors::consumer_hb_requires_push());
    }
    if c.flow_control {
        return Err(errors::consumer_fc_requires_push());
    }
    if c.max_batch < 0 {
        return Err(errors::consumer_max_request_batch_negative());
    }
    if c.max_expires != 0 && c.max_expires < MILLISECOND {
        return Err(errors::consumer_max_request_expires_too_small());
    }
    if limits.max_request_batch > 0 && c.max_batch > limits.max_request_batch {
        return Err(errors::consumer_max_request_batch_exceeded(
            limits.max_request_batch,
        ));
    }
    Ok(())
}

/// `filter_subject` or `filter_subjects` (not both), valid and not overlapping.
fn filter_rules(c: &ConsumerConfig) -> Result<(), ApiError> {
    if !c.filter_subject.is_empty() && !c.filter_subjects.is_empty() {
        return Err(errors::consumer_duplicate_filter_subjects());
    }
    if !c.filter_subject.is_empty() && !valid_subject(&c.filter_subject) {
        return Err(invalid("invalid subject"));
    }
    if c.filter_subjects.iter().any(String::is_empty) {
        return Err(errors::consumer_empty_filter());
    }
    let filters = gather_filters(c);
    for (i, f) in filters.iter().enumerate() {
        if !valid_subject(f) {
            return Err(invalid("invalid subject"));
        }
        for (j, g) in filters.iter().enumerate() {
            if i != j && subset_match(f, g) {
                return Err(errors::consumer_overlapping_subject_filters());
            }
        }
    }
    Ok(())
}

/// The deliver policy and the optional start sequence and time agree.
fn start_rules(c: &ConsumerConfig) -> Result<(), ApiError> {
    let bad_start = |dp: &str, start: &str| {
        errors::consumer_invalid_policy(format!(
            "consumer delivery policy is deliver {dp}, but optional start {start} is also set"
        ))
    };
    let not_set = |dp: &str, what: &str| {
        errors::consumer_invalid_policy(format!(
            "consumer delivery policy is deliver {dp}, but optional {what} is not set"
        ))
    };
    let seq = c.opt_start_seq > 0;
    let time = c.opt_start_time.is_some();
    let plain = |dp: &str| {
        if seq {
            Err(bad_start(dp, "sequence"))
        } else if time {
            Err(bad_start(dp, "time"))
        } else {
            Ok(())
        }
    };
    match c.deliver_policy {
        DeliverPolicy::All => plain("all"),
        DeliverPolicy::Last => plain("last"),
        DeliverPolicy::New => plain("new"),
        DeliverPolicy::LastPerSubject => {
            plain("last per subject")?;
            if c.filter_subject.is_empty() && c.filter_subjects.is_empty() {
                return Err(not_set("last per subject", "filter subject"));
            }
            Ok(())
        }
        DeliverPolicy::ByStartSequence => {
            if !seq {
                return Err(not_set("by start sequence", "start sequence"));
            }
            if time {
                return Err(bad_start("by start sequence", "time"));
            }
            Ok(())
        }
        DeliverPolicy::ByStartTime => {
            if !time {
                return Err(not_set("by start time", "start time"));
            }
            if seq {
                return Err(bad_start("by start time", "start sequence"));
            }
            Ok(())
        }
    }
}

/// nats-server's priority group names: 1 to 16 of `A-Z a-z 0-9 / _ = -`.
pub(crate) fn valid_group_name(g: &str) -> bool {
    (1..=16).contains(&g.len())
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

/// A consumer's filters as nats-server gathers them: `filter_subjects`, then
/// `filter_subject` (`>` included: it still counts as a filter).
fn gather_filters(c: &ConsumerConfig) -> Vec<&str> {
    let mut f: Vec<&str> = c.filter_subjects.iter().map(String::as_str).collect();
    if !c.filter_subject.is_empty() {
        f.push(&c.filter_subject);
    }
    f
}

fn consumer_name(c: &ConsumerConfig) -> &str {
    if c.durable_name.is_empty() {
        &c.name
    } else {
        &c.durable_name
    }
}

/// What an update of an existing consumer may change (nats-server's
/// `checkNewConsumerConfig`). `old_deliver_bound`: someone listens on the old deliver
/// subject, so it can not move.
pub fn consumer_update(
    old: &ConsumerConfig,
    new: &ConsumerConfig,
    old_deliver_bound: bool,
) -> Result<ConsumerConfig, ApiError> {
    if old == new {
        return Ok(new.clone());
    }
    let refuse = |what: &str| Err(errors::consumer_create(what));
    if old.deliver_policy != new.deliver_policy {
        return refuse("deliver policy can not be updated");
    }
    if old.mem_storage != new.mem_storage {
        return refuse("storage type can not be updated");
    }
    if old.direct != new.direct {
        return refuse("direct can not be updated");
    }
    if old.sourcing != new.sourcing {
        return refuse("sourcing can not be updated");
    }
    if old.opt_start_seq != new.opt_start_seq {
        return refuse("start sequence can not be updated");
    }
    if old.opt_start_time != new.opt_start_time {
        return refuse("start time can not be updated");
    }
    if old.ack_policy != new.ack_policy {
        return refuse("ack policy can not be updated");
    }
    if old.replay_policy != new.replay_policy {
        return refuse("replay policy can not be updated");
    }
    if old.idle_heartbeat != new.idle_heartbeat {
        return refuse("heart beats can not be updated");
    }
    if old.flow_control != new.flow_control {
        return refuse("flow control can not be updated");
    }
    if old.deliver_subject != new.deliver_subject {
        if old.deliver_subject.is_empty() {
            return refuse("can not update pull consumer to push based");
        }
        if new.deliver_subject.is_empty() {
            return refuse("can not update push consumer to pull based");
        }
        if old_deliver_bound {
            return Err(errors::consumer_name_exist());
        }
    }
    if old.max_waiting != new.max_waiting {
        return refuse("max waiting can not be updated");
    }
    if !new.backoff.is_empty()
        && new.max_deliver != -1
        && i64::try_from(new.backoff.len()).unwrap_or(i64::MAX) > new.max_deliver
    {
        return Err(errors::consumer_max_deliver_backoff());
    }
    Ok(new.clone())
}

/// What nats-server's `addConsumer` checks of a consumer that does not exist yet, after
/// the stream's consumer limit: a work-queue stream's rules (explicit ack, deliver all,
/// one consumer per subject; not for direct or sourcing consumers), then the durable
/// name's length. `existing` are the stream's consumers.
pub fn new_consumer<'a>(
    cfg: &ConsumerConfig,
    stream: &StreamConfig,
    existing: impl Iterator<Item = &'a ConsumerConfig>,
) -> Result<(), ApiError> {
    if stream.retention == RetentionPolicy::WorkQueue && !cfg.direct && !cfg.sourcing {
        if !matches!(cfg.ack_policy, AckPolicy::Explicit | AckPolicy::FlowControl) {
            return Err(errors::consumer_wq_requires_explicit_ack());
        }
        if cfg.deliver_policy != DeliverPolicy::All {
            return Err(errors::consumer_wq_consumer_not_deliver_all());
        }
        work_queue_consumer(cfg, existing)?;
    }
    if cfg.durable_name.len() > MAX_NAME_LEN {
        return Err(errors::consumer_name_too_long(MAX_NAME_LEN));
    }
    Ok(())
}

/// A work-queue stream allows one consumer per subject: a new consumer must have filters
/// when the stream has other (non-sourcing) consumers, and they must not collide with
/// theirs.
pub fn work_queue_consumer<'a>(
    new: &ConsumerConfig,
    existing: impl Iterator<Item = &'a ConsumerConfig>,
) -> Result<(), ApiError> {
    let existing: Vec<&ConsumerConfig> = existing.filter(|e| !e.sourcing).collect();
    if existing.is_empty() {
        return Ok(());
    }
    if gather_filters(new).is_empty() {
        return Err(errors::consumer_wq_multiple_unfiltered());
    }
    work_queue_unique(new, existing.into_iter())
}

/// An existing consumer of a work-queue stream being updated (or a new one): its filters
/// may not collide with those of the stream's other consumers; an unfiltered other
/// consumer collides with everything. Direct and sourcing consumers do not count.
pub fn work_queue_unique<'a>(
    cfg: &ConsumerConfig,
    existing: impl Iterator<Item = &'a ConsumerConfig>,
) -> Result<(), ApiError> {
    let name = consumer_name(cfg);
    let others: Vec<&ConsumerConfig> = existing
        .filter(|e| !e.direct && !e.sourcing)
        .filter(|e| name.is_empty() || consumer_name(e) != name)
        .collect();
    for partition in gather_filters(cfg) {
        for e in &others {
            let theirs = gather_filters(e);
            if theirs.is_empty() || theirs.iter().any(|f| collide(partition, f)) {
                return Err(errors::consumer_wq_consumer_not_unique());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Subjects, as nats-server's sublist reads them
// ---------------------------------------------------------------------------------------

const WHITESPACE: [char; 5] = ['\t', '\n', '\x0c', '\r', ' '];

/// nats-server's `IsValidSubject`: non-empty tokens, `>` only last, no whitespace.
fn valid_subject(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut after_fwc = false;
    for t in s.split('.') {
        if t.is_empty() || after_fwc {
            return false;
        }
        if t.len() > 1 {
            if t.contains(WHITESPACE) {
                return false;
            }
            continue;
        }
        match t {
            ">" => after_fwc = true,
            " " | "\t" | "\n" | "\r" | "\x0c" => return false,
            _ => {}
        }
    }
    true
}

/// No `*` or `>` token (nats-server's `subjectIsLiteral`, which does not validate).
fn is_literal(s: &str) -> bool {
    s.split('.').all(|t| t != "*" && t != ">")
}

fn valid_publish_subject(s: &str) -> bool {
    valid_subject(s) && is_literal(s)
}

/// Whether one literal subject could match both (nats-server's `SubjectsCollide`).
fn collide(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let ta: Vec<&str> = a.split('.').collect();
    let tb: Vec<&str> = b.split('.').collect();
    let (pwc_a, fwc_a) = (ta.contains(&"*"), ta.contains(&">"));
    let (pwc_b, fwc_b) = (tb.contains(&"*"), tb.contains(&">"));
    let lit_a = !(pwc_a || fwc_a);
    let lit_b = !(pwc_b || fwc_b);
    match (lit_a, lit_b) {
        (true, true) => return false,
        (true, false) => return subset_tokens(&ta, &tb),
        (false, true) => return subset_tokens(&tb, &ta),
        (false, false) => {}
    }
    if !fwc_a && !fwc_b && ta.len() != tb.len() {
        return false;
    }
    if (ta.len() < tb.len() && !fwc_a) || (tb.len() < ta.len() && !fwc_b) {
        return false;
    }
    ta.iter().zip(tb.iter()).all(|(x, y)| {
        // nats-server looks at the first byte only.
        let wild = |t: &str| t.starts_with(['*', '>']);
        !x.is_empty() && !y.is_empty() && (wild(x) || wild(y) || x == y)
    })
}

/// Whether everything `subject` matches is matched by `test` (nats-server's
/// `subjectIsSubsetMatch`).
fn subset_match(subject: &str, test: &str) -> bool {
    let s: Vec<&str> = subject.split('.').collect();
    let t: Vec<&str> = test.split('.').collect();
    subset_tokens(&s, &t)
}

fn subset_tokens(tokens: &[&str], test: &[&str]) -> bool {
    for (i, t2) in test.iter().enumerate() {
        let Some(t1) = tokens.get(i) else {
            return false;
        };
        if t2.is_empty() {
            return false;
        }
        if *t2 == ">" {
            return true;
        }
        if t1.is_empty() || *t1 == ">" {
            return false;
        }
        if *t1 == "*" {
            if *t2 != "*" {
                return false;
            }
            continue;
        }
        if !t2.starts_with('*') && t1 != t2 {
            return false;
        }
    }
    tokens.len() == test.len()
}

// ---------------------------------------------------------------------------------------
// Subject transforms, as nats-server validates them (the language lives in
// `natrix-transform`, shared with core subject mappings)
// ---------------------------------------------------------------------------------------

/// nats-server's `ValidateMapping`, with its error text.
fn validate_mapping(src: &str, dest: &str) -> Result<(), String> {
    natrix_transform::validate_mapping(src, dest).map_err(|e| e.to_string())
}

/// nats-server's `NewSubjectTransform` (not strict), as a check.
fn new_transform(src: &str, dest: &str) -> Result<(), String> {
    natrix_transform::SubjectTransform::new(src, dest)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// Go's texts
// ---------------------------------------------------------------------------------------

/// Go's `strconv.Atoi`, with its error text.
fn go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let fail = |why: &str| format!("strconv.Atoi: parsing {}: {why}", go_quote(s));
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(fail("invalid syntax"));
    }
    s.parse::<i64>().map_err(|_| fail("value out of range"))
}

/// Go's `time.Duration.String()`: `1m30s`, `1.5s`, `250ms`, `0s`.
fn go_duration(d: Nanos) -> String {
    if d == 0 {
        return "0s".to_owned();
    }
    let sign = if d < 0 { "-" } else { "" };
    let u = d.unsigned_abs();
    // `v / 10^prec`, and its remainder as a fraction without trailing zeros.
    let frac = |v: u64, prec: u32| {
        let p = 10u64.pow(prec);
        let rest = v % p;
        let text = if rest == 0 {
            String::new()
        } else {
            let digits = format!("{rest:0width$}", width = prec as usize);
            format!(".{}", digits.trim_end_matches('0'))
        };
        (v / p, text)
    };
    if u < 1_000_000_000 {
        let body = if u < 1_000 {
            format!("{u}ns")
        } else if u < 1_000_000 {
            let (w, f) = frac(u, 3);
            format!("{w}{f}µs")
        } else {
            let (w, f) = frac(u, 6);
            format!("{w}{f}ms")
        };
        return format!("{sign}{body}");
    }
    let (secs, f) = frac(u, 9);
    let mut out = format!("{}{f}s", secs % 60);
    let mins = secs / 60;
    if mins > 0 {
        out = format!("{}m{out}", mins % 60);
        let hours = mins / 60;
        if hours > 0 {
            out = format!("{hours}h{out}");
        }
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::api::errors::codes;

    const S: Nanos = SECOND;
    const MS: Nanos = MILLISECOND;

    fn stream(v: Value) -> StreamConfig {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("stream config: {e}"))
    }

    fn consumer(v: Value) -> ConsumerConfig {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("consumer config: {e}"))
    }

    /// A stream as the server stores it.
    fn stored(v: Value) -> StreamConfig {
        stream_create(&stream(v), &[], &ServerLimits::default(), false)
            .unwrap_or_else(|e| panic!("stream: {e}"))
    }

    fn create(v: Value) -> Result<StreamConfig, ApiError> {
        stream_create(&stream(v), &[], &ServerLimits::default(), false)
    }

    fn create_pedantic(v: Value) -> Result<StreamConfig, ApiError> {
        stream_create(&stream(v), &[], &ServerLimits::default(), true)
    }

    fn create_with(v: Value, others: &[StreamConfig]) -> Result<StreamConfig, ApiError> {
        stream_create(&stream(v), others, &ServerLimits::default(), false)
    }

    fn cons(v: Value, on: &StreamConfig) -> Result<ConsumerConfig, ApiError> {
        consumer_config(&consumer(v), on, &ServerLimits::default(), -1, false)
    }

    fn cons_pedantic(v: Value, on: &StreamConfig) -> Result<ConsumerConfig, ApiError> {
        consumer_config(&consumer(v), on, &ServerLimits::default(), -1, true)
    }

    #[track_caller]
    fn fails<T: std::fmt::Debug>(r: Result<T, ApiError>, err_code: u16, description: &str) {
        match r {
            Ok(v) => panic!("expected {err_code} {description:?}, got {v:?}"),
            Err(e) => {
                assert_eq!(
                    (e.err_code, e.description.as_str()),
                    (err_code, description)
                );
                let def = errors::lookup(err_code).map(|d| d.code);
                assert_eq!(Some(e.code), def, "code of {err_code}");
            }
        }
    }

    #[track_caller]
    fn passes<T: std::fmt::Debug>(r: Result<T, ApiError>) -> T {
        r.unwrap_or_else(|e| panic!("unexpected error: {e}"))
    }

    const INVALID: u16 = codes::STREAM_INVALID_CONFIG;
    const PEDANTIC: u16 = codes::PEDANTIC;

    // ---- streams: checkStreamCfg ----

    #[test]
    fn stream_names() {
        let msg = "stream name is required and can not contain '.', '*', '>', '\\', '/'";
        fails(create(json!({"name": ""})), INVALID, msg);
        for bad in ["a.b", "a*", "a>", "a b", "a\tb", "a/b", "a\\b"] {
            fails(create(json!({"name": bad})), INVALID, msg);
        }
        fails(
            create(json!({"name": "x".repeat(256)})),
            INVALID,
            "stream name is too long, maximum allowed is 255",
        );
        passes(create(json!({"name": "x".repeat(255)})));
    }

    #[test]
    fn stream_description_and_metadata_sizes() {
        fails(
            create(json!({"name": "S", "description": "d".repeat(4097)})),
            INVALID,
            "stream description is too long, maximum allowed is 4096",
        );
        passes(create(
            json!({"name": "S", "description": "d".repeat(4096)}),
        ));
        fails(
            create(json!({"name": "S", "metadata": {"k": "v".repeat(128 * 1024)}})),
            INVALID,
            "stream metadata exceeds maximum size of 131072 bytes",
        );
    }

    #[test]
    fn stream_defaults_are_echoed() {
        let c = stored(json!({"name": "S"}));
        assert_eq!(c.subjects, vec!["S".to_owned()]);
        assert_eq!(
            (
                c.max_msgs,
                c.max_bytes,
                c.max_msgs_per_subject,
                c.max_msg_size,
                c.max_consumers
            ),
            (-1, -1, -1, -1, -1)
        );
        assert_eq!((c.num_replicas, c.storage), (1, StorageType::File));
        assert_eq!(c.duplicate_window, 120 * S);
        // Lowered to max_age, and to the server's limit.
        assert_eq!(
            stored(json!({"name": "S", "max_age": 30 * S})).duplicate_window,
            30 * S
        );
        let lim = ServerLimits {
            max_duplicate_window: 60 * S,
            ..ServerLimits::default()
        };
        let c = passes(stream_config(
            &stream(json!({"name": "S"})),
            &[],
            &lim,
            false,
        ));
        assert_eq!(c.duplicate_window, 60 * S);
        // Below -1 becomes -1; an empty placement goes away.
        let c = stored(json!({"name": "S", "max_msgs": -5, "placement": {}}));
        assert_eq!((c.max_msgs, c.placement), (-1, None));
        // Delete markers turn on TTLs and roll-ups (dropping deny_purge first).
        let c = stored(json!({"name": "S", "subject_delete_marker_ttl": S, "deny_purge": true}));
        assert!(c.allow_msg_ttl && c.allow_rollup_hdrs && !c.deny_purge);
        let c = stored(json!({"name": "S", "allow_msg_schedules": true}));
        assert!(c.allow_rollup_hdrs);
        // republish without a source republishes everything.
        let c = stored(json!({"name": "S", "subjects": ["a.>"], "republish": {"dest": "b.>"}}));
        assert_eq!(c.republish.map(|r| r.src), Some(">".to_owned()));
        // The implicit republish of a transform's destination.
        let c = stored(json!({"name": "S", "subjects": ["in.>"],
            "subject_transform": {"src": "in.>", "dest": "out.>"},
            "republish": {"src": ">", "dest": ">"}}));
        let rp = c.republish.unwrap_or_default();
        assert_eq!((rp.src.as_str(), rp.dest.as_str()), ("out.>", "out.>"));
    }

    #[test]
    fn stream_replicas() {
        fails(
            create(json!({"name": "S", "num_replicas": 6})),
            INVALID,
            "maximum replicas is 5",
        );
        fails(
            create(json!({"name": "S", "num_replicas": -1})),
            codes::REPLICAS_COUNT_CANNOT_BE_NEGATIVE,
            "replicas count cannot be negative",
        );
        fails(
            create(json!({"name": "S", "num_replicas": 3})),
            codes::STREAM_REPLICAS_NOT_SUPPORTED,
            "replicas > 1 not supported in non-clustered mode",
        );
        // checkStreamCfg alone accepts them (clustered JetStream would place them).
        passes(stream_config(
            &stream(json!({"name": "S", "num_replicas": 3})),
            &[],
            &ServerLimits::default(),
            false,
        ));
    }

    #[test]
    fn stream_pedantic_limits() {
        for f in [
            "max_msgs",
            "max_msgs_per_subject",
            "max_bytes",
            "max_msg_size",
            "max_consumers",
        ] {
            fails(
                create_pedantic(json!({"name": "S", f: -2})),
                PEDANTIC,
                &format!("pedantic mode: {f} must be set to -1"),
            );
        }
        // 0 is unset, not a change.
        passes(create_pedantic(json!({"name": "S", "max_msgs": 0})));
        // Checks nats-server makes before the limits come first.
        fails(
            create_pedantic(json!({"name": "S", "num_replicas": 6, "max_msgs": -2})),
            INVALID,
            "maximum replicas is 5",
        );
        // And the ones after come after.
        fails(
            create_pedantic(json!({"name": "S", "max_age": -1, "max_msgs": -2})),
            PEDANTIC,
            "pedantic mode: max_msgs must be set to -1",
        );
    }

    #[test]
    fn stream_max_age() {
        fails(
            create(json!({"name": "S", "max_age": -1})),
            INVALID,
            "max age can not be negative",
        );
        fails(
            create(json!({"name": "S", "max_age": 50 * MS})),
            INVALID,
            "max age needs to be >= 100ms",
        );
        passes(create(json!({"name": "S", "max_age": 100 * MS})));
    }

    #[test]
    fn stream_duplicates() {
        fails(
            create_pedantic(json!({"name": "S", "max_age": 10 * S})),
            PEDANTIC,
            "pedantic mode: duplicate window cannot be bigger than max age",
        );
        fails(
            create_pedantic(json!({"name": "S", "max_age": 50 * MS})),
            INVALID,
            "max age needs to be >= 100ms",
        );
        let lim = ServerLimits {
            max_duplicate_window: 60 * S,
            ..ServerLimits::default()
        };
        fails(
            stream_config(&stream(json!({"name": "S"})), &[], &lim, true),
            PEDANTIC,
            "pedantic mode: duplicate window limits are higher than current limits",
        );
        fails(
            create(json!({"name": "S", "duplicate_window": -1})),
            INVALID,
            "duplicates window can not be negative",
        );
        fails(
            create(json!({"name": "S", "max_age": 5 * S, "duplicate_window": 10 * S})),
            INVALID,
            "duplicates window can not be larger then max age",
        );
        fails(
            stream_config(
                &stream(json!({"name": "S", "duplicate_window": 90 * S})),
                &[],
                &lim,
                false,
            ),
            INVALID,
            "duplicates window can not be larger then server limit of 1m0s",
        );
        fails(
            create(json!({"name": "S", "duplicate_window": 50 * MS})),
            INVALID,
            "duplicates window needs to be >= 100ms",
        );
    }

    #[test]
    fn stream_rollups_and_counters() {
        fails(
            create(json!({"name": "S", "deny_purge": true, "allow_rollup_hdrs": true})),
            INVALID,
            "roll-ups require the purge permission",
        );
        let counter = |extra: Value| {
            let mut v = json!({"name": "S", "allow_msg_counter": true});
            if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
                o.extend(e);
            }
            create(v)
        };
        fails(
            counter(json!({"discard": "new"})),
            INVALID,
            "counter stream cannot use discard new",
        );
        fails(
            counter(json!({"allow_msg_ttl": true})),
            INVALID,
            "counter stream cannot use message TTLs",
        );
        fails(
            counter(json!({"allow_msg_schedules": true})),
            INVALID,
            "counter stream cannot use message schedules",
        );
        fails(
            counter(json!({"retention": "interest"})),
            INVALID,
            "counter stream can only use limits retention",
        );
        // Delete markers turn TTLs on only after the counter checks.
        let c = passes(counter(json!({"subject_delete_marker_ttl": S})));
        assert!(c.allow_msg_ttl && c.allow_msg_counter);
    }

    #[test]
    fn stream_discard_new_per_subject() {
        fails(
            create(json!({"name": "S", "discard_new_per_subject": true})),
            INVALID,
            "discard new per subject requires discard new policy to be set",
        );
        fails(
            create(json!({"name": "S", "discard_new_per_subject": true, "discard": "new"})),
            INVALID,
            "discard new per subject requires max msgs per subject > 0",
        );
        passes(create(
            json!({"name": "S", "discard_new_per_subject": true, "discard": "new",
            "max_msgs_per_subject": 1}),
        ));
    }

    #[test]
    fn stream_delete_markers_and_schedules() {
        fails(
            create(json!({"name": "S", "subject_delete_marker_ttl": 500 * MS})),
            INVALID,
            "subject delete marker TTL must be at least 1 second",
        );
        fails(
            create(json!({"name": "S", "subject_delete_marker_ttl": -1})),
            INVALID,
            "subject delete marker TTL must not be negative",
        );
        fails(
            create_pedantic(json!({"name": "S", "subject_delete_marker_ttl": S})),
            INVALID,
            "subject delete marker cannot be set if message TTLs are disabled",
        );
        fails(
            create_pedantic(json!({"name": "S", "subject_delete_marker_ttl": S,
                "allow_msg_ttl": true})),
            INVALID,
            "subject delete marker cannot be set if roll-ups are disabled",
        );
        // The 1 s minimum comes before the pedantic default.
        fails(
            create_pedantic(json!({"name": "S", "subject_delete_marker_ttl": 10 * MS})),
            INVALID,
            "subject delete marker TTL must be at least 1 second",
        );
        fails(
            create(json!({"name": "S", "allow_msg_schedules": true, "discard": "new"})),
            INVALID,
            "message scheduling cannot use discard new",
        );
        fails(
            create_pedantic(json!({"name": "S", "allow_msg_schedules": true})),
            INVALID,
            "message scheduling cannot be set if roll-ups are disabled",
        );
    }

    #[test]
    fn stream_persist_mode() {
        fails(
            create(json!({"name": "S", "persist_mode": "async", "storage": "memory"})),
            INVALID,
            "async persist mode is only supported on file storage",
        );
        fails(
            stream_config(
                &stream(json!({"name": "S", "persist_mode": "async", "num_replicas": 3})),
                &[],
                &ServerLimits::default(),
                false,
            ),
            INVALID,
            "async persist mode is not supported on replicated streams",
        );
        fails(
            create(json!({"name": "S", "persist_mode": "async", "allow_atomic": true})),
            INVALID,
            "async persist mode is not supported with atomic batch publish",
        );
    }

    #[test]
    fn stream_mirrors() {
        let mirror = |extra: Value| {
            let mut v = json!({"name": "M", "mirror": {"name": "O"}});
            if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
                o.extend(e);
            }
            create(v)
        };
        let m = passes(mirror(json!({})));
        assert_eq!((m.subjects.len(), m.duplicate_window), (0, 0));
        fails(
            mirror(json!({"first_seq": 5})),
            codes::MIRROR_WITH_FIRST_SEQ,
            "stream mirrors can not have first sequence configured",
        );
        fails(
            mirror(json!({"subjects": ["a"]})),
            codes::MIRROR_WITH_SUBJECTS,
            "stream mirrors can not contain subjects",
        );
        fails(
            mirror(json!({"sources": [{"name": "X"}]})),
            codes::MIRROR_WITH_SOURCES,
            "stream mirrors can not also contain other sources",
        );
        fails(
            mirror(json!({"allow_msg_counter": true})),
            codes::MIRROR_WITH_COUNTERS,
            "stream mirrors can not also calculate counters",
        );
        fails(
            mirror(json!({"allow_atomic": true})),
            codes::MIRROR_WITH_ATOMIC_PUBLISH,
            "stream mirrors can not also use atomic publishing",
        );
        fails(
            mirror(json!({"allow_batched": true})),
            codes::MIRROR_WITH_BATCH_PUBLISH,
            "stream mirrors can not also use batch publishing",
        );
        fails(
            mirror(json!({"allow_msg_schedules": true})),
            codes::MIRROR_WITH_MSG_SCHEDULES,
            "stream mirrors can not also schedule messages",
        );
        fails(
            create(json!({"name": "M", "mirror": {"name": "O",
                "consumer": {"name": "c", "deliver_subject": "d.*"}}})),
            codes::MIRROR_DURABLE_CONSUMER_CFG_INVALID,
            "stream mirror consumer config is invalid",
        );
        fails(
            create(
                json!({"name": "M", "mirror": {"name": "O", "filter_subject": "a",
                "subject_transforms": [{"src": "b", "dest": "c"}]}}),
            ),
            codes::MIRROR_MULTIPLE_FILTERS_NOT_ALLOWED,
            "mirror with multiple subject transforms cannot also have a single subject filter",
        );
        fails(
            mirror(json!({"subject_delete_marker_ttl": S})),
            INVALID,
            "subject delete markers forbidden on mirrors",
        );
        fails(
            create(json!({"name": "M", "mirror": {"name": "O",
                "subject_transforms": [{"src": "a..b", "dest": "c"}]}})),
            codes::MIRROR_INVALID_SUBJECT_FILTER,
            "mirror transform source: invalid subject a..b",
        );
        fails(
            create(json!({"name": "M", "mirror": {"name": "O",
                "subject_transforms": [{"src": "a.*", "dest": "b.{{foo(1)}}"}]}})),
            codes::MIRROR_INVALID_TRANSFORM_DESTINATION,
            "mirror transform: invalid mapping destination: unknown function in {{foo(1)}}",
        );
        fails(
            create(json!({"name": "M", "mirror": {"name": "O",
                "subject_transforms": [{"src": "a.*"}, {"src": "a.b"}]}})),
            codes::MIRROR_OVERLAPPING_SUBJECT_FILTERS,
            "mirror subject filters can not overlap",
        );
        fails(
            create(json!({"name": "M", "mirror": {"name": "O.x"}})),
            codes::MIRROR_INVALID_STREAM_NAME,
            "mirrored stream name is invalid",
        );
    }

    #[test]
    fn stream_mirror_origin() {
        let origin = stored(json!({"name": "O", "max_msg_size": 1024, "allow_direct": true}));
        fails(
            create_with(
                json!({"name": "M", "mirror": {"name": "O"}, "max_msg_size": 512}),
                std::slice::from_ref(&origin),
            ),
            codes::MIRROR_MAX_MESSAGE_SIZE_TOO_BIG,
            "stream mirror must have max message size >= source",
        );
        // mirror_direct follows the origin's allow_direct.
        let m = passes(create_with(
            json!({"name": "M", "mirror": {"name": "O"}}),
            std::slice::from_ref(&origin),
        ));
        assert!(m.mirror_direct);
        fails(
            stream_create(
                &stream(json!({"name": "M", "mirror": {"name": "O"}})),
                std::slice::from_ref(&origin),
                &ServerLimits::default(),
                true,
            ),
            PEDANTIC,
            "pedantic mode: origin stream has direct get set, mirror has it disabled",
        );
    }

    #[test]
    fn stream_sources() {
        fails(
            create(json!({"name": "S", "sources": [{"name": "A"}], "allow_msg_schedules": true})),
            codes::SOURCE_WITH_MSG_SCHEDULES,
            "stream source can not also schedule messages",
        );
        fails(
            create(json!({"name": "S", "sources": [{"name": "A*"}]})),
            codes::SOURCE_INVALID_STREAM_NAME,
            "sourced stream name is invalid",
        );
        fails(
            create(json!({"name": "S", "sources": [{"name": "A"}, {"name": "A"}]})),
            codes::SOURCE_DUPLICATE_DETECTED,
            "duplicate source configuration detected",
        );
        // The same stream with other filters is not a duplicate.
        passes(create(
            json!({"name": "S", "sources": [{"name": "A", "filter_subject": "a"},
            {"name": "A", "filter_subject": "b"}]}),
        ));
        fails(
            create(
                json!({"name": "S", "sources": [{"name": "A", "filter_subject": "a",
                "subject_transforms": [{"src": "b", "dest": "c"}]}]}),
            ),
            codes::SOURCE_MULTIPLE_FILTERS_NOT_ALLOWED,
            "source with multiple subject transforms cannot also have a single subject filter",
        );
        fails(
            create(json!({"name": "S", "sources": [{"name": "A",
                "subject_transforms": [{"src": "a b.c", "dest": "c"}]}]})),
            codes::SOURCE_INVALID_SUBJECT_FILTER,
            "source transform source: invalid subject a b.c",
        );
        fails(
            create(json!({"name": "S", "sources": [{"name": "A",
                "subject_transforms": [{"src": "a", "dest": "b.$1"}]}]})),
            codes::SOURCE_INVALID_TRANSFORM_DESTINATION,
            "source transform: invalid mapping destination: wildcard index out of range in $1",
        );
        fails(
            create(json!({"name": "S", "sources": [{"name": "A",
                "subject_transforms": [{"src": "a.>", "dest": "x.>"},
                    {"src": "a.b", "dest": "y.b"}]}]})),
            codes::SOURCE_OVERLAPPING_SUBJECT_FILTERS,
            "source filters can not overlap",
        );
        fails(
            create(
                json!({"name": "S", "sources": [{"name": "A", "opt_start_seq": 5,
                "consumer": {"name": "c", "deliver_subject": "d"}}]}),
            ),
            codes::SOURCE_DURABLE_CONSUMER_CFG_INVALID,
            "stream source consumer config is invalid",
        );
        fails(
            create(json!({"name": "S", "sources": [
                {"name": "A", "subject_transforms": [{"src": "a"}],
                    "consumer": {"name": "c", "deliver_subject": "d"}},
                {"name": "A", "subject_transforms": [{"src": "b"}],
                    "consumer": {"name": "c", "deliver_subject": "e"}}]})),
            codes::SOURCE_DURABLE_CONSUMER_DUPLICATE_DETECTED,
            "duplicate stream source consumer detected",
        );
        let origin = stored(json!({"name": "A", "max_msg_size": 100}));
        fails(
            create_with(
                json!({"name": "S", "sources": [{"name": "A"}], "max_msg_size": 10}),
                &[origin],
            ),
            codes::SOURCE_MAX_MESSAGE_SIZE_TOO_BIG,
            "stream source must have max message size >= target",
        );
    }

    #[test]
    fn stream_external_prefixes() {
        fails(
            create(json!({"name": "S", "sources": [{"name": "A",
                "external": {"api": "$JS.x.API", "deliver": "dl.*"}}]})),
            codes::STREAM_INVALID_EXTERNAL_DELIVERY_SUBJ,
            "stream external delivery prefix dl.* must not contain wildcards",
        );
        let origin = stored(json!({"name": "A", "subjects": ["foo.>"]}));
        fails(
            create_with(
                json!({"name": "S", "sources": [{"name": "A"},
                    {"name": "B", "external": {"api": "$JS.x.API", "deliver": "foo"}}]}),
                &[origin],
            ),
            codes::STREAM_EXTERNAL_DEL_PREFIX_OVERLAPS,
            "stream external delivery prefix foo overlaps with stream subject foo.>",
        );
        fails(
            create(json!({"name": "S", "sources": [{"name": "A",
                "external": {"api": "$JS.*.API"}}]})),
            INVALID,
            "stream external api prefix \"$JS.*.API\" must be a valid subject without wildcards",
        );
        fails(
            create(json!({"name": "S", "mirror": {"name": "A",
                "external": {"api": "$JS.API"}}})),
            codes::STREAM_EXTERNAL_API_OVERLAP,
            "stream external api prefix $JS.API must not overlap with $JS.API",
        );
    }

    #[test]
    fn stream_cycles() {
        let b = stored(json!({"name": "B", "subjects": ["b"], "sources": [{"name": "A"}]}));
        fails(
            create_with(
                json!({"name": "A", "subjects": ["a"], "sources": [{"name": "B"}]}),
                std::slice::from_ref(&b),
            ),
            INVALID,
            "detected cycle",
        );
        // B sources only what A does not capture: no cycle.
        let b = stored(
            json!({"name": "B", "subjects": ["b"], "sources": [{"name": "A", "filter_subject": "x"}]}),
        );
        passes(create_with(
            json!({"name": "A", "subjects": ["a"], "sources": [{"name": "B"}]}),
            &[b],
        ));
        let b = stored(json!({"name": "B", "mirror": {"name": "A"}}));
        fails(
            create_with(json!({"name": "A", "mirror": {"name": "B"}}), &[b]),
            INVALID,
            "detected cycle",
        );
    }

    #[test]
    fn stream_subject_rules() {
        fails(
            create(json!({"name": "S", "subjects": ["a..b"]})),
            INVALID,
            "invalid subject",
        );
        // A repeated subject overlaps itself before it is seen twice.
        fails(
            create(json!({"name": "S", "subjects": ["a", "a"]})),
            INVALID,
            "subject \"a\" overlaps with \"a\"",
        );
        fails(
            create(json!({"name": "S", "subjects": [">"]})),
            INVALID,
            "capturing all subjects requires no-ack to be true",
        );
        fails(
            stream_config(
                &stream(json!({"name": "S", "subjects": [">"], "no_ack": true, "num_replicas": 3})),
                &[],
                &ServerLimits::default(),
                false,
            ),
            INVALID,
            "capturing all subjects requires replicas of 1",
        );
        for api in ["$JS.API.>", "$JS.>", "$JSC.x", "$NRG.*", "*.API.>"] {
            fails(
                create(json!({"name": "S", "subjects": [api]})),
                INVALID,
                "subjects that overlap with jetstream api require no-ack to be true",
            );
        }
        passes(create(json!({"name": "S", "subjects": ["$JS.EVENT.>"]})));
        passes(create(
            json!({"name": "S", "subjects": ["$JS.API.>"], "no_ack": true}),
        ));
        fails(
            create(json!({"name": "S", "subjects": ["$SYS.>"]})),
            INVALID,
            "subjects that overlap with system api require no-ack to be true",
        );
        passes(create(json!({"name": "S", "subjects": ["$SYS.ACCOUNT.>"]})));
        fails(
            create(json!({"name": "S", "subjects": ["foo.*", "foo.bar"]})),
            INVALID,
            "subject \"foo.*\" overlaps with \"foo.bar\"",
        );
    }

    #[test]
    fn stream_transform_and_republish() {
        fails(
            create(json!({"name": "S", "subject_transform": {"src": "a..b", "dest": "c"}})),
            codes::STREAM_TRANSFORM_INVALID_SOURCE,
            "stream transform source: invalid subject a..b",
        );
        fails(
            create(json!({"name": "S", "subjects": ["a.*"],
                "subject_transform": {"src": "a.*", "dest": "b.{{wildcard(2)}}"}})),
            codes::STREAM_TRANSFORM_INVALID_DESTINATION,
            "stream transform: invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]",
        );
        fails(
            create(
                json!({"name": "S", "subjects": ["a.>"], "republish": {"src": ">", "dest": "a.b"}}),
            ),
            INVALID,
            "stream configuration for republish destination forms a cycle",
        );
        fails(
            create(
                json!({"name": "S", "subjects": ["a.>"], "republish": {"src": "a.>", "dest": "b.*"}}),
            ),
            INVALID,
            "stream configuration for republish with transform from 'a.>' to 'b.*' not valid",
        );
        fails(
            create_pedantic(
                json!({"name": "S", "subjects": ["a.>"], "republish": {"dest": "b.>"}}),
            ),
            PEDANTIC,
            "pedantic mode: republish source can not be empty",
        );
        fails(
            create_pedantic(json!({"name": "S", "subjects": ["in.>"],
                "subject_transform": {"src": "in.>", "dest": "out.>"},
                "republish": {"src": ">", "dest": ">"}})),
            PEDANTIC,
            "pedantic mode: implicit republish based on subject transform",
        );
        // The transform is checked before the republish's pedantic default.
        fails(
            create_pedantic(json!({"name": "S", "subjects": ["a.>"],
                "subject_transform": {"src": "a..b", "dest": "c"},
                "republish": {"dest": "b.>"}})),
            codes::STREAM_TRANSFORM_INVALID_SOURCE,
            "stream transform source: invalid subject a..b",
        );
        fails(
            create(json!({"name": "S", "placement": {"preferred": "n1"}})),
            INVALID,
            "preferred server not permitted in placement",
        );
    }

    #[test]
    fn stream_add_filters_and_overlaps() {
        let c = stored(json!({"name": "M", "mirror": {"name": "O", "filter_subject": "a..b"}}));
        fails(
            stream_add(&c, &[]),
            codes::STREAM_CREATE,
            "subject filter 'a..b' for the mirror invalid subject",
        );
        let c = stored(json!({"name": "S", "sources": [{"name": "O", "filter_subject": "a b"}]}));
        fails(
            stream_add(&c, &[]),
            codes::STREAM_CREATE,
            "subject filter 'a b' for the source: invalid subject",
        );
        let other = stored(json!({"name": "O", "subjects": ["foo.*"]}));
        let c = stored(json!({"name": "S", "subjects": ["foo.bar"]}));
        fails(
            stream_add(&c, std::slice::from_ref(&other)),
            codes::STREAM_SUBJECT_OVERLAP,
            "subjects overlap with an existing stream",
        );
        passes(stream_add(
            &stored(json!({"name": "S", "subjects": ["bar"]})),
            &[other],
        ));
    }

    // ---- streams: updates ----

    fn update(old: Value, new: Value) -> Result<StreamConfig, ApiError> {
        let old = stored(old);
        let new = passes(stream_config(
            &stream(new),
            &[],
            &ServerLimits::default(),
            false,
        ));
        stream_update(&old, &new)
    }

    #[test]
    fn stream_update_rules() {
        let base = json!({"name": "S", "subjects": ["a"]});
        let with = |extra: Value| {
            let mut v = base.clone();
            if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
                o.extend(e);
            }
            v
        };
        fails(
            stream_update(&stored(base.clone()), &stored(json!({"name": "T"}))),
            INVALID,
            "stream configuration name must match original",
        );
        fails(
            update(base.clone(), with(json!({"num_replicas": 3}))),
            codes::STREAM_REPLICAS_NOT_SUPPORTED,
            "replicas > 1 not supported in non-clustered mode",
        );
        fails(
            update(base.clone(), with(json!({"storage": "memory"}))),
            INVALID,
            "stream configuration update can not change storage type",
        );
        passes(update(base.clone(), with(json!({"retention": "interest"}))));
        fails(
            update(base.clone(), with(json!({"retention": "workqueue"}))),
            INVALID,
            "stream configuration update can not change retention policy to/from workqueue",
        );
        fails(
            update(with(json!({"deny_delete": true})), base.clone()),
            INVALID,
            "stream configuration update can not cancel deny message deletes",
        );
        fails(
            update(with(json!({"deny_purge": true})), base.clone()),
            INVALID,
            "stream configuration update can not cancel deny purge",
        );
        fails(
            update(
                json!({"name": "S", "mirror": {"name": "O"}}),
                json!({"name": "S", "mirror": {"name": "P"}}),
            ),
            codes::STREAM_MIRROR_NOT_UPDATABLE,
            "stream mirror configuration can not be updated",
        );
        // A mirror may be promoted to a plain stream.
        passes(update(
            json!({"name": "S", "mirror": {"name": "O"}}),
            json!({"name": "S"}),
        ));
        fails(
            update(with(json!({"allow_msg_ttl": true})), base.clone()),
            INVALID,
            "message TTL status can not be disabled",
        );
        fails(
            update(base.clone(), with(json!({"allow_msg_counter": true}))),
            INVALID,
            "stream configuration update can not change message counter setting",
        );
        fails(
            update(with(json!({"allow_msg_schedules": true})), base.clone()),
            INVALID,
            "message schedules can not be disabled",
        );
        fails(
            update(base.clone(), with(json!({"persist_mode": "async"}))),
            INVALID,
            "stream configuration update can not change persist mode",
        );
        let mut new = stored(base.clone());
        new.discard_new_per_subject = true;
        fails(
            stream_update(&stored(base.clone()), &new),
            INVALID,
            "discard new per subject requires discard new policy to be set",
        );
    }

    #[test]
    fn stream_update_seals() {
        let mut old = stored(json!({"name": "S", "max_age": 10 * S}));
        old.sealed = true;
        fails(
            stream_update(&old, &stored(json!({"name": "S", "max_age": 10 * S}))),
            INVALID,
            "stream configuration update can not unseal a sealed stream",
        );
        let c = passes(update(
            json!({"name": "S", "max_age": 10 * S, "allow_rollup_hdrs": true}),
            json!({"name": "S", "max_age": 10 * S, "allow_rollup_hdrs": true, "sealed": true}),
        ));
        assert_eq!(
            (
                c.max_age,
                c.discard,
                c.deny_delete,
                c.deny_purge,
                c.allow_rollup_hdrs
            ),
            (0, DiscardPolicy::New, true, true, false)
        );
    }

    #[test]
    fn stream_update_consumer_limits() {
        let old = stored(json!({"name": "S"}));
        let new = stored(json!({"name": "S", "consumer_limits": {"max_ack_pending": 10}}));
        let a = consumer(json!({"durable_name": "a", "max_ack_pending": 5}));
        let b = consumer(json!({"durable_name": "b", "max_ack_pending": 50}));
        let c = consumer(json!({"durable_name": "c", "max_ack_pending": 100}));
        let (na, nb, nc) = ("a".to_owned(), "b".to_owned(), "c".to_owned());
        fails(
            stream_update_consumers(&old, &new, [(&na, &a), (&nb, &b), (&nc, &c)].into_iter()),
            codes::STREAM_UPDATE,
            "change to limits violates consumers: b, c",
        );
        passes(stream_update_consumers(&old, &new, [(&na, &a)].into_iter()));
        // Unchanged limits are not checked again.
        passes(stream_update_consumers(&new, &new, [(&nb, &b)].into_iter()));
    }

    // ---- consumers ----

    fn limits_stream() -> StreamConfig {
        stored(json!({"name": "S", "subjects": ["s.>"]}))
    }

    #[test]
    fn consumer_defaults_are_echoed() {
        let s = limits_stream();
        let c = passes(cons(
            json!({"durable_name": "d", "ack_policy": "explicit"}),
            &s,
        ));
        assert_eq!(
            (
                c.ack_wait,
                c.max_ack_pending,
                c.max_waiting,
                c.max_deliver,
                c.inactive_threshold
            ),
            (30 * S, 1000, 512, -1, 0)
        );
        let c = passes(cons(json!({"name": "e"}), &s));
        assert_eq!((c.inactive_threshold, c.max_ack_pending), (5 * S, 0));
        let c = passes(cons(
            json!({"deliver_subject": "out", "ack_policy": "flow_control",
            "max_ack_pending": 10}),
            &s,
        ));
        assert_eq!((c.flow_control, c.idle_heartbeat), (true, S));
        let c = passes(cons(
            json!({"durable_name": "d", "ack_policy": "explicit",
            "backoff": [S, 2 * S]}),
            &s,
        ));
        assert_eq!(c.ack_wait, S);
        let c = passes(cons(
            json!({"durable_name": "d", "priority_policy": "pinned_client",
            "priority_groups": ["g"]}),
            &s,
        ));
        assert_eq!(c.priority_timeout, 120 * S);
    }

    #[test]
    fn consumer_names_and_replicas() {
        let s = limits_stream();
        fails(
            cons(json!({"num_replicas": 3}), &s),
            codes::STREAM_REPLICAS_NOT_SUPPORTED,
            "replicas > 1 not supported in non-clustered mode",
        );
        fails(
            cons_pedantic(json!({"max_deliver": -2}), &s),
            PEDANTIC,
            "pedantic mode: max_deliver must be set to -1",
        );
        fails(
            cons(json!({"name": "a.b"}), &s),
            INVALID,
            "consumer name can not contain '.', '*', '>', '\\', '/'",
        );
        fails(
            cons(json!({"durable_name": "a b"}), &s),
            INVALID,
            "consumer durable name can not contain '.', '*', '>', '\\', '/'",
        );
        let mut r0 = s.clone();
        r0.num_replicas = 0;
        fails(
            cons(json!({"num_replicas": 1}), &r0),
            codes::CONSUMER_REPLICAS_EXCEEDS_STREAM,
            "consumer config replica count exceeds parent stream",
        );
        fails(
            cons(json!({"num_replicas": -1}), &s),
            codes::REPLICAS_COUNT_CANNOT_BE_NEGATIVE,
            "replicas count cannot be negative",
        );
        let mut interest = s.clone();
        interest.retention = RetentionPolicy::Interest;
        interest.num_replicas = 3;
        fails(
            cons(json!({"num_replicas": 1}), &interest),
            codes::CONSUMER_REPLICAS_SHOULD_MATCH_STREAM,
            "consumer config replicas must match interest retention stream's replicas",
        );
    }

    #[test]
    fn consumer_acks() {
        let s = limits_stream();
        fails(
            cons(json!({"ack_policy": "explicit", "backoff": [-1]}), &s),
            codes::CONSUMER_BACK_OFF_NEGATIVE,
            "consumer backoff needs to be positive",
        );
        fails(
            cons(json!({"ack_policy": "explicit", "ack_wait": -1}), &s),
            codes::CONSUMER_ACK_WAIT_NEGATIVE,
            "consumer ack wait needs to be positive",
        );
        fails(
            cons(json!({"ack_policy": "flow_control"}), &s),
            codes::CONSUMER_ACK_FC_REQUIRES_PUSH,
            "flow control ack policy requires a push based consumer",
        );
        fails(
            cons_pedantic(
                json!({"ack_policy": "flow_control", "deliver_subject": "d"}),
                &s,
            ),
            codes::CONSUMER_ACK_FC_REQUIRES_FC,
            "flow control ack policy requires flow control",
        );
        fails(
            cons_pedantic(
                json!({"ack_policy": "flow_control", "deliver_subject": "d",
                "flow_control": true, "idle_heartbeat": 2 * S}),
                &s,
            ),
            INVALID,
            "flow control ack policy heartbeat needs to be 1s",
        );
        fails(
            cons(
                json!({"ack_policy": "flow_control", "deliver_subject": "d",
                "max_ack_pending": -1}),
                &s,
            ),
            codes::CONSUMER_ACK_FC_REQUIRES_MAX_ACK_PENDING,
            "flow control ack policy requires max ack pending",
        );
        fails(
            cons(
                json!({"ack_policy": "flow_control", "deliver_subject": "d", "ack_wait": S}),
                &s,
            ),
            codes::CONSUMER_ACK_FC_REQUIRES_NO_ACK_WAIT,
            "flow control ack policy requires unset ack wait",
        );
        fails(
            cons(
                json!({"ack_policy": "flow_control", "deliver_subject": "d", "max_deliver": 3}),
                &s,
            ),
            codes::CONSUMER_ACK_FC_REQUIRES_NO_MAX_DELIVER,
            "flow control ack policy requires unset max deliver",
        );
        fails(
            cons(
                json!({"ack_policy": "explicit", "backoff": [S, S, S], "max_deliver": 2}),
                &s,
            ),
            codes::CONSUMER_MAX_DELIVER_BACKOFF,
            "max deliver is required to be > length of backoff values",
        );
        fails(
            cons(json!({"description": "d".repeat(4097)}), &s),
            codes::CONSUMER_DESCRIPTION_TOO_LONG,
            "consumer description is too long, maximum allowed is 4096",
        );
    }

    #[test]
    fn consumer_push_rules() {
        let s = limits_stream();
        fails(
            cons(json!({"deliver_subject": "d.*"}), &s),
            codes::CONSUMER_DELIVER_TO_WILDCARDS,
            "consumer deliver subject has wildcards",
        );
        fails(
            cons(json!({"deliver_subject": "d..e"}), &s),
            codes::CONSUMER_INVALID_DELIVER_SUBJECT,
            "invalid push consumer deliver subject",
        );
        fails(
            cons(json!({"deliver_subject": "s.x"}), &s),
            codes::CONSUMER_DELIVER_CYCLE,
            "consumer deliver subject forms a cycle",
        );
        fails(
            cons(json!({"deliver_subject": "d", "max_waiting": 5}), &s),
            codes::CONSUMER_PUSH_MAX_WAITING,
            "consumer in push mode can not set max waiting",
        );
        fails(
            cons(json!({"deliver_subject": "d", "max_ack_pending": 5}), &s),
            codes::CONSUMER_MAX_PENDING_ACK_POLICY_REQUIRED,
            "consumer requires ack policy for max ack pending",
        );
        fails(
            cons(
                json!({"deliver_subject": "d", "idle_heartbeat": 50 * MS}),
                &s,
            ),
            codes::CONSUMER_SMALL_HEARTBEAT,
            "consumer idle heartbeat needs to be >= 100ms",
        );
    }

    #[test]
    fn consumer_pull_rules() {
        let s = limits_stream();
        let mut wq = s.clone();
        wq.retention = RetentionPolicy::WorkQueue;
        fails(
            cons(json!({"durable_name": "d"}), &wq),
            codes::CONSUMER_PULL_REQUIRES_ACK,
            "consumer in pull mode requires explicit ack policy on workqueue stream",
        );
        fails(
            cons(json!({"rate_limit_bps": 1000}), &s),
            codes::CONSUMER_PULL_WITH_RATE_LIMIT,
            "consumer in pull mode can not have rate limit set",
        );
        fails(
            cons_pedantic(json!({"max_waiting": -1}), &s),
            PEDANTIC,
            "pedantic mode: max_waiting must not be negative",
        );
        fails(
            cons(json!({"idle_heartbeat": S}), &s),
            codes::CONSUMER_HB_REQUIRES_PUSH,
            "consumer idle heartbeat requires a push based consumer",
        );
        fails(
            cons(json!({"flow_control": true}), &s),
            codes::CONSUMER_FC_REQUIRES_PUSH,
            "consumer flow control requires a push based consumer",
        );
        fails(
            cons(json!({"max_expires": MS / 2}), &s),
            codes::CONSUMER_MAX_REQUEST_EXPIRES_TOO_SMALL,
            "consumer max request expires needs to be >= 1ms",
        );
        let lim = ServerLimits {
            max_request_batch: 100,
            ..ServerLimits::default()
        };
        fails(
            consumer_config(&consumer(json!({"max_batch": 200})), &s, &lim, -1, false),
            codes::CONSUMER_MAX_REQUEST_BATCH_EXCEEDED,
            "consumer max request batch exceeds server limit of 100",
        );
        let c = passes(consumer_config(&consumer(json!({})), &s, &lim, -1, false));
        assert_eq!(c.max_batch, 100);
    }

    #[test]
    fn consumer_limits() {
        let s = limits_stream();
        let lim = ServerLimits {
            max_ack_pending: 100,
            ..ServerLimits::default()
        };
        fails(
            consumer_config(
                &consumer(json!({"ack_policy": "explicit", "max_ack_pending": 200})),
                &s,
                &lim,
                -1,
                false,
            ),
            codes::CONSUMER_MAX_PENDING_ACK_EXCESS,
            "consumer max ack pending exceeds system limit of 100",
        );
        let limited = stored(json!({"name": "S", "consumer_limits":
            {"max_ack_pending": 50, "inactive_threshold": 10 * S}}));
        fails(
            cons(
                json!({"ack_policy": "explicit", "max_ack_pending": 100}),
                &limited,
            ),
            codes::CONSUMER_MAX_PENDING_ACK_EXCESS,
            "consumer max ack pending exceeds system limit of 50",
        );
        fails(
            cons(json!({"inactive_threshold": 20 * S}), &limited),
            codes::CONSUMER_INACTIVE_THRESHOLD_EXCESS,
            "consumer inactive threshold exceeds system limit of 10s",
        );
        let c = passes(cons(json!({"ack_policy": "explicit"}), &limited));
        assert_eq!((c.max_ack_pending, c.inactive_threshold), (50, 10 * S));
        fails(
            cons(json!({"direct": true}), &s),
            codes::CONSUMER_DIRECT_REQUIRES_PUSH,
            "consumer direct requires a push based consumer",
        );
        fails(
            cons(
                json!({"direct": true, "durable_name": "d", "deliver_subject": "x"}),
                &s,
            ),
            codes::CONSUMER_DIRECT_REQUIRES_EPHEMERAL,
            "consumer direct requires an ephemeral consumer",
        );
    }

    #[test]
    fn consumer_filters() {
        let s = limits_stream();
        fails(
            cons(
                json!({"filter_subject": "s.a", "filter_subjects": ["s.b"]}),
                &s,
            ),
            codes::CONSUMER_DUPLICATE_FILTER_SUBJECTS,
            "consumer cannot have both FilterSubject and FilterSubjects specified",
        );
        fails(
            cons(json!({"filter_subject": "s..a"}), &s),
            INVALID,
            "invalid subject",
        );
        fails(
            cons(json!({"filter_subjects": ["s.a", ""]}), &s),
            codes::CONSUMER_EMPTY_FILTER,
            "consumer filter in FilterSubjects cannot be empty",
        );
        fails(
            cons(json!({"filter_subjects": ["s. a"]}), &s),
            INVALID,
            "invalid subject",
        );
        fails(
            cons(json!({"filter_subjects": ["s.*", "s.a"]}), &s),
            codes::CONSUMER_OVERLAPPING_SUBJECT_FILTERS,
            "consumer subject filters cannot overlap",
        );
        // Filters outside the stream's subjects are allowed.
        passes(cons(json!({"filter_subject": "other"}), &s));
    }

    #[test]
    fn consumer_start_positions() {
        let s = limits_stream();
        let t = 1_700_000_000 * S;
        let cases = [
            (
                json!({"deliver_policy": "all", "opt_start_seq": 5}),
                "consumer delivery policy is deliver all, but optional start sequence is also set",
            ),
            (
                json!({"opt_start_time": t}),
                "consumer delivery policy is deliver all, but optional start time is also set",
            ),
            (
                json!({"deliver_policy": "last", "opt_start_seq": 5}),
                "consumer delivery policy is deliver last, but optional start sequence is also set",
            ),
            (
                json!({"deliver_policy": "new", "opt_start_time": t}),
                "consumer delivery policy is deliver new, but optional start time is also set",
            ),
            (
                json!({"deliver_policy": "last_per_subject", "opt_start_seq": 5}),
                "consumer delivery policy is deliver last per subject, but optional start sequence is also set",
            ),
            (
                json!({"deliver_policy": "last_per_subject"}),
                "consumer delivery policy is deliver last per subject, but optional filter subject is not set",
            ),
            (
                json!({"deliver_policy": "by_start_sequence"}),
                "consumer delivery policy is deliver by start sequence, but optional start sequence is not set",
            ),
            (
                json!({"deliver_policy": "by_start_sequence", "opt_start_seq": 1, "opt_start_time": t}),
                "consumer delivery policy is deliver by start sequence, but optional start time is also set",
            ),
            (
                json!({"deliver_policy": "by_start_time"}),
                "consumer delivery policy is deliver by start time, but optional start time is not set",
            ),
            (
                json!({"deliver_policy": "by_start_time", "opt_start_seq": 1, "opt_start_time": t}),
                "consumer delivery policy is deliver by start time, but optional start start sequence is also set",
            ),
        ];
        for (v, msg) in cases {
            let v = match v {
                Value::Object(mut o) => {
                    if let Some(Value::Number(n)) = o.get("opt_start_time").cloned() {
                        let ns = n.as_i64().unwrap_or_default();
                        o.insert("opt_start_time".into(), json!(crate::time::rfc3339(ns)));
                    }
                    Value::Object(o)
                }
                v => v,
            };
            fails(cons(v, &s), codes::CONSUMER_INVALID_POLICY, msg);
        }
    }

    #[test]
    fn consumer_misc_rules() {
        let s = limits_stream();
        fails(
            cons(json!({"sample_freq": "abc"}), &s),
            codes::CONSUMER_INVALID_SAMPLING,
            "failed to parse consumer sampling configuration: strconv.Atoi: parsing \"abc\": invalid syntax",
        );
        fails(
            cons(json!({"sample_freq": "-5%"}), &s),
            codes::CONSUMER_INVALID_SAMPLING,
            "failed to parse consumer sampling configuration: <nil>",
        );
        passes(cons(json!({"sample_freq": "50%"}), &s));
        fails(
            cons(json!({"deliver_subject": "d", "flow_control": true}), &s),
            codes::CONSUMER_WITH_FLOW_CONTROL_NEEDS_HEARTBEATS,
            "consumer with flow control also needs heartbeats",
        );
        fails(
            cons(json!({"durable_name": "a", "name": "b"}), &s),
            codes::CONSUMER_CREATE_DURABLE_AND_NAME_MISMATCH,
            "Consumer Durable and Name have to be equal if both are provided",
        );
        fails(
            cons(json!({"metadata": {"k": "v".repeat(128 * 1024)}}), &s),
            codes::CONSUMER_METADATA_LENGTH,
            "consumer metadata exceeds maximum size of 128KB",
        );
        let mut placed = s.clone();
        placed.placement = Some(crate::api::types::Placement {
            preferred: "n1".into(),
            ..Default::default()
        });
        fails(
            cons(json!({}), &placed),
            INVALID,
            "preferred server not permitted in placement",
        );
    }

    #[test]
    fn consumer_priority_groups() {
        let s = limits_stream();
        fails(
            cons(
                json!({"deliver_subject": "d", "priority_policy": "overflow",
                "priority_groups": ["g"]}),
                &s,
            ),
            codes::CONSUMER_PUSH_WITH_PRIORITY_GROUP,
            "priority groups can not be used with push consumers",
        );
        fails(
            cons(json!({"priority_policy": "overflow"}), &s),
            codes::CONSUMER_PRIORITY_POLICY_WITHOUT_GROUP,
            "Setting PriorityPolicy requires at least one PriorityGroup to be set",
        );
        fails(
            cons(
                json!({"priority_policy": "overflow", "priority_groups": [""]}),
                &s,
            ),
            codes::CONSUMER_EMPTY_GROUP_NAME,
            "Group name cannot be an empty string",
        );
        fails(
            cons(
                json!({"priority_policy": "overflow", "priority_groups": ["g.1"]}),
                &s,
            ),
            codes::CONSUMER_INVALID_GROUP_NAME,
            "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters",
        );
        fails(
            cons(
                json!({"priority_policy": "overflow", "priority_groups": ["g".repeat(17)]}),
                &s,
            ),
            codes::CONSUMER_INVALID_GROUP_NAME,
            "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters",
        );
        fails(
            cons(json!({"priority_groups": ["g"]}), &s),
            codes::CONSUMER_PRIORITY_GROUP_WITH_POLICY_NONE,
            "consumer can not have priority groups when policy is none",
        );
        fails(
            cons(json!({"priority_timeout": S}), &s),
            codes::CONSUMER_PINNED_TTL_WITHOUT_PRIORITY_POLICY_NONE,
            "PinnedTTL cannot be set when PriorityPolicy is none",
        );
    }

    #[test]
    fn consumer_update_rules() {
        let s = limits_stream();
        let old = passes(cons(
            json!({"durable_name": "d", "ack_policy": "explicit",
            "deliver_subject": "out"}),
            &s,
        ));
        let changed = |f: &dyn Fn(&mut ConsumerConfig)| {
            let mut n = old.clone();
            f(&mut n);
            consumer_update(&old, &n, false)
        };
        type Change<'a> = &'a dyn Fn(&mut ConsumerConfig);
        let cases: [(Change<'_>, &str); 12] = [
            (
                &|c| c.deliver_policy = DeliverPolicy::New,
                "deliver policy can not be updated",
            ),
            (&|c| c.mem_storage = true, "storage type can not be updated"),
            (&|c| c.direct = true, "direct can not be updated"),
            (&|c| c.sourcing = true, "sourcing can not be updated"),
            (
                &|c| c.opt_start_seq = 3,
                "start sequence can not be updated",
            ),
            (
                &|c| c.opt_start_time = Some(1),
                "start time can not be updated",
            ),
            (
                &|c| c.ack_policy = AckPolicy::All,
                "ack policy can not be updated",
            ),
            (
                &|c| c.replay_policy = crate::api::types::ReplayPolicy::Original,
                "replay policy can not be updated",
            ),
            (&|c| c.idle_heartbeat = S, "heart beats can not be updated"),
            (
                &|c| c.flow_control = true,
                "flow control can not be updated",
            ),
            (
                &|c| c.deliver_subject.clear(),
                "can not update push consumer to pull based",
            ),
            (&|c| c.max_waiting = 3, "max waiting can not be updated"),
        ];
        for (f, msg) in cases {
            fails(changed(f), codes::CONSUMER_CREATE, msg);
        }
        let pull = passes(cons(
            json!({"durable_name": "p", "ack_policy": "explicit"}),
            &s,
        ));
        let mut push = pull.clone();
        push.deliver_subject = "x".into();
        fails(
            consumer_update(&pull, &push, false),
            codes::CONSUMER_CREATE,
            "can not update pull consumer to push based",
        );
        let mut moved = old.clone();
        moved.deliver_subject = "elsewhere".into();
        fails(
            consumer_update(&old, &moved, true),
            codes::CONSUMER_NAME_EXIST,
            "consumer name already in use",
        );
        passes(consumer_update(&old, &moved, false));
        fails(
            changed(&|c| {
                c.backoff = vec![S, S];
                c.max_deliver = 1;
            }),
            codes::CONSUMER_MAX_DELIVER_BACKOFF,
            "max deliver is required to be > length of backoff values",
        );
        let updated = passes(changed(&|c| {
            c.description = "new".into();
            c.ack_wait = 5 * S;
            c.max_ack_pending = 7;
            c.headers_only = true;
        }));
        assert_eq!((updated.ack_wait, updated.max_ack_pending), (5 * S, 7));
    }

    #[test]
    fn new_consumer_rules() {
        let wq = stored(json!({"name": "W", "subjects": ["w.>"], "retention": "workqueue"}));
        fails(
            new_consumer(
                &consumer(json!({"ack_policy": "all"})),
                &wq,
                std::iter::empty(),
            ),
            codes::CONSUMER_WQ_REQUIRES_EXPLICIT_ACK,
            "workqueue stream requires explicit ack",
        );
        fails(
            new_consumer(
                &consumer(json!({"ack_policy": "explicit", "deliver_policy": "new"})),
                &wq,
                std::iter::empty(),
            ),
            codes::CONSUMER_WQ_CONSUMER_NOT_DELIVER_ALL,
            "consumer must be deliver all on workqueue stream",
        );
        let a = consumer(json!({"durable_name": "a", "ack_policy": "explicit",
            "filter_subject": "w.a"}));
        fails(
            new_consumer(
                &consumer(json!({"ack_policy": "explicit"})),
                &wq,
                [&a].into_iter(),
            ),
            codes::CONSUMER_WQ_MULTIPLE_UNFILTERED,
            "multiple non-filtered consumers not allowed on workqueue stream",
        );
        fails(
            new_consumer(
                &consumer(json!({"durable_name": "b", "ack_policy": "explicit",
                    "filter_subject": "w.*"})),
                &wq,
                [&a].into_iter(),
            ),
            codes::CONSUMER_WQ_CONSUMER_NOT_UNIQUE,
            "filtered consumer not unique on workqueue stream",
        );
        // A filtered consumer next to an unfiltered one is not unique either.
        let all = consumer(json!({"durable_name": "all", "ack_policy": "explicit"}));
        fails(
            new_consumer(&a, &wq, [&all].into_iter()),
            codes::CONSUMER_WQ_CONSUMER_NOT_UNIQUE,
            "filtered consumer not unique on workqueue stream",
        );
        passes(new_consumer(
            &consumer(json!({"durable_name": "b", "ack_policy": "explicit",
                "filter_subject": "w.b"})),
            &wq,
            [&a].into_iter(),
        ));
        // An update is checked against the others only.
        passes(work_queue_unique(&a, [&a].into_iter()));
        fails(
            new_consumer(
                &consumer(json!({"durable_name": "d".repeat(256)})),
                &limits_stream(),
                std::iter::empty(),
            ),
            codes::CONSUMER_NAME_TOO_LONG,
            "consumer name is too long, maximum allowed is 255",
        );
    }

    // ---- nats-server's subject and Go text helpers ----

    #[test]
    fn subjects_as_nats_server_reads_them() {
        assert!(valid_subject("a.*.>") && valid_subject("a*b.c") && !valid_subject("a.>.b"));
        assert!(!valid_subject("a..b") && !valid_subject("") && !valid_subject("a b"));
        assert!(is_literal("a*b") && !is_literal("a.*") && !is_literal(">"));
        assert!(collide("a.*", "a.b") && collide("a.>", "*.b.c") && collide("a", "a"));
        assert!(!collide("a.*", "a.b.c") && !collide("a.>", "a") && !collide("a.*", "b.*"));
        assert!(subset_match("a.b", "a.*") && subset_match("a.*", "a.>"));
        assert!(!subset_match("a.>", "a.*") && !subset_match("a.*", "a.b"));
    }

    #[test]
    fn mappings_as_nats_server_validates_them() {
        assert_eq!(validate_mapping("a.*", "b.{{wildcard(1)}}"), Ok(()));
        assert_eq!(validate_mapping("a.*.*", "b.$2.$1"), Ok(()));
        assert_eq!(validate_mapping("a.*", "{{partition(3,1)}}.x"), Ok(()));
        assert_eq!(validate_mapping("a", "{{random(5)}}"), Ok(()));
        assert_eq!(validate_mapping("a.>", "b.>"), Ok(()));
        assert_eq!(validate_mapping("a.>", "b"), Err("invalid subject".into()));
        assert_eq!(
            validate_mapping("a.*", "b..c"),
            Err("invalid mapping destination: invalid transform".into())
        );
        assert_eq!(
            validate_mapping("a.*", "b.{{wildcard()}}"),
            Err("invalid mapping destination: not enough arguments passed to the function in {{wildcard()}}".into())
        );
        assert_eq!(
            validate_mapping("a.*", "b.{{wildcard(1,2)}}"),
            Err("invalid mapping destination: too many arguments passed to the function in {{wildcard(1,2)}}".into())
        );
        assert_eq!(
            validate_mapping("a.*", "b.{{wildcard(x)}}"),
            Err("invalid mapping destination: function argument is invalid or in the wrong format in {{wildcard(x)}}".into())
        );
        // nats-server 2.15.2 accepts left() and right() (older ValidateMapping did not).
        assert_eq!(validate_mapping("a.*", "b.{{left(1,2)}}"), Ok(()));
        assert_eq!(
            validate_mapping("a.*", "b.{{LEFT(1,2)}}"),
            Err("invalid mapping destination: unknown function in {{LEFT(1,2)}}".into())
        );
        assert_eq!(new_transform("a.*", "b.{{left(1,2)}}"), Ok(()));
    }

    #[test]
    fn go_texts() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60 * S), "1m0s");
        assert_eq!(go_duration(90 * S + 500 * MS), "1m30.5s");
        assert_eq!(go_duration(3_600 * S), "1h0m0s");
        assert_eq!(go_duration(250 * MS), "250ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(7), "7ns");
        assert_eq!(go_duration(-S), "-1s");
        assert_eq!(go_atoi("+42"), Ok(42));
        assert_eq!(
            go_atoi("4 2"),
            Err("strconv.Atoi: parsing \"4 2\": invalid syntax".into())
        );
        assert_eq!(
            go_atoi("99999999999999999999"),
            Err("strconv.Atoi: parsing \"99999999999999999999\": value out of range".into())
        );
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
