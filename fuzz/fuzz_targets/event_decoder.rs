//! Raw ring-buffer records -> typed kernel events: any bytes decode or fail with a
//! `DecodeError`, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(error) = vigil::decode::decode(data) {
        let _ = error.cause();
    }
});
