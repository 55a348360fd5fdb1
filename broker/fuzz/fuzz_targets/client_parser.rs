//! Feeds arbitrary bytes, cut into arbitrary pieces, to the client protocol parser the way
//! a connection does, and checks it never panics, never loops without progress, and
//! reports only offsets inside the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrix_broker::protocol::{Handler, Op, ParseError, Parser, PubArgs};

struct Sink {
    auth: bool,
    ops: usize,
}

impl Handler for Sink {
    fn awaiting_auth(&self) -> bool {
        self.auth
    }
    fn max_control_line(&self) -> usize {
        4096
    }
    fn headers(&self) -> bool {
        true
    }
    fn pub_args(&mut self, args: &PubArgs<'_>) -> Result<(), ParseError> {
        if args.size > 1 << 20 {
            return Err(ParseError::MaxPayload);
        }
        Ok(())
    }
    fn op(&mut self, op: Op<'_>) -> Result<(), ParseError> {
        self.ops += 1;
        if let Op::Connect(_) = op {
            self.auth = false;
        }
        if let Op::Pub { hdr: Some(h), msg, .. } = op {
            assert!(h <= msg.len());
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let mut sink = Sink { auth: first & 1 == 1, ops: 0 };
    let mut parser = Parser::new();
    let mut buf: Vec<u8> = Vec::new();
    let step = usize::from(first >> 1).max(1);
    for chunk in rest.chunks(step) {
        buf.extend_from_slice(chunk);
        match parser.parse(&buf, &mut sink) {
            Ok(n) => {
                assert!(n <= buf.len());
                buf.drain(..n);
            }
            Err(_) => return,
        }
    }
});
