//! nats-server's JetStream API errors: the `{"code","err_code","description"}` object of
//! every failed `$JS.API.>` response, and one constructor per entry of nats-server's
//! `server/errors.json` (2.15.0-dev, 226 entries, `err_code` 10002 to 10227).
//!
//! Each constructor is named after nats-server's error constant without its `JS` prefix
//! and its `Err`/`ErrF`/`Error` suffix, in snake case, as its Go constructor
//! `NewJS<Name>Error` is: `JSStreamNameExistErr` is [`stream_name_exist`],
//! `JSStreamWrongLastSequenceErrF` is [`stream_wrong_last_sequence`]. A description with
//! placeholders (`{err}`, `{seq}`, `{subject}`, …) takes one argument per placeholder,
//! named and ordered as nats-server's constructor takes them (for example
//! [`restore_subscribe_failed`]`(err, subject)`), and substitutes each placeholder once
//! in a single pass, as Go's `strings.Replacer` does. Arguments are formatted with
//! `Display`, as Go formats an `error` with `Error()` and anything else with `%v`.
//! Every numeric `err_code` is also a constant in [`codes`] (`codes::STREAM_NAME_EXIST`
//! is 10058), and [`ERRORS`] lists them all in `err_code` order for lookups.
//!
//! Nothing is left out. Some of these a single server never returns: the ones about the
//! JetStream cluster and its Raft groups (`cluster_incomplete`, `cluster_no_peers`,
//! `cluster_not_assigned`, `cluster_not_avail`, `cluster_not_leader`, `cluster_tags`,
//! `cluster_peer_not_member`, `cluster_server_not_member`,
//! `cluster_server_member_change_inflight`, `cluster_rescue`, `raft_general`,
//! `stream_assignment`, `peer_remap`, `stream_move_and_scale`, `stream_move_in_progress`,
//! `stream_reconfigure_in_progress`, `stream_reconfigure_not_in_progress`) and the ones
//! of stream templates, an API nats-server no longer serves (`stream_template_create`,
//! `stream_template_delete`, `stream_template_not_found`, `template_name_not_match_subject`).
//! They stay so that clustered JetStream can use them and so that no number is ever
//! reused for something else. (A single server does return `cluster_not_active` and
//! `cluster_required` for the cluster-only API calls.)
//!
//! nats-server's `Unless(err)` option (return `err` itself when it already is an API
//! error) has no counterpart here: a handler that holds an [`ApiError`] returns it.

use std::fmt::{self, Display};

use serde::{Deserialize, Serialize};

/// The error object of a JetStream API response. `err_code` and `description` are left
/// out of the JSON when zero/empty, as in nats-server; `code` always appears.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// An HTTP-like status: 400, 404, 409, 412, 429, 500 or 503.
    pub code: u16,
    /// nats-server's error number (see [`codes`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub err_code: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

impl ApiError {
    pub fn new(code: u16, err_code: u16, description: impl Into<String>) -> Self {
        ApiError {
            code,
            err_code,
            description: description.into(),
        }
    }

    /// Whether this is the error numbered `err_code` (nats-server's `IsNatsErr`).
    pub fn is(&self, err_code: u16) -> bool {
        self.err_code == err_code
    }

    /// Builds an error from a description template, replacing each `(placeholder,
    /// value)` in one left-to-right pass: replaced text is not scanned again.
    fn render(code: u16, err_code: u16, template: &str, args: &[(&str, &dyn Display)]) -> Self {
        if args.is_empty() {
            return ApiError::new(code, err_code, template);
        }
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        'scan: while let Some(open) = rest.find('{') {
            for (key, value) in args {
                if rest[open..].starts_with(key) {
                    out.push_str(&rest[..open]);
                    out.push_str(&value.to_string());
                    rest = &rest[open + key.len()..];
                    continue 'scan;
                }
            }
            out.push_str(&rest[..=open]);
            rest = &rest[open + 1..];
        }
        out.push_str(rest);
        ApiError::new(code, err_code, out)
    }
}

/// As nats-server's `ApiError.Error()`: `"<description> (<err_code>)"`.
impl Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description, self.err_code)
    }
}

impl std::error::Error for ApiError {}

/// One entry of nats-server's error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorDef {
    /// nats-server's constant, e.g. `JSStreamNameExistErr`.
    pub constant: &'static str,
    pub code: u16,
    pub err_code: u16,
    /// The description, with its `{placeholders}`.
    pub description: &'static str,
}

/// The table entry for an `err_code`.
pub fn lookup(err_code: u16) -> Option<&'static ErrorDef> {
    ERRORS
        .binary_search_by_key(&err_code, |d| d.err_code)
        .ok()
        .map(|i| &ERRORS[i])
}

macro_rules! api_errors {
    ($( $fn:ident ( $($arg:ident),* ) = $konst:ident, $go:literal, $code:literal, $err_code:literal, $desc:literal; )*) => {
        /// nats-server's numeric `err_code` of every JetStream API error.
        pub mod codes {
            $(
                #[doc = concat!("`", $go, "`: ", $desc)]
                pub const $konst: u16 = $err_code;
            )*
        }

        /// Every error, in `err_code` order.
        pub static ERRORS: &[ErrorDef] = &[
            $( ErrorDef { constant: $go, code: $code, err_code: $err_code, description: $desc }, )*
        ];

        $(
            #[doc = concat!("`", $go, "` (", $code, ", ", $err_code, "): \"", $desc, "\"")]
            pub fn $fn( $($arg: impl Display),* ) -> ApiError {
                ApiError::render($code, $err_code, $desc, &[ $( (concat!("{", stringify!($arg), "}"), &$arg as &dyn Display) ),* ])
            }
        )*
    };
}

