//! Micro-benchmarks of the hot path: the client protocol parser and the sublist.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use natrix_broker::protocol::{Handler, Op, ParseError, Parser, PubArgs};
use natrix_broker::sublist::{Sublist, Subscriber};

struct Count(usize);

impl Handler for Count {
    fn awaiting_auth(&self) -> bool {
        false
    }
    fn max_control_line(&self) -> usize {
        4096
    }
    fn headers(&self) -> bool {
        true
    }
    fn pub_args(&mut self, _: &PubArgs<'_>) -> Result<(), ParseError> {
        Ok(())
    }
    fn op(&mut self, op: Op<'_>) -> Result<(), ParseError> {
        black_box(&op);
        self.0 += 1;
        Ok(())
    }
}

fn parser(c: &mut Criterion) {
    let mut g = c.benchmark_group("parser");
    for (name, frame) in [
        ("pub_16b", b"PUB foo.bar 16\r\n0123456789abcdef\r\n".as_slice()),
        (
            "pub_reply_128b",
            b"PUB svc.echo _INBOX.abcdefghijklmnop.1 128\r\n00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\r\n"
                .as_slice(),
        ),
        (
            "hpub_32b",
            b"HPUB foo 22 32\r\nNATS/1.0\r\nA: bcdef\r\n\r\n0123456789\r\n".as_slice(),
        ),
    ] {
        let buf: Vec<u8> = frame.repeat(1000);
        g.throughput(Throughput::Elements(1000));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut p = Parser::new();
                let mut h = Count(0);
                let n = p.parse(black_box(&buf), &mut h).unwrap_or(0);
                assert_eq!(h.0, 1000);
                n
            });
        });
    }
    g.finish();
}

struct Sub(Vec<u8>);

impl Subscriber for Sub {
    fn subject(&self) -> &[u8] {
        &self.0
    }
    fn queue(&self) -> Option<&[u8]> {
        None
    }
}

fn sublist(c: &mut Criterion) {
    let mut g = c.benchmark_group("sublist");
    let sl = Sublist::new();
    for i in 0..10_000 {
        sl.insert(Arc::new(Sub(
            format!("orders.{}.{}", i % 100, i).into_bytes()
        )))
        .unwrap();
    }
    for s in ["orders.*.*", "orders.>", "orders.7.*"] {
        sl.insert(Arc::new(Sub(s.as_bytes().to_vec()))).unwrap();
    }
    g.bench_function("match_cached", |b| {
        b.iter(|| sl.match_subject(black_box(b"orders.7.1207")).psubs.len());
    });
    let subjects: Vec<Vec<u8>> = (0..4096)
        .map(|i| format!("orders.{}.{}", i % 100, i * 7).into_bytes())
        .collect();
    let mut i = 0;
    g.bench_function("match_uncached_mix", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            sl.match_subject(black_box(&subjects[i])).psubs.len()
        });
    });
    g.bench_function("insert_remove", |b| {
        b.iter(|| {
            let s = Arc::new(Sub(b"orders.bench.x".to_vec()));
            sl.insert(s.clone()).unwrap();
            sl.remove(&s).unwrap();
        });
    });
    g.finish();
}

criterion_group!(benches, parser, sublist);
criterion_main!(benches);
