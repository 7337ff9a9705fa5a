//! The `Date` field (RFC 9110 section 6.6.1) of every response, rendered once a second per
//! event loop rather than per response.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
const LEN: usize = 29;

thread_local! {
    /// The second last rendered, and its rendering.
    static LAST: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
}

/// Appends the current date, as an IMF-fixdate.
pub fn extend(dst: &mut Vec<u8>) {
    // A clock before 1970 says 1970 (httpdate cannot render earlier dates).
    let now = SystemTime::now().max(UNIX_EPOCH);
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with_borrow_mut(|(last, text)| {
        if *last != second {
            let mut out = &mut text[..];
            // 29 bytes for every date from 1970 to 9999; a clock past 9999 renders what fits.
            let _ = write!(out, "{}", httpdate::HttpDate::from(now));
            *last = second;
        }
        dst.extend_from_slice(text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_imf_fixdate_of_now() {
        let mut out = Vec::new();
        extend(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        let parsed = httpdate::parse_http_date(text).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() <= 1, "{text}");
        out.clear();
        extend(&mut out);
        assert_eq!(out.len(), LEN);
    }
}