api_errors! {
    account_resources_exceeded() = ACCOUNT_RESOURCES_EXCEEDED, "JSAccountResourcesExceededErr", 400, 10002, "resource limits exceeded for account";
    bad_request() = BAD_REQUEST, "JSBadRequestErr", 400, 10003, "bad request";
    cluster_incomplete() = CLUSTER_INCOMPLETE, "JSClusterIncompleteErr", 503, 10004, "incomplete results";
    cluster_no_peers(err) = CLUSTER_NO_PEERS, "JSClusterNoPeersErrF", 400, 10005, "{err}";
    cluster_not_active() = CLUSTER_NOT_ACTIVE, "JSClusterNotActiveErr", 500, 10006, "JetStream not in clustered mode";
    cluster_not_assigned() = CLUSTER_NOT_ASSIGNED, "JSClusterNotAssignedErr", 500, 10007, "JetStream cluster not assigned to this server";
    cluster_not_avail() = CLUSTER_NOT_AVAIL, "JSClusterNotAvailErr", 503, 10008, "JetStream system temporarily unavailable";
    cluster_not_leader() = CLUSTER_NOT_LEADER, "JSClusterNotLeaderErr", 500, 10009, "JetStream cluster can not handle request";
    cluster_required() = CLUSTER_REQUIRED, "JSClusterRequiredErr", 503, 10010, "JetStream clustering support required";
    cluster_tags() = CLUSTER_TAGS, "JSClusterTagsErr", 400, 10011, "tags placement not supported for operation";
    consumer_create(err) = CONSUMER_CREATE, "JSConsumerCreateErrF", 500, 10012, "{err}";
    consumer_name_exist() = CONSUMER_NAME_EXIST, "JSConsumerNameExistErr", 400, 10013, "consumer name already in use";
    consumer_not_found() = CONSUMER_NOT_FOUND, "JSConsumerNotFoundErr", 404, 10014, "consumer not found";
    snapshot_deliver_subject_invalid() = SNAPSHOT_DELIVER_SUBJECT_INVALID, "JSSnapshotDeliverSubjectInvalidErr", 400, 10015, "deliver subject not valid";
    consumer_durable_name_not_in_subject() = CONSUMER_DURABLE_NAME_NOT_IN_SUBJECT, "JSConsumerDurableNameNotInSubjectErr", 400, 10016, "consumer expected to be durable but no durable name set in subject";
    consumer_durable_name_not_match_subject() = CONSUMER_DURABLE_NAME_NOT_MATCH_SUBJECT, "JSConsumerDurableNameNotMatchSubjectErr", 400, 10017, "consumer name in subject does not match durable name in request";
    consumer_durable_name_not_set() = CONSUMER_DURABLE_NAME_NOT_SET, "JSConsumerDurableNameNotSetErr", 400, 10018, "consumer expected to be durable but a durable name was not set";
    consumer_ephemeral_with_durable_in_subject() = CONSUMER_EPHEMERAL_WITH_DURABLE_IN_SUBJECT, "JSConsumerEphemeralWithDurableInSubjectErr", 400, 10019, "consumer expected to be ephemeral but detected a durable name set in subject";
    consumer_ephemeral_with_durable_name() = CONSUMER_EPHEMERAL_WITH_DURABLE_NAME, "JSConsumerEphemeralWithDurableNameErr", 400, 10020, "consumer expected to be ephemeral but a durable name was set in request";
    stream_external_api_overlap(prefix, subject) = STREAM_EXTERNAL_API_OVERLAP, "JSStreamExternalApiOverlapErrF", 400, 10021, "stream external api prefix {prefix} must not overlap with {subject}";
    stream_external_del_prefix_overlaps(prefix, subject) = STREAM_EXTERNAL_DEL_PREFIX_OVERLAPS, "JSStreamExternalDelPrefixOverlapsErrF", 400, 10022, "stream external delivery prefix {prefix} overlaps with stream subject {subject}";
    insufficient_resources() = INSUFFICIENT_RESOURCES, "JSInsufficientResourcesErr", 503, 10023, "insufficient resources";
    stream_invalid_external_delivery_subj(prefix) = STREAM_INVALID_EXTERNAL_DELIVERY_SUBJ, "JSStreamInvalidExternalDeliverySubjErrF", 400, 10024, "stream external delivery prefix {prefix} must not contain wildcards";
    invalid_json(err) = INVALID_JSON, "JSInvalidJSONErr", 400, 10025, "invalid JSON: {err}";
    maximum_consumers_limit() = MAXIMUM_CONSUMERS_LIMIT, "JSMaximumConsumersLimitErr", 400, 10026, "maximum consumers limit reached";
    maximum_streams_limit() = MAXIMUM_STREAMS_LIMIT, "JSMaximumStreamsLimitErr", 400, 10027, "maximum number of streams reached";
    memory_resources_exceeded() = MEMORY_RESOURCES_EXCEEDED, "JSMemoryResourcesExceededErr", 500, 10028, "insufficient memory resources available";
    mirror_consumer_setup_failed(err) = MIRROR_CONSUMER_SETUP_FAILED, "JSMirrorConsumerSetupFailedErrF", 500, 10029, "{err}";
    mirror_max_message_size_too_big() = MIRROR_MAX_MESSAGE_SIZE_TOO_BIG, "JSMirrorMaxMessageSizeTooBigErr", 400, 10030, "stream mirror must have max message size >= source";
    mirror_with_sources() = MIRROR_WITH_SOURCES, "JSMirrorWithSourcesErr", 400, 10031, "stream mirrors can not also contain other sources";
    mirror_with_start_seq_and_time() = MIRROR_WITH_START_SEQ_AND_TIME, "JSMirrorWithStartSeqAndTimeErr", 400, 10032, "stream mirrors can not have both start seq and start time configured";
    mirror_with_subject_filters() = MIRROR_WITH_SUBJECT_FILTERS, "JSMirrorWithSubjectFiltersErr", 400, 10033, "stream mirrors can not contain filtered subjects";
    mirror_with_subjects() = MIRROR_WITH_SUBJECTS, "JSMirrorWithSubjectsErr", 400, 10034, "stream mirrors can not contain subjects";
    no_account() = NO_ACCOUNT, "JSNoAccountErr", 503, 10035, "account not found";
    cluster_un_support_feature() = CLUSTER_UN_SUPPORT_FEATURE, "JSClusterUnSupportFeatureErr", 503, 10036, "not currently supported in clustered mode";
    no_message_found() = NO_MESSAGE_FOUND, "JSNoMessageFoundErr", 404, 10037, "no message found";
    not_empty_request() = NOT_EMPTY_REQUEST, "JSNotEmptyRequestErr", 400, 10038, "expected an empty request payload";
    not_enabled_for_account() = NOT_ENABLED_FOR_ACCOUNT, "JSNotEnabledForAccountErr", 503, 10039, "JetStream not enabled for account";
    cluster_peer_not_member() = CLUSTER_PEER_NOT_MEMBER, "JSClusterPeerNotMemberErr", 400, 10040, "peer not a member";
    raft_general(err) = RAFT_GENERAL, "JSRaftGeneralErrF", 500, 10041, "{err}";
    restore_subscribe_failed(err, subject) = RESTORE_SUBSCRIBE_FAILED, "JSRestoreSubscribeFailedErrF", 500, 10042, "JetStream unable to subscribe to restore snapshot {subject}: {err}";
    sequence_not_found(seq) = SEQUENCE_NOT_FOUND, "JSSequenceNotFoundErrF", 400, 10043, "sequence {seq} not found";
    cluster_server_not_member() = CLUSTER_SERVER_NOT_MEMBER, "JSClusterServerNotMemberErr", 400, 10044, "server is not a member of the cluster";
    source_consumer_setup_failed(err) = SOURCE_CONSUMER_SETUP_FAILED, "JSSourceConsumerSetupFailedErrF", 500, 10045, "{err}";
    source_max_message_size_too_big() = SOURCE_MAX_MESSAGE_SIZE_TOO_BIG, "JSSourceMaxMessageSizeTooBigErr", 400, 10046, "stream source must have max message size >= target";
    storage_resources_exceeded() = STORAGE_RESOURCES_EXCEEDED, "JSStorageResourcesExceededErr", 500, 10047, "insufficient storage resources available";
    stream_assignment(err) = STREAM_ASSIGNMENT, "JSStreamAssignmentErrF", 500, 10048, "{err}";
    stream_create(err) = STREAM_CREATE, "JSStreamCreateErrF", 500, 10049, "{err}";
    stream_delete(err) = STREAM_DELETE, "JSStreamDeleteErrF", 500, 10050, "{err}";
    stream_general(err) = STREAM_GENERAL, "JSStreamGeneralErrorF", 500, 10051, "{err}";
    stream_invalid_config(err) = STREAM_INVALID_CONFIG, "JSStreamInvalidConfigF", 500, 10052, "{err}";
    stream_limits(err) = STREAM_LIMITS, "JSStreamLimitsErrF", 500, 10053, "{err}";
    stream_message_exceeds_maximum() = STREAM_MESSAGE_EXCEEDS_MAXIMUM, "JSStreamMessageExceedsMaximumErr", 400, 10054, "message size exceeds maximum allowed";
    stream_mirror_not_updatable() = STREAM_MIRROR_NOT_UPDATABLE, "JSStreamMirrorNotUpdatableErr", 400, 10055, "stream mirror configuration can not be updated";
    stream_mismatch() = STREAM_MISMATCH, "JSStreamMismatchErr", 400, 10056, "stream name in subject does not match request";
    stream_msg_delete_failed(err) = STREAM_MSG_DELETE_FAILED, "JSStreamMsgDeleteFailedF", 500, 10057, "{err}";
    stream_name_exist() = STREAM_NAME_EXIST, "JSStreamNameExistErr", 400, 10058, "stream name already in use with a different configuration";
    stream_not_found() = STREAM_NOT_FOUND, "JSStreamNotFoundErr", 404, 10059, "stream not found";
    stream_not_match() = STREAM_NOT_MATCH, "JSStreamNotMatchErr", 400, 10060, "expected stream does not match";
    stream_replicas_not_updatable() = STREAM_REPLICAS_NOT_UPDATABLE, "JSStreamReplicasNotUpdatableErr", 400, 10061, "Replicas configuration can not be updated";
    stream_restore(err) = STREAM_RESTORE, "JSStreamRestoreErrF", 500, 10062, "restore failed: {err}";
    stream_sequence_not_match() = STREAM_SEQUENCE_NOT_MATCH, "JSStreamSequenceNotMatchErr", 503, 10063, "expected stream sequence does not match";
    stream_snapshot(err) = STREAM_SNAPSHOT, "JSStreamSnapshotErrF", 500, 10064, "snapshot failed: {err}";
    stream_subject_overlap() = STREAM_SUBJECT_OVERLAP, "JSStreamSubjectOverlapErr", 400, 10065, "subjects overlap with an existing stream";
    stream_template_create(err) = STREAM_TEMPLATE_CREATE, "JSStreamTemplateCreateErrF", 500, 10066, "{err}";
    stream_template_delete(err) = STREAM_TEMPLATE_DELETE, "JSStreamTemplateDeleteErrF", 500, 10067, "{err}";
    stream_template_not_found() = STREAM_TEMPLATE_NOT_FOUND, "JSStreamTemplateNotFoundErr", 404, 10068, "template not found";
    stream_update(err) = STREAM_UPDATE, "JSStreamUpdateErrF", 500, 10069, "{err}";
    stream_wrong_last_msg_id(id) = STREAM_WRONG_LAST_MSG_ID, "JSStreamWrongLastMsgIDErrF", 400, 10070, "wrong last msg ID: {id}";
    stream_wrong_last_sequence(seq) = STREAM_WRONG_LAST_SEQUENCE, "JSStreamWrongLastSequenceErrF", 400, 10071, "wrong last sequence: {seq}";
    temp_storage_failed() = TEMP_STORAGE_FAILED, "JSTempStorageFailedErr", 500, 10072, "JetStream unable to open temp storage for restore";
    template_name_not_match_subject() = TEMPLATE_NAME_NOT_MATCH_SUBJECT, "JSTemplateNameNotMatchSubjectErr", 400, 10073, "template name in subject does not match request";
    stream_replicas_not_supported() = STREAM_REPLICAS_NOT_SUPPORTED, "JSStreamReplicasNotSupportedErr", 500, 10074, "replicas > 1 not supported in non-clustered mode";
    peer_remap() = PEER_REMAP, "JSPeerRemapErr", 503, 10075, "peer remap failed";
    not_enabled() = NOT_ENABLED, "JSNotEnabledErr", 503, 10076, "JetStream not enabled";
    stream_store_failed(err) = STREAM_STORE_FAILED, "JSStreamStoreFailedF", 503, 10077, "{err}";
    consumer_config_required() = CONSUMER_CONFIG_REQUIRED, "JSConsumerConfigRequiredErr", 400, 10078, "consumer config required";
    consumer_deliver_to_wildcards() = CONSUMER_DELIVER_TO_WILDCARDS, "JSConsumerDeliverToWildcardsErr", 400, 10079, "consumer deliver subject has wildcards";
    consumer_push_max_waiting() = CONSUMER_PUSH_MAX_WAITING, "JSConsumerPushMaxWaitingErr", 400, 10080, "consumer in push mode can not set max waiting";
    consumer_deliver_cycle() = CONSUMER_DELIVER_CYCLE, "JSConsumerDeliverCycleErr", 400, 10081, "consumer deliver subject forms a cycle";
    consumer_max_pending_ack_policy_required() = CONSUMER_MAX_PENDING_ACK_POLICY_REQUIRED, "JSConsumerMaxPendingAckPolicyRequiredErr", 400, 10082, "consumer requires ack policy for max ack pending";
    consumer_small_heartbeat() = CONSUMER_SMALL_HEARTBEAT, "JSConsumerSmallHeartbeatErr", 400, 10083, "consumer idle heartbeat needs to be >= 100ms";
    consumer_pull_requires_ack() = CONSUMER_PULL_REQUIRES_ACK, "JSConsumerPullRequiresAckErr", 400, 10084, "consumer in pull mode requires explicit ack policy on workqueue stream";
    consumer_pull_not_durable() = CONSUMER_PULL_NOT_DURABLE, "JSConsumerPullNotDurableErr", 400, 10085, "consumer in pull mode requires a durable name";
    consumer_pull_with_rate_limit() = CONSUMER_PULL_WITH_RATE_LIMIT, "JSConsumerPullWithRateLimitErr", 400, 10086, "consumer in pull mode can not have rate limit set";
    consumer_max_waiting_negative() = CONSUMER_MAX_WAITING_NEGATIVE, "JSConsumerMaxWaitingNegativeErr", 400, 10087, "consumer max waiting needs to be positive";
    consumer_hb_requires_push() = CONSUMER_HB_REQUIRES_PUSH, "JSConsumerHBRequiresPushErr", 400, 10088, "consumer idle heartbeat requires a push based consumer";
    consumer_fc_requires_push() = CONSUMER_FC_REQUIRES_PUSH, "JSConsumerFCRequiresPushErr", 400, 10089, "consumer flow control requires a push based consumer";
    consumer_direct_requires_push() = CONSUMER_DIRECT_REQUIRES_PUSH, "JSConsumerDirectRequiresPushErr", 400, 10090, "consumer direct requires a push based consumer";
    consumer_direct_requires_ephemeral() = CONSUMER_DIRECT_REQUIRES_EPHEMERAL, "JSConsumerDirectRequiresEphemeralErr", 400, 10091, "consumer direct requires an ephemeral consumer";
    consumer_on_mapped() = CONSUMER_ON_MAPPED, "JSConsumerOnMappedErr", 400, 10092, "consumer direct on a mapped consumer";
    consumer_filter_not_subset() = CONSUMER_FILTER_NOT_SUBSET, "JSConsumerFilterNotSubsetErr", 400, 10093, "consumer filter subject is not a valid subset of the interest subjects";
    consumer_invalid_policy(err) = CONSUMER_INVALID_POLICY, "JSConsumerInvalidPolicyErrF", 400, 10094, "{err}";
    consumer_invalid_sampling(err) = CONSUMER_INVALID_SAMPLING, "JSConsumerInvalidSamplingErrF", 400, 10095, "failed to parse consumer sampling configuration: {err}";
    stream_invalid() = STREAM_INVALID, "JSStreamInvalidErr", 500, 10096, "stream not valid";
    stream_header_exceeds_maximum() = STREAM_HEADER_EXCEEDS_MAXIMUM, "JSStreamHeaderExceedsMaximumErr", 400, 10097, "header size exceeds maximum allowed of 64k";
    consumer_wq_requires_explicit_ack() = CONSUMER_WQ_REQUIRES_EXPLICIT_ACK, "JSConsumerWQRequiresExplicitAckErr", 400, 10098, "workqueue stream requires explicit ack";
    consumer_wq_multiple_unfiltered() = CONSUMER_WQ_MULTIPLE_UNFILTERED, "JSConsumerWQMultipleUnfilteredErr", 400, 10099, "multiple non-filtered consumers not allowed on workqueue stream";
    consumer_wq_consumer_not_unique() = CONSUMER_WQ_CONSUMER_NOT_UNIQUE, "JSConsumerWQConsumerNotUniqueErr", 400, 10100, "filtered consumer not unique on workqueue stream";
    consumer_wq_consumer_not_deliver_all() = CONSUMER_WQ_CONSUMER_NOT_DELIVER_ALL, "JSConsumerWQConsumerNotDeliverAllErr", 400, 10101, "consumer must be deliver all on workqueue stream";
    consumer_name_too_long(max) = CONSUMER_NAME_TOO_LONG, "JSConsumerNameTooLongErrF", 400, 10102, "consumer name is too long, maximum allowed is {max}";
    consumer_bad_durable_name() = CONSUMER_BAD_DURABLE_NAME, "JSConsumerBadDurableNameErr", 400, 10103, "durable name can not contain '.', '*', '>'";
    consumer_store_failed(err) = CONSUMER_STORE_FAILED, "JSConsumerStoreFailedErrF", 500, 10104, "error creating store for consumer: {err}";
    consumer_existing_active() = CONSUMER_EXISTING_ACTIVE, "JSConsumerExistingActiveErr", 400, 10105, "consumer already exists and is still active";
    consumer_replacement_with_different_name() = CONSUMER_REPLACEMENT_WITH_DIFFERENT_NAME, "JSConsumerReplacementWithDifferentNameErr", 400, 10106, "consumer replacement durable config not the same";
    consumer_description_too_long(max) = CONSUMER_DESCRIPTION_TOO_LONG, "JSConsumerDescriptionTooLongErrF", 400, 10107, "consumer description is too long, maximum allowed is {max}";
    consumer_with_flow_control_needs_heartbeats() = CONSUMER_WITH_FLOW_CONTROL_NEEDS_HEARTBEATS, "JSConsumerWithFlowControlNeedsHeartbeats", 400, 10108, "consumer with flow control also needs heartbeats";
    stream_sealed() = STREAM_SEALED, "JSStreamSealedErr", 400, 10109, "invalid operation on sealed stream";
    stream_purge_failed(err) = STREAM_PURGE_FAILED, "JSStreamPurgeFailedF", 500, 10110, "{err}";
    stream_rollup_failed(err) = STREAM_ROLLUP_FAILED, "JSStreamRollupFailedF", 500, 10111, "{err}";
    consumer_invalid_deliver_subject() = CONSUMER_INVALID_DELIVER_SUBJECT, "JSConsumerInvalidDeliverSubject", 400, 10112, "invalid push consumer deliver subject";
    stream_max_bytes_required() = STREAM_MAX_BYTES_REQUIRED, "JSStreamMaxBytesRequired", 400, 10113, "account requires a stream config to have max bytes set";
    consumer_max_request_batch_negative() = CONSUMER_MAX_REQUEST_BATCH_NEGATIVE, "JSConsumerMaxRequestBatchNegativeErr", 400, 10114, "consumer max request batch needs to be > 0";
    consumer_max_request_expires_too_small() = CONSUMER_MAX_REQUEST_EXPIRES_TOO_SMALL, "JSConsumerMaxRequestExpiresTooSmall", 400, 10115, "consumer max request expires needs to be >= 1ms";
    consumer_max_deliver_backoff() = CONSUMER_MAX_DELIVER_BACKOFF, "JSConsumerMaxDeliverBackoffErr", 400, 10116, "max deliver is required to be > length of backoff values";
    stream_info_max_subjects() = STREAM_INFO_MAX_SUBJECTS, "JSStreamInfoMaxSubjectsErr", 500, 10117, "subject details would exceed maximum allowed";
    stream_offline() = STREAM_OFFLINE, "JSStreamOfflineErr", 500, 10118, "stream is offline";
    consumer_offline() = CONSUMER_OFFLINE, "JSConsumerOfflineErr", 500, 10119, "consumer is offline";
    no_limits() = NO_LIMITS, "JSNoLimitsErr", 400, 10120, "no JetStream default or applicable tiered limit present";
    consumer_max_pending_ack_excess(limit) = CONSUMER_MAX_PENDING_ACK_EXCESS, "JSConsumerMaxPendingAckExcessErrF", 400, 10121, "consumer max ack pending exceeds system limit of {limit}";
    stream_max_stream_bytes_exceeded() = STREAM_MAX_STREAM_BYTES_EXCEEDED, "JSStreamMaxStreamBytesExceeded", 400, 10122, "stream max bytes exceeds account limit max stream bytes";
    stream_move_and_scale() = STREAM_MOVE_AND_SCALE, "JSStreamMoveAndScaleErr", 400, 10123, "can not move and scale a stream in a single update";
    stream_move_in_progress() = STREAM_MOVE_IN_PROGRESS, "JSStreamMoveInProgressErr", 400, 10124, "stream move already in progress";
    consumer_max_request_batch_exceeded(limit) = CONSUMER_MAX_REQUEST_BATCH_EXCEEDED, "JSConsumerMaxRequestBatchExceededF", 400, 10125, "consumer max request batch exceeds server limit of {limit}";
    consumer_replicas_exceeds_stream() = CONSUMER_REPLICAS_EXCEEDS_STREAM, "JSConsumerReplicasExceedsStream", 400, 10126, "consumer config replica count exceeds parent stream";
    consumer_name_contains_path_separators() = CONSUMER_NAME_CONTAINS_PATH_SEPARATORS, "JSConsumerNameContainsPathSeparatorsErr", 400, 10127, "Consumer name can not contain path separators";
    stream_name_contains_path_separators() = STREAM_NAME_CONTAINS_PATH_SEPARATORS, "JSStreamNameContainsPathSeparatorsErr", 400, 10128, "Stream name can not contain path separators";
    stream_reconfigure_not_in_progress() = STREAM_RECONFIGURE_NOT_IN_PROGRESS, "JSStreamReconfigureNotInProgressErr", 400, 10129, "stream reconfiguration not in progress";
    stream_name_exist_restore_failed() = STREAM_NAME_EXIST_RESTORE_FAILED, "JSStreamNameExistRestoreFailedErr", 400, 10130, "stream name already in use, cannot restore";
    consumer_create_filter_subject_mismatch() = CONSUMER_CREATE_FILTER_SUBJECT_MISMATCH, "JSConsumerCreateFilterSubjectMismatchErr", 400, 10131, "Consumer create request did not match filtered subject from create subject";
    consumer_create_durable_and_name_mismatch() = CONSUMER_CREATE_DURABLE_AND_NAME_MISMATCH, "JSConsumerCreateDurableAndNameMismatch", 400, 10132, "Consumer Durable and Name have to be equal if both are provided";
    replicas_count_cannot_be_negative() = REPLICAS_COUNT_CANNOT_BE_NEGATIVE, "JSReplicasCountCannotBeNegative", 400, 10133, "replicas count cannot be negative";
    consumer_replicas_should_match_stream() = CONSUMER_REPLICAS_SHOULD_MATCH_STREAM, "JSConsumerReplicasShouldMatchStream", 400, 10134, "consumer config replicas must match interest retention stream's replicas";
    consumer_metadata_length(limit) = CONSUMER_METADATA_LENGTH, "JSConsumerMetadataLengthErrF", 400, 10135, "consumer metadata exceeds maximum size of {limit}";
    consumer_duplicate_filter_subjects() = CONSUMER_DUPLICATE_FILTER_SUBJECTS, "JSConsumerDuplicateFilterSubjects", 400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified";
    consumer_multiple_filters_not_allowed() = CONSUMER_MULTIPLE_FILTERS_NOT_ALLOWED, "JSConsumerMultipleFiltersNotAllowed", 400, 10137, "consumer with multiple subject filters cannot use subject based API";
    consumer_overlapping_subject_filters() = CONSUMER_OVERLAPPING_SUBJECT_FILTERS, "JSConsumerOverlappingSubjectFilters", 400, 10138, "consumer subject filters cannot overlap";
    consumer_empty_filter() = CONSUMER_EMPTY_FILTER, "JSConsumerEmptyFilter", 400, 10139, "consumer filter in FilterSubjects cannot be empty";
    source_duplicate_detected() = SOURCE_DUPLICATE_DETECTED, "JSSourceDuplicateDetected", 400, 10140, "duplicate source configuration detected";
    source_invalid_stream_name() = SOURCE_INVALID_STREAM_NAME, "JSSourceInvalidStreamName", 400, 10141, "sourced stream name is invalid";
    mirror_invalid_stream_name() = MIRROR_INVALID_STREAM_NAME, "JSMirrorInvalidStreamName", 400, 10142, "mirrored stream name is invalid";
    mirror_with_first_seq() = MIRROR_WITH_FIRST_SEQ, "JSMirrorWithFirstSeqErr", 400, 10143, "stream mirrors can not have first sequence configured";
    source_multiple_filters_not_allowed() = SOURCE_MULTIPLE_FILTERS_NOT_ALLOWED, "JSSourceMultipleFiltersNotAllowed", 400, 10144, "source with multiple subject transforms cannot also have a single subject filter";
    source_invalid_subject_filter(err) = SOURCE_INVALID_SUBJECT_FILTER, "JSSourceInvalidSubjectFilter", 400, 10145, "source transform source: {err}";
    source_invalid_transform_destination(err) = SOURCE_INVALID_TRANSFORM_DESTINATION, "JSSourceInvalidTransformDestination", 400, 10146, "source transform: {err}";
    source_overlapping_subject_filters() = SOURCE_OVERLAPPING_SUBJECT_FILTERS, "JSSourceOverlappingSubjectFilters", 400, 10147, "source filters can not overlap";
    consumer_already_exists() = CONSUMER_ALREADY_EXISTS, "JSConsumerAlreadyExists", 400, 10148, "consumer already exists";
    consumer_does_not_exist() = CONSUMER_DOES_NOT_EXIST, "JSConsumerDoesNotExist", 400, 10149, "consumer does not exist";
    mirror_multiple_filters_not_allowed() = MIRROR_MULTIPLE_FILTERS_NOT_ALLOWED, "JSMirrorMultipleFiltersNotAllowed", 400, 10150, "mirror with multiple subject transforms cannot also have a single subject filter";
    mirror_invalid_subject_filter(err) = MIRROR_INVALID_SUBJECT_FILTER, "JSMirrorInvalidSubjectFilter", 400, 10151, "mirror transform source: {err}";
    mirror_overlapping_subject_filters() = MIRROR_OVERLAPPING_SUBJECT_FILTERS, "JSMirrorOverlappingSubjectFilters", 400, 10152, "mirror subject filters can not overlap";
    consumer_inactive_threshold_excess(limit) = CONSUMER_INACTIVE_THRESHOLD_EXCESS, "JSConsumerInactiveThresholdExcess", 400, 10153, "consumer inactive threshold exceeds system limit of {limit}";
    mirror_invalid_transform_destination(err) = MIRROR_INVALID_TRANSFORM_DESTINATION, "JSMirrorInvalidTransformDestination", 400, 10154, "mirror transform: {err}";
    stream_transform_invalid_source(err) = STREAM_TRANSFORM_INVALID_SOURCE, "JSStreamTransformInvalidSource", 400, 10155, "stream transform source: {err}";
    stream_transform_invalid_destination(err) = STREAM_TRANSFORM_INVALID_DESTINATION, "JSStreamTransformInvalidDestination", 400, 10156, "stream transform: {err}";
    pedantic(err) = PEDANTIC, "JSPedanticErrF", 400, 10157, "pedantic mode: {err}";
    stream_duplicate_message_conflict() = STREAM_DUPLICATE_MESSAGE_CONFLICT, "JSStreamDuplicateMessageConflict", 409, 10158, "duplicate message id is in process";
    consumer_priority_policy_without_group() = CONSUMER_PRIORITY_POLICY_WITHOUT_GROUP, "JSConsumerPriorityPolicyWithoutGroup", 400, 10159, "Setting PriorityPolicy requires at least one PriorityGroup to be set";
    consumer_invalid_priority_group() = CONSUMER_INVALID_PRIORITY_GROUP, "JSConsumerInvalidPriorityGroupErr", 400, 10160, "Provided priority group does not exist for this consumer";
    consumer_empty_group_name() = CONSUMER_EMPTY_GROUP_NAME, "JSConsumerEmptyGroupName", 400, 10161, "Group name cannot be an empty string";
    consumer_invalid_group_name() = CONSUMER_INVALID_GROUP_NAME, "JSConsumerInvalidGroupNameErr", 400, 10162, "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters";
    stream_expected_last_seq_per_subject_not_ready() = STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_NOT_READY, "JSStreamExpectedLastSeqPerSubjectNotReady", 503, 10163, "expected last sequence per subject temporarily unavailable";
    stream_wrong_last_sequence_constant() = STREAM_WRONG_LAST_SEQUENCE_CONSTANT, "JSStreamWrongLastSequenceConstantErr", 400, 10164, "wrong last sequence";
    message_ttl_invalid() = MESSAGE_TTL_INVALID, "JSMessageTTLInvalidErr", 400, 10165, "invalid per-message TTL";
    message_ttl_disabled() = MESSAGE_TTL_DISABLED, "JSMessageTTLDisabledErr", 400, 10166, "per-message TTL is disabled";
    stream_too_many_requests() = STREAM_TOO_MANY_REQUESTS, "JSStreamTooManyRequests", 429, 10167, "too many requests";
    message_incr_disabled() = MESSAGE_INCR_DISABLED, "JSMessageIncrDisabledErr", 400, 10168, "message counters is disabled";
    message_incr_missing() = MESSAGE_INCR_MISSING, "JSMessageIncrMissingErr", 400, 10169, "message counter increment is missing";
    message_incr_payload() = MESSAGE_INCR_PAYLOAD, "JSMessageIncrPayloadErr", 400, 10170, "message counter has payload";
    message_incr_invalid() = MESSAGE_INCR_INVALID, "JSMessageIncrInvalidErr", 400, 10171, "message counter increment is invalid";
    message_counter_broken() = MESSAGE_COUNTER_BROKEN, "JSMessageCounterBrokenErr", 400, 10172, "message counter is broken";
    mirror_with_counters() = MIRROR_WITH_COUNTERS, "JSMirrorWithCountersErr", 400, 10173, "stream mirrors can not also calculate counters";
    atomic_publish_disabled() = ATOMIC_PUBLISH_DISABLED, "JSAtomicPublishDisabledErr", 400, 10174, "atomic publish is disabled";
    atomic_publish_missing_seq() = ATOMIC_PUBLISH_MISSING_SEQ, "JSAtomicPublishMissingSeqErr", 400, 10175, "atomic publish sequence is missing";
    atomic_publish_incomplete_batch() = ATOMIC_PUBLISH_INCOMPLETE_BATCH, "JSAtomicPublishIncompleteBatchErr", 400, 10176, "atomic publish batch is incomplete";
    atomic_publish_unsupported_header_batch(header) = ATOMIC_PUBLISH_UNSUPPORTED_HEADER_BATCH, "JSAtomicPublishUnsupportedHeaderBatchErr", 400, 10177, "atomic publish unsupported header used: {header}";
    consumer_push_with_priority_group() = CONSUMER_PUSH_WITH_PRIORITY_GROUP, "JSConsumerPushWithPriorityGroupErr", 400, 10178, "priority groups can not be used with push consumers";
    atomic_publish_invalid_batch_id() = ATOMIC_PUBLISH_INVALID_BATCH_ID, "JSAtomicPublishInvalidBatchIDErr", 400, 10179, "atomic publish batch ID is invalid";
    stream_min_last_seq() = STREAM_MIN_LAST_SEQ, "JSStreamMinLastSeqErr", 412, 10180, "min last sequence";
    consumer_ack_policy_invalid() = CONSUMER_ACK_POLICY_INVALID, "JSConsumerAckPolicyInvalidErr", 400, 10181, "consumer ack policy invalid";
    consumer_replay_policy_invalid() = CONSUMER_REPLAY_POLICY_INVALID, "JSConsumerReplayPolicyInvalidErr", 400, 10182, "consumer replay policy invalid";
    consumer_ack_wait_negative() = CONSUMER_ACK_WAIT_NEGATIVE, "JSConsumerAckWaitNegativeErr", 400, 10183, "consumer ack wait needs to be positive";
    consumer_back_off_negative() = CONSUMER_BACK_OFF_NEGATIVE, "JSConsumerBackOffNegativeErr", 400, 10184, "consumer backoff needs to be positive";
    required_api_level() = REQUIRED_API_LEVEL, "JSRequiredApiLevelErr", 412, 10185, "JetStream minimum api level required";
    mirror_with_msg_schedules() = MIRROR_WITH_MSG_SCHEDULES, "JSMirrorWithMsgSchedulesErr", 400, 10186, "stream mirrors can not also schedule messages";
    source_with_msg_schedules() = SOURCE_WITH_MSG_SCHEDULES, "JSSourceWithMsgSchedulesErr", 400, 10187, "stream source can not also schedule messages";
    message_schedules_disabled() = MESSAGE_SCHEDULES_DISABLED, "JSMessageSchedulesDisabledErr", 400, 10188, "message schedules is disabled";
    message_schedules_pattern_invalid() = MESSAGE_SCHEDULES_PATTERN_INVALID, "JSMessageSchedulesPatternInvalidErr", 400, 10189, "message schedules pattern is invalid";
    message_schedules_target_invalid() = MESSAGE_SCHEDULES_TARGET_INVALID, "JSMessageSchedulesTargetInvalidErr", 400, 10190, "message schedules target is invalid";
    message_schedules_ttl_invalid() = MESSAGE_SCHEDULES_TTL_INVALID, "JSMessageSchedulesTTLInvalidErr", 400, 10191, "message schedules invalid per-message TTL";
    message_schedules_rollup_invalid() = MESSAGE_SCHEDULES_ROLLUP_INVALID, "JSMessageSchedulesRollupInvalidErr", 400, 10192, "message schedules invalid rollup";
    stream_expected_last_seq_per_subject_invalid() = STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_INVALID, "JSStreamExpectedLastSeqPerSubjectInvalid", 400, 10193, "missing sequence for expected last sequence per subject";
    stream_offline_reason(err) = STREAM_OFFLINE_REASON, "JSStreamOfflineReasonErrF", 500, 10194, "stream is offline: {err}";
    consumer_offline_reason(err) = CONSUMER_OFFLINE_REASON, "JSConsumerOfflineReasonErrF", 500, 10195, "consumer is offline: {err}";
    consumer_priority_group_with_policy_none() = CONSUMER_PRIORITY_GROUP_WITH_POLICY_NONE, "JSConsumerPriorityGroupWithPolicyNone", 400, 10196, "consumer can not have priority groups when policy is none";
    consumer_pinned_ttl_without_priority_policy_none() = CONSUMER_PINNED_TTL_WITHOUT_PRIORITY_POLICY_NONE, "JSConsumerPinnedTTLWithoutPriorityPolicyNone", 400, 10197, "PinnedTTL cannot be set when PriorityPolicy is none";
    mirror_with_atomic_publish() = MIRROR_WITH_ATOMIC_PUBLISH, "JSMirrorWithAtomicPublishErr", 400, 10198, "stream mirrors can not also use atomic publishing";
    atomic_publish_too_large_batch(size) = ATOMIC_PUBLISH_TOO_LARGE_BATCH, "JSAtomicPublishTooLargeBatchErrF", 400, 10199, "atomic publish batch is too large: {size}";
    atomic_publish_invalid_batch_commit() = ATOMIC_PUBLISH_INVALID_BATCH_COMMIT, "JSAtomicPublishInvalidBatchCommitErr", 400, 10200, "atomic publish batch commit is invalid";
    atomic_publish_contains_duplicate_message() = ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE, "JSAtomicPublishContainsDuplicateMessageErr", 400, 10201, "atomic publish batch contains duplicate message id";
    cluster_server_member_change_inflight() = CLUSTER_SERVER_MEMBER_CHANGE_INFLIGHT, "JSClusterServerMemberChangeInflightErr", 400, 10202, "cluster member change is in progress";
    message_schedules_source_invalid() = MESSAGE_SCHEDULES_SOURCE_INVALID, "JSMessageSchedulesSourceInvalidErr", 400, 10203, "message schedules source is invalid";
    consumer_invalid_reset(err) = CONSUMER_INVALID_RESET, "JSConsumerInvalidResetErr", 400, 10204, "invalid reset: {err}";
    batch_publish_disabled() = BATCH_PUBLISH_DISABLED, "JSBatchPublishDisabledErr", 400, 10205, "batch publish is disabled";
    batch_publish_invalid_pattern() = BATCH_PUBLISH_INVALID_PATTERN, "JSBatchPublishInvalidPatternErr", 400, 10206, "batch publish pattern is invalid";
    batch_publish_invalid_batch_id() = BATCH_PUBLISH_INVALID_BATCH_ID, "JSBatchPublishInvalidBatchIDErr", 400, 10207, "batch publish ID is invalid";
    batch_publish_unknown_batch_id() = BATCH_PUBLISH_UNKNOWN_BATCH_ID, "JSBatchPublishUnknownBatchIDErr", 400, 10208, "batch publish ID unknown";
    mirror_with_batch_publish() = MIRROR_WITH_BATCH_PUBLISH, "JSMirrorWithBatchPublishErr", 400, 10209, "stream mirrors can not also use batch publishing";
    atomic_publish_too_many_inflight() = ATOMIC_PUBLISH_TOO_MANY_INFLIGHT, "JSAtomicPublishTooManyInflight", 429, 10210, "atomic publish too many inflight";
    batch_publish_too_many_inflight() = BATCH_PUBLISH_TOO_MANY_INFLIGHT, "JSBatchPublishTooManyInflight", 429, 10211, "batch publish too many inflight";
    message_schedules_scheduler_invalid() = MESSAGE_SCHEDULES_SCHEDULER_INVALID, "JSMessageSchedulesSchedulerInvalidErr", 400, 10212, "message schedules invalid scheduler";
    mirror_durable_consumer_cfg_invalid() = MIRROR_DURABLE_CONSUMER_CFG_INVALID, "JSMirrorDurableConsumerCfgInvalid", 400, 10213, "stream mirror consumer config is invalid";
    mirror_consumer_requires_ack_fc() = MIRROR_CONSUMER_REQUIRES_ACK_FC, "JSMirrorConsumerRequiresAckFCErr", 400, 10214, "stream mirror consumer requires flow control ack policy";
    source_durable_consumer_cfg_invalid() = SOURCE_DURABLE_CONSUMER_CFG_INVALID, "JSSourceDurableConsumerCfgInvalid", 400, 10215, "stream source consumer config is invalid";
    source_durable_consumer_duplicate_detected() = SOURCE_DURABLE_CONSUMER_DUPLICATE_DETECTED, "JSSourceDurableConsumerDuplicateDetected", 400, 10216, "duplicate stream source consumer detected";
    source_consumer_requires_ack_fc() = SOURCE_CONSUMER_REQUIRES_ACK_FC, "JSSourceConsumerRequiresAckFCErr", 400, 10217, "stream source consumer requires flow control ack policy";
    consumer_ack_fc_requires_push() = CONSUMER_ACK_FC_REQUIRES_PUSH, "JSConsumerAckFCRequiresPushErr", 400, 10218, "flow control ack policy requires a push based consumer";
    consumer_ack_fc_requires_fc() = CONSUMER_ACK_FC_REQUIRES_FC, "JSConsumerAckFCRequiresFCErr", 400, 10219, "flow control ack policy requires flow control";
    consumer_ack_fc_requires_max_ack_pending() = CONSUMER_ACK_FC_REQUIRES_MAX_ACK_PENDING, "JSConsumerAckFCRequiresMaxAckPendingErr", 400, 10220, "flow control ack policy requires max ack pending";
    consumer_ack_fc_requires_no_ack_wait() = CONSUMER_ACK_FC_REQUIRES_NO_ACK_WAIT, "JSConsumerAckFCRequiresNoAckWaitErr", 400, 10221, "flow control ack policy requires unset ack wait";
    consumer_ack_fc_requires_no_max_deliver() = CONSUMER_ACK_FC_REQUIRES_NO_MAX_DELIVER, "JSConsumerAckFCRequiresNoMaxDeliverErr", 400, 10222, "flow control ack policy requires unset max deliver";
    message_schedules_time_zone_invalid() = MESSAGE_SCHEDULES_TIME_ZONE_INVALID, "JSMessageSchedulesTimeZoneInvalidErr", 400, 10223, "message schedules time zone is invalid";
    cluster_rescue(err) = CLUSTER_RESCUE, "JSClusterRescueErr", 400, 10224, "JetStream system rescue not applied: {err}";
    consumer_stream_identity_mismatch(msg) = CONSUMER_STREAM_IDENTITY_MISMATCH, "JSConsumerStreamIdentityMismatchF", 400, 10225, "consumer's stream identity does not match: {msg}";
    stream_reconfigure_in_progress() = STREAM_RECONFIGURE_IN_PROGRESS, "JSStreamReconfigureInProgressErr", 400, 10226, "stream reconfiguration already in progress";
    message_source_hdr_not_allowed() = MESSAGE_SOURCE_HDR_NOT_ALLOWED, "JSMessageSourceHdrNotAllowedErr", 400, 10227, "message stream source header is not allowed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_ordered() {
        assert_eq!(ERRORS.len(), 226);
        // Sorted, unique and without gaps: 10002 ..= 10227.
        for (i, d) in ERRORS.iter().enumerate() {
            assert_eq!(usize::from(d.err_code), 10002 + i, "{}", d.constant);
            assert!(
                matches!(d.code, 400 | 404 | 409 | 412 | 429 | 500 | 503),
                "{}",
                d.constant
            );
        }
        assert_eq!(
            lookup(10058).map(|d| d.constant),
            Some("JSStreamNameExistErr")
        );
        assert_eq!(lookup(10001), None);
        assert_eq!(lookup(10228), None);
    }

    #[test]
    fn constructors_match_the_table() {
        let e = stream_name_exist();
        assert_eq!(
            (e.code, e.err_code, e.description.as_str()),
            (
                400,
                codes::STREAM_NAME_EXIST,
                "stream name already in use with a different configuration"
            )
        );
        assert_eq!(codes::STREAM_NAME_EXIST, 10058);
        let e = stream_not_found();
        assert_eq!((e.code, e.err_code), (404, 10059));
        assert_eq!(e.description, "stream not found");
        assert_eq!(consumer_not_found().err_code, codes::CONSUMER_NOT_FOUND);
        assert_eq!(not_enabled_for_account().code, 503);
        assert_eq!(stream_too_many_requests().code, 429);
        assert_eq!(required_api_level().code, 412);
        assert_eq!(stream_duplicate_message_conflict().code, 409);
        assert_eq!(
            consumer_with_flow_control_needs_heartbeats().err_code,
            codes::CONSUMER_WITH_FLOW_CONTROL_NEEDS_HEARTBEATS
        );
        assert_eq!(stream_general("x").err_code, codes::STREAM_GENERAL);
    }

    #[test]
    fn placeholders_are_substituted() {
        assert_eq!(
            stream_wrong_last_sequence(5u64).description,
            "wrong last sequence: 5"
        );
        assert_eq!(stream_wrong_last_sequence(5u64).err_code, 10071);
        assert_eq!(
            sequence_not_found(42u64).description,
            "sequence 42 not found"
        );
        assert_eq!(
            stream_wrong_last_msg_id("abc").description,
            "wrong last msg ID: abc"
        );
        assert_eq!(
            invalid_json("unexpected EOF").description,
            "invalid JSON: unexpected EOF"
        );
        assert_eq!(stream_create("boom").description, "boom");
        assert_eq!(stream_restore("bad").description, "restore failed: bad");
        assert_eq!(
            stream_external_del_prefix_overlaps("dp", "foo.>").description,
            "stream external delivery prefix dp overlaps with stream subject foo.>"
        );
        // nats-server's constructor takes (err, subject) although the text names the
        // subject first.
        assert_eq!(
            restore_subscribe_failed("no", "$JS.R.x").description,
            "JetStream unable to subscribe to restore snapshot $JS.R.x: no"
        );
        assert_eq!(
            consumer_name_too_long(255).description,
            "consumer name is too long, maximum allowed is 255"
        );
        assert_eq!(
            atomic_publish_unsupported_header_batch("Nats-Msg-Id").description,
            "atomic publish unsupported header used: Nats-Msg-Id"
        );
        // One pass: a value that looks like a placeholder stays as it is.
        assert_eq!(invalid_json("{err}").description, "invalid JSON: {err}");
        assert_eq!(
            stream_external_api_overlap("{subject}", "$JS.API").description,
            "stream external api prefix {subject} must not overlap with $JS.API"
        );
        // A brace that starts no placeholder is copied.
        assert_eq!(invalid_json("at {1}").description, "invalid JSON: at {1}");
    }

    #[test]
    fn json_shape() {
        let e = stream_name_exist();
        assert_eq!(
            serde_json::to_string(&e).unwrap_or_default(),
            r#"{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}"#
        );
        let back: ApiError = serde_json::from_str(
            r#"{"code":404,"err_code":10059,"description":"stream not found"}"#,
        )
        .unwrap_or_else(|_| ApiError::new(0, 0, ""));
        assert_eq!(back, stream_not_found());
        // err_code and description are omitempty.
        let bare = ApiError::new(503, 0, "");
        assert_eq!(
            serde_json::to_string(&bare).unwrap_or_default(),
            r#"{"code":503}"#
        );
        let back: Option<ApiError> = serde_json::from_str(r#"{"code":503}"#).ok();
        assert_eq!(back, Some(bare));
    }

    #[test]
    fn display_and_error() {
        assert_eq!(stream_not_found().to_string(), "stream not found (10059)");
        let e: Box<dyn std::error::Error> = Box::new(stream_not_found());
        assert_eq!(e.to_string(), "stream not found (10059)");
        assert!(stream_not_found().is(codes::STREAM_NOT_FOUND));
    }
}
