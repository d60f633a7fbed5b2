//! Policy YAML -> compiled set -> evaluated against the events of the shipped behaviour
//! cases: text either compiles or yields check errors, and evaluation never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let set = match vigil::policy::load::compile(&vec![("fuzz.yaml".into(), text.into())]) {
        Ok(set) => set,
        Err(errors) => {
            // Every error renders (positions, field paths).
            let _ = errors.to_string();
            return;
        }
    };
    let mut out = Vec::new();
    for (node, event) in vigil_fuzz::EVENTS.iter() {
        out.clear();
        set.evaluate(event, node, &mut out);
    }
});
