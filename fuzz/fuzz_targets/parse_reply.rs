//! Reply parsing on arbitrary bytes: never panics, and whatever parses re-identifies the same
//! probe fields it reported (no out-of-range reads hidden behind a success).
#![no_main]

use edgetrace_wire::{parse_reply_v4, parse_reply_v6};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_reply_v4(data) {
        assert!(r.mpls.len() <= data.len() / 4);
    }
    let (first, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let next_header = if first & 1 == 0 { 58 } else { 6 };
    if let Ok(r) = parse_reply_v6(Ipv6Addr::LOCALHOST, next_header, rest) {
        assert!(r.mpls.len() <= rest.len() / 4);
    }
});
