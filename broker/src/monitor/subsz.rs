//! `/subsz` (alias `/subscriptionsz`): sublist statistics over every account, and
//! optionally the subscriptions themselves, or those a test subject would reach.

use serde::Serialize;

use super::connz::{DEFAULT_LIMIT, SubDetail};
use super::format::{GoFloat, GoTime};
use super::query::{Query, QueryError};
use crate::account::Account;
use crate::server::{Server, SubView};
use crate::sublist::SublistStats;

/// The sublist statistics nats-server reports on `/subsz` and in `/accountz` details.
#[derive(Debug, Serialize, Default)]
pub struct SublistStatz {
    pub num_subscriptions: u64,
    pub num_cache: u64,
    pub num_inserts: u64,
    pub num_removes: u64,
    pub num_matches: u64,
    pub cache_hit_rate: GoFloat,
    pub max_fanout: usize,
    pub avg_fanout: GoFloat,
}

impl SublistStatz {
    /// Statistics summed over `accounts`; fan-outs are taken over all their caches.
    pub fn of(accounts: &[&Account]) -> Self {
        let mut sum = SublistStats::default();
        let mut max_fanout = 0;
        let mut fanout_total = 0.0;
        for acc in accounts {
            let s = acc.sublist.stats();
            sum.num_subscriptions += s.num_subscriptions;
            sum.num_cache += s.num_cache;
            sum.num_inserts += s.num_inserts;
            sum.num_removes += s.num_removes;
            sum.num_matches += s.num_matches;
            sum.cache_hits += s.cache_hits;
            let (max, avg) = acc.sublist.cache_fanout();
            max_fanout = max_fanout.max(max);
            fanout_total += avg * s.num_cache as f64;
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Self {
            num_subscriptions: sum.num_subscriptions,
            num_cache: sum.num_cache,
            num_inserts: sum.num_inserts,
            num_removes: sum.num_removes,
            num_matches: sum.num_matches,
            cache_hit_rate: GoFloat(ratio(sum.cache_hits as f64, sum.num_matches as f64)),
            max_fanout,
            avg_fanout: GoFloat(ratio(fanout_total, sum.num_cache as f64)),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Subsz {
    pub server_id: String,
    pub now: GoTime,
    #[serde(flatten)]
    pub stats: SublistStatz,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<SubDetail>,
}

/// Builds `/subsz`.
pub fn subsz(server: &Server, q: &Query) -> Result<Subsz, QueryError> {
    let subs = q.bool("subs")?;
    let offset = usize::try_from(q.int("offset")?).unwrap_or(0);
    let limit = usize::try_from(q.int("limit")?)
        .ok()
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_LIMIT);
    let test = q.get("test");
    if let Some(t) = test
        && !crate::subject::is_valid_literal_subject(t.as_bytes())
    {
        return Err(QueryError::Other(format!(
            "invalid test subject, must be valid publish subject: {t}"
        )));
    }
    let all = server.all_accounts();
    let mut accounts: Vec<&Account> = all.iter().map(AsRef::as_ref).collect();
    if let Some(acc) = q.get("acc") {
        accounts.retain(|a| a.name() == acc);
    }
    let stats = SublistStatz::of(&accounts);
    let mut total = 0;
    let mut list = Vec::new();
    // As in nats-server, the list (and so `total` and the test filter) only with `subs`.
    if subs {
        for acc in &accounts {
            for s in acc.sublist.all() {
                if test.is_some_and(|t| !crate::subject::matches(&s.subject, t.as_bytes())) {
                    continue;
                }
                total += 1;
                list.push(SubDetail::of(&SubView::of(&s), Some(acc.name())));
            }
        }
    }
    let offset = offset.min(list.len());
    let subscriptions_list = list.into_iter().skip(offset).take(limit).collect();
    Ok(Subsz {
        server_id: server.id().to_owned(),
        now: GoTime::now(),
        stats,
        total,
        offset,
        limit,
        subscriptions_list,
    })
}
