//! A DNS payload as the kernel copies it (the first byte picks UDP or TCP framing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&transport, payload)) = data.split_first() else {
        return;
    };
    let _ = vigil::network::parse_dns(payload, transport & 1 == 1);
});
