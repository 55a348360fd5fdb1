//! The transport's failure mapping, without Raft behind it: a group not running on the
//! target, a wrong node id, no route to the target server, a target that never answers,
//! and a request larger than the payload limit. Bounded in time.

use std::time::{Duration, Instant};

use natrix_raft::bus::RaftBus;
use natrix_raft::kv::KvConfig;
use natrix_raft::transport::SendError;
use natrix_raft::wire::RpcKind;
use natrix_raft::{MemBus, Transport, TransportOptions};
use openraft::Vote;
use openraft::error::Infallible;
use openraft::raft::{VoteRequest, VoteResponse};

async fn vote(
    t: &Transport<KvConfig>,
    server: &str,
    node: u64,
    ttl: Duration,
) -> Result<Result<VoteResponse<u64>, openraft::error::RaftError<u64>>, SendError> {
    t.request::<_, VoteResponse<u64>, Infallible>(
        server,
        node,
        "g",
        RpcKind::Vote,
        VoteRequest::new(Vote::new(1, 1), None),
        ttl,
    )
    .await
}

#[tokio::test]
async fn failures_map_to_unreachable_timeout_and_too_large() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let bus = MemBus::new();
        let a: Transport<KvConfig> =
            Transport::start(&bus, "A", 1, TransportOptions::default()).unwrap();
        let _b: Transport<KvConfig> =
            Transport::start(&bus, "B", 2, TransportOptions::default()).unwrap();
        let ttl = Duration::from_secs(5);

        // B runs no group "g": refused, so unreachable (and answered, not timed out).
        let t = Instant::now();
        match vote(&a, "B", 2, ttl).await {
            Err(SendError::Unreachable(why)) => assert!(why.contains("not running"), "{why}"),
            other => panic!("expected unreachable, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1));

        // B is node 2: a request for node 3 there is refused.
        match vote(&a, "B", 3, ttl).await {
            Err(SendError::Unreachable(why)) => assert!(why.contains("not node 3"), "{why}"),
            other => panic!("expected unreachable, got {other:?}"),
        }

        // Nobody is server C: unreachable at once.
        assert!(matches!(
            vote(&a, "C", 3, ttl).await,
            Err(SendError::Unreachable(_))
        ));

        // D subscribes and never answers: timeout after the TTL.
        let silent = bus.connect(Box::new(|_| {})).unwrap();
        silent.subscribe("$NRG.D.>").unwrap();
        let t = Instant::now();
        assert!(matches!(
            vote(&a, "D", 4, Duration::from_millis(200)).await,
            Err(SendError::Timeout(_))
        ));
        assert!(t.elapsed() >= Duration::from_millis(200));

        // A transport with a tiny payload limit refuses to send.
        let small: Transport<KvConfig> = Transport::start(
            &bus,
            "E",
            5,
            TransportOptions {
                max_payload: 8,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(
            vote(&small, "B", 2, ttl).await,
            Err(SendError::TooLarge { .. })
        ));

        // A closed transport stops answering: B gone means unreachable.
        _b.close();
        assert!(matches!(
            vote(&a, "B", 2, ttl).await,
            Err(SendError::Unreachable(_))
        ));
    })
    .await
    .expect("bounded");
}
