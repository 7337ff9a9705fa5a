//! `encoding::AcceptEncoding::parse` and `negotiate` on any field value (RFC 9110 §12.5.3).
//!
//! Besides "never panics": for every subset of the codings the server can offer, the chosen one
//! is offered and acceptable, and `None` is returned only when nothing offered is acceptable.
#![no_main]

use cdn_origin::encoding::{AcceptEncoding, Encoding};
use libfuzzer_sys::fuzz_target;

const ALL: [Encoding; 4] = [
    Encoding::Brotli,
    Encoding::Zstd,
    Encoding::Gzip,
    Encoding::Identity,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let accept = AcceptEncoding::parse(text);
    for mask in 0u8..16 {
        let offered: Vec<Encoding> = ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, e)| *e)
            .collect();
        match accept.negotiate(&offered) {
            Some(chosen) => {
                assert!(offered.contains(&chosen), "{chosen:?} was not offered");
                assert!(accept.is_acceptable(chosen), "{chosen:?} is not acceptable");
            }
            None => assert!(
                !offered.iter().any(|e| accept.is_acceptable(*e)),
                "nothing chosen although something offered is acceptable"
            ),
        }
    }
});
