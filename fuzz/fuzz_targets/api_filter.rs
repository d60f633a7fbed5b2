//! A gRPC `EventsRequest` as a client sends it (protobuf bytes) -> the API's filter ->
//! matched against the events of the shipped behaviour cases.
#![no_main]

use prost::Message as _;
use vigil::api::{filter::EventFilter, proto::EventsRequest};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(request) = EventsRequest::decode(data) else {
        return;
    };
    let Ok(filter) = EventFilter::new(request) else {
        return;
    };
    for (_, event) in vigil_fuzz::EVENTS.iter() {
        let _ = filter.matches(event);
    }
});
