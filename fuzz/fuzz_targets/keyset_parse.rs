//! Key-set parsing on arbitrary input. Nothing may panic; an accepted set must serialize to a
//! document that parses back to the same set, with a primary key among its keys.
#![no_main]

use fieldseal_core::keyset::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = KeySet::parse(text) {
        let again = KeySet::parse(&set.to_json()).expect("a serialized key set parses");
        assert_eq!(again, set);
        assert!(set.keys().iter().any(|k| k == set.primary()));
        assert!(set.primary().not_before <= set.server_time());
    }
});
