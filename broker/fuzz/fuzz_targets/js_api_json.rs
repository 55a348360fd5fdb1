//! The JetStream API's request decoding: any bytes as the body of each request type, in
//! strict and lenient mode, then (for configs that decode) nats-server's defaults and
//! config checks. Bad input must give an `ApiError`, never a panic; what decodes must
//! serialise again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrix_jetstream::api::json::{decode_request, to_vec};
use natrix_jetstream::api::types::{
    ConsumerConfig, ConsumerGetNextRequest, ConsumerPauseRequest, CreateConsumerRequest,
    MsgDeleteRequest, MsgGetRequest, StreamConfig, StreamConfigRequest, StreamInfoRequest,
    StreamNamesRequest, StreamPurgeRequest,
};

fn decode<T>(body: &[u8], strict: bool)
where
    T: serde::de::DeserializeOwned + serde::Serialize + Default,
{
    if let Ok(v) = decode_request::<T>(body, strict) {
        // What decoded must encode again.
        assert!(to_vec(&v).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    for strict in [true, false] {
        decode::<StreamInfoRequest>(data, strict);
        decode::<StreamNamesRequest>(data, strict);
        decode::<StreamPurgeRequest>(data, strict);
        decode::<MsgGetRequest>(data, strict);
        decode::<MsgDeleteRequest>(data, strict);
        decode::<ConsumerPauseRequest>(data, strict);
        if let Ok(req) = StreamConfigRequest::decode(data, strict) {
            let cfg: StreamConfig = req.config;
            let _ = cfg.clone().with_defaults();
            assert!(to_vec(&cfg).is_ok());
        }
        if let Ok(req) = decode_request::<CreateConsumerRequest>(data, strict) {
            let cfg: ConsumerConfig = req.config;
            let _ = cfg.with_defaults();
        }
    }
    let _ = ConsumerGetNextRequest::parse(data);
});
