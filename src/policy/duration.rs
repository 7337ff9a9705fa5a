//! Durations in policy files: `3600`, `"90s"`, `"5m"`, `"12h"`, `"30d"`, `"1w"`, `"1h30m"`.
//!
//! Cache-Control lifetimes are whole seconds (delta-seconds, RFC 9111 section 1.2.2), so a
//! duration is a number of seconds: a bare integer, or a string of `<number><unit>` parts with
//! units `s`, `m`, `h`, `d`, `w` (lowercase only, so `m` can never be mistaken for months).
//! A value above 2^31 seconds (about 68 years) is refused: RFC 9111 section 1.2.2 caps
//! delta-seconds there, and a longer value is a mistake, not a wish.

use std::time::Duration;

/// The largest delta-seconds value worth sending (RFC 9111 section 1.2.2).
pub const MAX_SECONDS: u64 = 1 << 31;

/// Parses a duration string. The error text says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: expected seconds (3600) or numbers with units \
             s, m, h, d, w (\"90s\", \"5m\", \"12h\", \"30d\", \"1h30m\")"
        )
    };
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_long(text))?;
        rest = &rest[digits..];
        let unit = match rest.bytes().next() {
            // a bare number is seconds, but only as the whole text ("90", not "1h30")
            None if total == 0 && digits == text.len() => 1,
            None => return Err(invalid()),
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 3600,
            Some(b'd') => 86_400,
            Some(b'w') => 604_800,
            Some(_) => return Err(invalid()),
        };
        if !rest.is_empty() {
            rest = &rest[1..];
        }
        total = number
            .checked_mul(unit)
            .and_then(|s| s.checked_add(total))
            .ok_or_else(|| too_long(text))?;
    }
    seconds(total).map_err(|_| too_long(text))
}

/// A duration from an integer number of seconds, refused when negative or above the cap.
pub fn from_seconds(value: i64) -> Result<Duration, String> {
    let secs =
        u64::try_from(value).map_err(|_| format!("a duration cannot be negative ({value})"))?;
    seconds(secs).map_err(|_| too_long(&value.to_string()))
}

fn seconds(secs: u64) -> Result<Duration, ()> {
    if secs > MAX_SECONDS {
        return Err(());
    }
    Ok(Duration::from_secs(secs))
}

fn too_long(text: &str) -> String {
    format!("duration {text} is longer than {MAX_SECONDS} seconds (RFC 9111 section 1.2.2)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_durations() {
        let table = [
            ("0", 0),
            ("3600", 3600),
            ("90s", 90),
            ("5m", 300),
            ("12h", 43_200),
            ("30d", 2_592_000),
            ("365d", 31_536_000),
            ("1w", 604_800),
            ("1h30m", 5400),
            ("1d12h", 129_600),
            ("2147483648", MAX_SECONDS),
        ];
        for (text, secs) in table {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn refused_durations() {
        for text in [
            "",
            "d",
            "30D",
            "5M",
            "1.5h",
            "-5",
            "5 m",
            " 5m",
            "5m ",
            "30x",
            "1h30",
            "h1",
            "1y",
            "2147483649",
            "99999999999999999999",
            "25000d",
            "18446744073709551615s",
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(
                err.contains(text),
                "{text:?}: message {err:?} should quote the input"
            );
        }
    }

    #[test]
    fn integer_seconds() {
        assert_eq!(from_seconds(60), Ok(Duration::from_secs(60)));
        assert!(from_seconds(-1).unwrap_err().contains("negative"));
        assert!(from_seconds(1 << 40).unwrap_err().contains("RFC 9111"));
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "[0-9smhdw .-]{0,12}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn parts_add_up(d in 0u64..1000, h in 0u64..24, m in 0u64..60, s in 0u64..60) {
            let text = format!("{d}d{h}h{m}m{s}s");
            let want = d * 86_400 + h * 3600 + m * 60 + s;
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(want)));
        }
    }
}
