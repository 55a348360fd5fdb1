//! Subject mappings of an account (`mappings {}`): each source subject goes to one of
//! its weighted destinations, optionally chosen per cluster, as nats-server's
//! `AddWeightedMappings` builds them and `selectMappedSubject` applies them.

use crate::error::{MappingError, TransformError};
use crate::subject::{is_valid_subject, subset_match, tokenize};
use crate::transform::{SubjectTransform, validate_mapping};

/// One destination as configured: `{destination, weight, cluster}`. A plain
/// `"src": "dest"` mapping is one destination of weight 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDest {
    pub subject: String,
    /// Percent, 0..=100.
    pub weight: u8,
    /// Only servers of this cluster use the destination; empty for all.
    pub cluster: String,
}

impl MapDest {
    pub fn new(subject: impl Into<String>, weight: u8) -> Self {
        Self {
            subject: subject.into(),
            weight,
            cluster: String::new(),
        }
    }
}

/// A destination ready to pick: `weight` is cumulative over the sorted list, so a
/// random number below 100 picks the first entry whose weight exceeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Destination {
    transform: SubjectTransform,
    weight: u8,
}

/// The mapping of one source subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    src: String,
    wildcard: bool,
    dests: Vec<Destination>,
    /// Cluster-scoped destinations, by cluster name, in the order first seen.
    cluster_dests: Vec<(String, Vec<Destination>)>,
}

impl Mapping {
    /// Checks and builds a mapping (nats-server's `AddWeightedMappings`): each
    /// destination must be valid for the source, appear once, weigh at most 100, and the
    /// weights of each cluster (and of no cluster) add up to at most 100. What is left up
    /// to 100 keeps the original subject, unless the source itself is listed, which
    /// means the rest is dropped.
    pub fn new(src: &str, dests: &[MapDest]) -> Result<Self, MappingError> {
        if !is_valid_subject(src) {
            return Err(TransformError::BadSubject.into());
        }
        let mut m = Self {
            src: src.to_owned(),
            wildcard: src.split('.').any(|t| t == "*" || t == ">"),
            dests: Vec::with_capacity(dests.len() + 1),
            cluster_dests: Vec::new(),
        };
        let mut totals: Vec<(&str, u16)> = Vec::new();
        for (i, d) in dests.iter().enumerate() {
            if dests[..i].iter().any(|e| e.subject == d.subject) {
                return Err(MappingError::Duplicate(d.subject.clone()));
            }
            if d.weight > 100 {
                return Err(MappingError::WeightTooLarge);
            }
            let at = match totals.iter().position(|(c, _)| *c == d.cluster) {
                Some(i) => i,
                None => {
                    totals.push((&d.cluster, 0));
                    totals.len() - 1
                }
            };
            totals[at].1 += u16::from(d.weight);
            if totals[at].1 > 100 {
                return Err(MappingError::TotalTooLarge);
            }
            validate_mapping(src, &d.subject)?;
            let dest = Destination {
                transform: SubjectTransform::new(src, &d.subject)?,
                weight: d.weight,
            };
            if d.cluster.is_empty() {
                m.dests.push(dest);
            } else if let Some((_, list)) =
                m.cluster_dests.iter_mut().find(|(c, _)| *c == d.cluster)
            {
                list.push(dest);
            } else {
                m.cluster_dests.push((d.cluster.clone(), vec![dest]));
            }
        }
        let src_listed = dests.iter().any(|d| d.subject == src);
        let plain = std::mem::take(&mut m.dests);
        m.dests = m.finish(plain, src_listed)?;
        for i in 0..m.cluster_dests.len() {
            let list = std::mem::take(&mut m.cluster_dests[i].1);
            m.cluster_dests[i].1 = m.finish(list, src_listed)?;
        }
        Ok(m)
    }

    /// Adds the original subject for the weight left over, sorts by weight and makes
    /// the weights cumulative (nats-server's `processDestinations`).
    fn finish(
        &self,
        mut dests: Vec<Destination>,
        src_listed: bool,
    ) -> Result<Vec<Destination>, TransformError> {
        let total: u16 = dests.iter().map(|d| u16::from(d.weight)).sum();
        if total != 100 && !src_listed {
            let dest = if self.wildcard {
                tokenize_wildcards(&self.src)
            } else {
                self.src.clone()
            };
            let rest = if dests.is_empty() { 100 } else { 100 - total };
            dests.push(Destination {
                transform: SubjectTransform::new(&self.src, &dest)?,
                weight: u8::try_from(rest).unwrap_or(100),
            });
        }
        dests.sort_by_key(|d| d.weight);
        let mut sum = 0u8;
        for d in &mut dests {
            d.weight = d.weight.saturating_add(sum);
            sum = d.weight;
        }
        Ok(dests)
    }

    pub fn source(&self) -> &str {
        &self.src
    }

    /// The destinations as nats-server's `/accountz` lists them: the one added for the
    /// remainder included, weights cumulative, cluster-scoped ones after the others.
    pub fn destinations(&self) -> impl Iterator<Item = MapDest> + '_ {
        let plain = self
            .dests
            .iter()
            .map(|d| MapDest::new(d.transform.destination(), d.weight));
        let scoped = self.cluster_dests.iter().flat_map(|(c, list)| {
            list.iter().map(move |d| MapDest {
                subject: d.transform.destination().to_owned(),
                weight: d.weight,
                cluster: c.clone(),
            })
        });
        plain.chain(scoped)
    }

    fn pick(&self, cluster: &str) -> Option<&SubjectTransform> {
        let dests = self
            .cluster_dests
            .iter()
            .find(|(c, _)| c == cluster)
            .map_or(&self.dests, |(_, list)| list);
        if let [only] = dests.as_slice()
            && only.weight == 100
        {
            return Some(&only.transform);
        }
        let w = fastrand::u8(..100);
        dests.iter().find(|d| w < d.weight).map(|d| &d.transform)
    }
}

/// `foo.*.*` → `foo.$1.$2` (nats-server's `transformTokenize`).
fn tokenize_wildcards(subject: &str) -> String {
    let mut n = 0;
    subject
        .split('.')
        .map(|t| {
            if t == "*" {
                n += 1;
                format!("${n}")
            } else {
                t.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// An account's mappings, in the order they were configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mappings {
    list: Vec<Mapping>,
}

impl Mappings {
    /// The mappings; a later one with the same source replaces the earlier.
    pub fn new(mappings: impl IntoIterator<Item = Mapping>) -> Self {
        let mut list: Vec<Mapping> = Vec::new();
        for m in mappings {
            match list.iter_mut().find(|e| e.src == m.src) {
                Some(e) => *e = m,
                None => list.push(m),
            }
        }
        Self { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.list.iter()
    }

    /// The subject a publish to `subject` goes to, or `None` when no mapping's source
    /// matches (nats-server's `selectMappedSubject`). `cluster` picks cluster-scoped
    /// destinations. The first matching mapping wins. The result is empty when the
    /// weights were left short of 100 on purpose (the source listed as a destination)
    /// and the draw fell in the gap: nats-server then publishes to no one.
    ///
    /// Like nats-server, the subject is split into tokens only once a mapping needs
    /// them: a literal source that equals the subject is taken without, so a
    /// `{{partition(n)}}` there hashes no tokens (always the same bucket) unless a
    /// mapping checked before it had the subject split already.
    pub fn select(&self, subject: &[u8], cluster: &str) -> Option<Vec<u8>> {
        let mut tokens: Vec<&[u8]> = Vec::new();
        let m = self.list.iter().find(|m| {
            if !m.wildcard && m.src.as_bytes() == subject {
                return true;
            }
            if tokens.is_empty() {
                tokenize(subject, &mut tokens);
            }
            subset_match(&tokens, &m.src)
        })?;
        let Some(tr) = m.pick(cluster) else {
            return Some(Vec::new());
        };
        if tr.destination().is_empty() {
            // `"src": ""` is accepted by nats-server, whose publish path then panics;
            // here the subject stays as it is.
            return None;
        }
        let mut out = Vec::with_capacity(subject.len() + tr.destination().len());
        tr.transform_tokens(&tokens, &mut out);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str, dest: &str) -> Mappings {
        Mappings::new([Mapping::new(src, &[MapDest::new(dest, 100)]).unwrap()])
    }

    fn sel(m: &Mappings, subject: &str) -> Option<String> {
        m.select(subject.as_bytes(), "")
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn plain_and_wildcard_mappings() {
        let m = one("foo", "bar");
        assert_eq!(sel(&m, "foo").as_deref(), Some("bar"));
        assert_eq!(sel(&m, "foo.x"), None);
        let m = one("a.*.>", "b.$1.>");
        assert_eq!(sel(&m, "a.x.y.z").as_deref(), Some("b.x.y.z"));
        assert_eq!(sel(&m, "a.x"), None);
    }

    #[test]
    fn literal_partition_hashes_no_tokens_like_nats_server() {
        // FNV-1a 32 of nothing is its offset basis 2166136261; % 10 = 1.
        let m = one("foo", "foo.{{partition(10)}}");
        assert_eq!(sel(&m, "foo").as_deref(), Some("foo.1"));
        // After a mapping that split the subject, the whole subject is hashed
        // ("foo" → 2851307223 % 10 = 3).
        let m = Mappings::new([
            Mapping::new("x.*", &[MapDest::new("y.$1", 100)]).unwrap(),
            Mapping::new("foo", &[MapDest::new("foo.{{partition(10)}}", 100)]).unwrap(),
        ]);
        assert_eq!(sel(&m, "foo").as_deref(), Some("foo.3"));
    }

    #[test]
    fn weights_fill_up_with_the_original_subject() {
        let m = Mapping::new("a.*", &[MapDest::new("b.$1", 60), MapDest::new("c.$1", 20)]).unwrap();
        let listed: Vec<(String, u8)> = m.destinations().map(|d| (d.subject, d.weight)).collect();
        assert_eq!(
            listed,
            vec![
                // Equal weights keep their order: the remainder comes last.
                ("c.$1".to_owned(), 20),
                ("a.$1".to_owned(), 40),
                ("b.$1".to_owned(), 100)
            ]
        );
        let all = Mappings::new([m]);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            match sel(&all, "a.x").as_deref() {
                Some("a.x") => counts[0] += 1,
                Some("c.x") => counts[1] += 1,
                Some("b.x") => counts[2] += 1,
                other => panic!("{other:?}"),
            }
        }
        for (n, want) in counts.iter().zip([2000, 2000, 6000]) {
            assert!(n.abs_diff(want) < 400, "{counts:?}");
        }
    }

    #[test]
    fn listing_the_source_means_the_rest_is_dropped() {
        let m = Mappings::new([
            Mapping::new("a", &[MapDest::new("a", 10), MapDest::new("b", 10)]).unwrap(),
        ]);
        let dropped = (0..1000)
            .filter(|_| sel(&m, "a").as_deref() == Some(""))
            .count();
        assert!(dropped > 600, "{dropped}");
    }

    #[test]
    fn cluster_scoped_destinations() {
        let m = Mappings::new([Mapping::new(
            "a",
            &[
                MapDest::new("all", 100),
                MapDest {
                    subject: "east".into(),
                    weight: 100,
                    cluster: "e".into(),
                },
            ],
        )
        .unwrap()]);
        assert_eq!(m.select(b"a", "e"), Some(b"east".to_vec()));
        assert_eq!(m.select(b"a", "w"), Some(b"all".to_vec()));
        assert_eq!(m.select(b"a", ""), Some(b"all".to_vec()));
    }

    #[test]
    fn bad_mappings_are_refused() {
        let e = |src: &str, dests: &[MapDest]| Mapping::new(src, dests).unwrap_err().to_string();
        assert_eq!(
            e("a", &[MapDest::new("b", 60), MapDest::new("c", 50)]),
            "total weight needs to be <= 100"
        );
        assert_eq!(
            e("a", &[MapDest::new("b", 60), MapDest::new("b", 10)]),
            "duplicate entry for \"b\""
        );
        assert_eq!(
            e("a", &[MapDest::new("b", 101)]),
            "individual weights need to be <= 100"
        );
        assert_eq!(e("a b", &[MapDest::new("b", 100)]), "invalid subject");
        assert_eq!(
            e("a", &[MapDest::new("b.$1", 100)]),
            "invalid mapping destination: wildcard index out of range in $1"
        );
        // Per cluster, weights have their own 100.
        assert!(
            Mapping::new(
                "a",
                &[
                    MapDest::new("b", 100),
                    MapDest {
                        subject: "c".into(),
                        weight: 100,
                        cluster: "x".into()
                    }
                ]
            )
            .is_ok()
        );
    }

    #[test]
    fn an_empty_destination_keeps_the_subject() {
        let m = one("a", "");
        assert_eq!(sel(&m, "a"), None);
    }

    #[test]
    fn wildcard_tokenizing() {
        assert_eq!(tokenize_wildcards("a.*.b.*.>"), "a.$1.b.$2.>");
    }
}
