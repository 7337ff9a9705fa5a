//! Conditional requests (RFC 9110 §13): reading the precondition headers into [`Conditions`] and
//! evaluating them against an object's validators, as pure functions.
//!
//! The server evaluates preconditions itself from the object's metadata rather than handing
//! them to `object_store`, whose checks compare exact strings and nanosecond timestamps: HTTP
//! wants weak comparison for `If-None-Match` (§13.1.2) and whole-second dates (§5.6.7).
//!
//! [`evaluate`] follows the order of §13.2.2, where each header is consulted only when the ones
//! before it allow:
//!
//! 1. `If-Match` (strong comparison, lists, `*`): no match → 412.
//! 2. `If-Unmodified-Since`, only without `If-Match`: modified after the date → 412.
//! 3. `If-None-Match` (weak comparison, lists, `*`): a match → 304 for GET/HEAD, 412 otherwise.
//! 4. `If-Modified-Since`, only without `If-None-Match` and only for GET/HEAD: not modified
//!    since the date → 304.
//!
//! `If-Range` (§13.1.5) is step 5 and only matters when there is a `Range`; [`range_allowed`]
//! answers it separately so the caller can fall back to a full 200.
//!
//! Callers evaluate preconditions only for objects that exist: a precondition never turns a 404
//! into a 304 or 412. Headers that cannot be parsed are ignored where the RFC says so
//! (§13.1.3, §13.1.4); an unparseable `If-Range` is kept as [`IfRange::Invalid`] because the safe
//! reading of it is "the client's copy may be different: send everything".

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{
    GetAll, HeaderName, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
};
use http::{HeaderMap, HeaderValue, Method};

use crate::etag::{ETag, ETagField};

/// The precondition headers of one request, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match` (§13.1.1).
    pub if_match: Option<ETagField>,
    /// `If-None-Match` (§13.1.2).
    pub if_none_match: Option<ETagField>,
    /// `If-Modified-Since` (§13.1.3); `None` when absent, invalid, a list, or in the future.
    pub if_modified_since: Option<SystemTime>,
    /// `If-Unmodified-Since` (§13.1.4); `None` when absent or invalid.
    pub if_unmodified_since: Option<SystemTime>,
    /// `If-Range` (§13.1.5).
    pub if_range: Option<IfRange>,
}

/// The validator of an `If-Range` header (§13.1.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfRange {
    /// An entity tag; only a strong one can ever allow the range.
    ETag(ETag),
    /// An HTTP-date; allows the range only when exactly equal to Last-Modified.
    Date(SystemTime),
    /// Neither a tag nor a date (or several field lines): the range is not served.
    Invalid,
}

/// The one field line of a singleton header, or `None` when absent or repeated.
fn single(values: GetAll<'_, HeaderValue>) -> Option<Option<&HeaderValue>> {
    let mut iter = values.iter();
    let first = iter.next()?;
    Some(iter.next().is_none().then_some(first))
}

/// An HTTP-date in any of the three formats of §5.6.7 (IMF-fixdate, RFC 850, asctime).
/// A value with several members (`date, date`) does not parse as one date and is rejected.
fn parse_date(value: &HeaderValue) -> Option<SystemTime> {
    let text = value.to_str().ok()?.trim_matches([' ', '\t']);
    httpdate::parse_http_date(text).ok()
}

fn date_header(values: GetAll<'_, HeaderValue>) -> Option<SystemTime> {
    single(values).flatten().and_then(parse_date)
}

/// Seconds since the epoch, rounded down, so that sub-second parts of a stored modification time
/// never make an object look newer than the whole-second date a client echoes back (§5.6.7).
fn whole_seconds(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => {
            let d = e.duration();
            -i128::from(d.as_secs()) - i128::from(d.subsec_nanos() > 0)
        }
    }
}

impl Conditions {
    /// Reads the precondition headers, judging `If-Modified-Since` against the current time.
    pub fn from_headers(headers: &HeaderMap) -> Conditions {
        Self::read(headers, SystemTime::now)
    }

    /// Like [`Conditions::from_headers`] with an explicit current time: an `If-Modified-Since`
    /// later than `now` is invalid and ignored (§13.1.3), since trusting it would answer 304 for
    /// changes made between now and that date.
    pub fn from_headers_at(headers: &HeaderMap, now: SystemTime) -> Conditions {
        Self::read(headers, || now)
    }

    /// The one reader; `now` is asked only when there is an `If-Modified-Since` to judge (the
    /// clock is not read for the other requests).
    fn read(headers: &HeaderMap, now: impl FnOnce() -> SystemTime) -> Conditions {
        // Requests carry none or one of the five fields as a rule: one pass over the field
        // names (a few comparisons of standard-header codes each, no hashing) finds which are
        // present, and only those are looked up.
        static FIELDS: [HeaderName; 5] = [
            IF_MATCH,
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_UNMODIFIED_SINCE,
            IF_RANGE,
        ];
        let mut present = [false; 5];
        for name in headers.keys() {
            if let Some(i) = FIELDS.iter().position(|field| field == name) {
                present[i] = true;
            }
        }
        if present == [false; 5] {
            return Conditions::default();
        }
        let field = |i: usize| present[i].then(|| headers.get_all(&FIELDS[i]));
        let if_range = field(4).and_then(single).map(|value| {
            let parsed = value.and_then(|v| {
                let text = v.to_str().ok()?.trim_matches([' ', '\t']);
                // §13.1.5: an entity-tag starts with a quote or `W/`; anything else is a date.
                if text.starts_with('"') || text.starts_with("W/") {
                    ETag::parse(text).map(IfRange::ETag)
                } else {
                    parse_date(v).map(IfRange::Date)
                }
            });
            parsed.unwrap_or(IfRange::Invalid)
        });
        Conditions {
            if_match: field(0).and_then(ETagField::from_headers),
            if_none_match: field(1).and_then(ETagField::from_headers),
            if_modified_since: field(2)
                .and_then(date_header)
                .filter(|date| whole_seconds(*date) <= whole_seconds(now())),
            if_unmodified_since: field(3).and_then(date_header),
            if_range,
        }
    }

    /// True when the request carries no precondition at all.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
            && self.if_range.is_none()
    }
}

/// The validators of the selected representation.
#[derive(Clone, Copy, Debug)]
pub struct Validators<'a> {
    /// Its entity tag.
    pub etag: &'a ETag,
    /// Its Last-Modified time, already truncated to whole seconds (comparisons truncate again,
    /// so an untruncated time is also safe).
    pub last_modified: Option<SystemTime>,
}

/// The outcome of the preconditions: an outcome, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Perform the request.
    Proceed,
    /// 304 Not Modified (GET/HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

fn is_get_or_head(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Evaluates the preconditions in the order of RFC 9110 §13.2.2 (see the module doc).
///
/// Without a Last-Modified, `If-Unmodified-Since` fails (the object cannot prove it is
/// unchanged) and `If-Modified-Since` never gives 304. Dates compare at whole-second precision.
/// Call this only for objects that exist.
pub fn evaluate(c: &Conditions, method: &Method, v: &Validators<'_>) -> Precondition {
    let last_modified = v.last_modified.map(whole_seconds);

    // Step 1 and 2: the state-changing guards; a failed one is always 412.
    if let Some(list) = &c.if_match {
        if !list.matches_strong(v.etag) {
            return Precondition::Failed;
        }
    } else if let Some(date) = c.if_unmodified_since {
        match last_modified {
            Some(lm) if lm <= whole_seconds(date) => {}
            _ => return Precondition::Failed,
        }
    }

    // Step 3 and 4: the cache-validation guards.
    if let Some(list) = &c.if_none_match {
        if list.matches_weak(v.etag) {
            return if is_get_or_head(method) {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if let Some(date) = c.if_modified_since
        && is_get_or_head(method)
        && last_modified.is_some_and(|lm| lm <= whole_seconds(date))
    {
        return Precondition::NotModified;
    }

    Precondition::Proceed
}

/// `If-Range` (§13.1.5): true when there is no `If-Range`, when it is a strong entity tag
/// strongly equal to the current one, or when it is a date exactly equal to Last-Modified (whole
/// seconds) and that Last-Modified is strong (a minute old, RFC 9110 §8.8.2.2). Weak tags and
/// unparseable values never allow the range. Consult it only when the request has a `Range`
/// (§13.1.5: If-Range without Range is ignored).
pub fn range_allowed(c: &Conditions, v: &Validators<'_>) -> bool {
    match &c.if_range {
        None => true,
        Some(IfRange::ETag(tag)) => tag.strong_eq(v.etag),
        Some(IfRange::Date(date)) => v.last_modified.is_some_and(|lm| {
            whole_seconds(lm) == whole_seconds(*date)
                && last_modified_is_strong(lm, SystemTime::now())
        }),
        Some(IfRange::Invalid) => false,
    }
}

/// §8.8.2.2: a Last-Modified is a strong validator only when the representation cannot have
/// changed twice within its second. The origin cannot know which version of that second a
/// client holds: two writes 100 ms apart share one date, and a range of the second under
/// the first's date would splice two versions. So the date counts as strong only once it is
/// [`STRONG_DATE_AGE`] old, the margin §8.8.2.2 asks of a client cache (`Date` at least 60 s
/// after `Last-Modified`); a client that kept a copy sent within that minute of a change is
/// the one the rule is for. A date younger than that gets the whole 200, which is never wrong.
fn last_modified_is_strong(lm: SystemTime, now: SystemTime) -> bool {
    whole_seconds(lm) + STRONG_DATE_AGE <= whole_seconds(now)
}

/// How old, in seconds, a Last-Modified must be to serve as a strong `If-Range` validator.
const STRONG_DATE_AGE: i128 = 60;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etag::ETagList;
    use std::time::Duration;

    fn field(value: &str) -> ETagField {
        ETagField::new(HeaderValue::from_str(value).unwrap())
    }

    /// Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 §5.6.7 example.
    const RFC_DATE: u64 = 784_111_777;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }
    fn tag(s: &str) -> ETag {
        ETag::parse(s).unwrap()
    }

    fn run(c: Conditions, method: Method, last_modified: Option<SystemTime>) -> Precondition {
        let etag = tag("\"v1\"");
        let v = Validators {
            etag: &etag,
            last_modified,
        };
        evaluate(&c, &method, &v)
    }

    const LM: u64 = 1_000_000;

    fn at(offset: i64) -> SystemTime {
        t(LM.saturating_add_signed(offset))
    }

    #[test]
    fn evaluation_follows_rfc_9110_section_13_2_2_order() {
        use Precondition::*;
        const V1: Option<&str> = Some("\"v1\"");
        const V2: Option<&str> = Some("\"v2\"");
        const STAR: Option<&str> = Some("*");
        let (get, head, post, put) = (Method::GET, Method::HEAD, Method::POST, Method::PUT);
        // (name, If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since (dates as
        //  seconds relative to Last-Modified), method, has Last-Modified, outcome)
        #[rustfmt::skip]
        let cases = [
            ("no_conditions_proceed",                          None,              None,     None,                 None,     &get,  true,  Proceed),
            ("if_match_same_tag_proceeds",                     V1,                None,     None,                 None,     &get,  true,  Proceed),
            ("if_match_in_a_list_proceeds",                    Some("\"x\", \"v1\""), None, None,                 None,     &get,  true,  Proceed),
            ("if_match_star_proceeds",                         STAR,              None,     None,                 None,     &put,  true,  Proceed),
            ("if_match_other_tag_fails",                       V2,                None,     None,                 None,     &get,  true,  Failed),
            ("if_match_weak_tag_fails_strong_comparison",      Some("W/\"v1\""),  None,     None,                 None,     &get,  true,  Failed),
            ("if_match_without_valid_member_fails",            Some("junk"),      None,     None,                 None,     &get,  true,  Failed),
            ("if_match_failure_wins_over_if_none_match",       V2,                None,     V1,                   None,     &get,  true,  Failed),
            ("if_match_skips_if_unmodified_since",             V1,                Some(-10), None,                None,     &get,  true,  Proceed),
            ("if_unmodified_since_older_than_object_fails",    None,              Some(-1), None,                 None,     &get,  true,  Failed),
            ("if_unmodified_since_equal_proceeds",             None,              Some(0),  None,                 None,     &get,  true,  Proceed),
            ("if_unmodified_since_without_last_modified_fails", None,             Some(0),  None,                 None,     &get,  false, Failed),
            ("if_unmodified_since_failure_wins_over_inm",      None,              Some(-1), V1,                   None,     &get,  true,  Failed),
            ("if_match_pass_then_if_none_match_gives_304",     V1,                None,     V1,                   None,     &get,  true,  NotModified),
            ("if_unmodified_since_pass_then_inm_gives_304",    None,              Some(0),  V1,                   None,     &get,  true,  NotModified),
            ("if_none_match_same_tag_gives_304",               None,              None,     V1,                   None,     &get,  true,  NotModified),
            ("if_none_match_on_head_gives_304",                None,              None,     V1,                   None,     &head, true,  NotModified),
            ("if_none_match_weak_tag_matches_weakly",          None,              None,     Some("W/\"v1\""),     None,     &get,  true,  NotModified),
            ("if_none_match_in_a_list_gives_304",              None,              None,     Some("\"a\", W/\"v1\""), None, &get,  true,  NotModified),
            ("if_none_match_star_gives_304",                   None,              None,     STAR,                 None,     &get,  true,  NotModified),
            ("if_none_match_on_other_methods_fails",           None,              None,     V1,                   None,     &post, true,  Failed),
            ("if_none_match_star_on_put_fails",                None,              None,     STAR,                 None,     &put,  true,  Failed),
            ("if_none_match_other_tag_proceeds",               None,              None,     V2,                   None,     &get,  true,  Proceed),
            ("if_none_match_wins_over_if_modified_since",      None,              None,     V2,                   Some(10), &get,  true,  Proceed),
            ("if_modified_since_equal_gives_304",              None,              None,     None,                 Some(0),  &get,  true,  NotModified),
            ("if_modified_since_later_gives_304",              None,              None,     None,                 Some(1),  &head, true,  NotModified),
            ("if_modified_since_earlier_proceeds",             None,              None,     None,                 Some(-1), &get,  true,  Proceed),
            ("if_modified_since_ignored_for_post",             None,              None,     None,                 Some(0),  &post, true,  Proceed),
            ("if_modified_since_without_last_modified_proceeds", None,            None,     None,                 Some(0),  &get,  false, Proceed),
        ];
        for (name, im, ius, inm, ims, method, has_lm, want) in cases {
            let c = Conditions {
                if_match: im.map(field),
                if_unmodified_since: ius.map(at),
                if_none_match: inm.map(field),
                if_modified_since: ims.map(at),
                if_range: Some(IfRange::Invalid), // If-Range never changes the outcome
            };
            assert_eq!(
                run(c, method.clone(), has_lm.then(|| t(LM))),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn dates_compare_at_whole_second_precision() {
        let lm = Some(t(LM) + Duration::from_millis(999));
        let ims = Conditions {
            if_modified_since: Some(t(LM)),
            ..Conditions::default()
        };
        assert_eq!(run(ims, Method::GET, lm), Precondition::NotModified);
        let ius = Conditions {
            if_unmodified_since: Some(t(LM)),
            ..Conditions::default()
        };
        assert_eq!(run(ius, Method::GET, lm), Precondition::Proceed);
    }

    fn headers(pairs: &[(&http::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ims_at(values: &[&str], now: u64) -> Option<SystemTime> {
        let pairs: Vec<_> = values.iter().map(|v| (&IF_MODIFIED_SINCE, *v)).collect();
        Conditions::from_headers_at(&headers(&pairs), t(now)).if_modified_since
    }

    #[test]
    fn dates_parse_in_all_three_formats_and_invalid_ones_are_ignored() {
        let now = t(2_000_000_000);
        #[rustfmt::skip]
        let cases = [
            ("imf_fixdate",            "Sun, 06 Nov 1994 08:49:37 GMT",   Some(t(RFC_DATE))),
            ("rfc850",                 "Sunday, 06-Nov-94 08:49:37 GMT",  Some(t(RFC_DATE))),
            ("asctime",                "Sun Nov  6 08:49:37 1994",        Some(t(RFC_DATE))),
            ("surrounding_whitespace", " Sun, 06 Nov 1994 08:49:37 GMT ", Some(t(RFC_DATE))),
            ("garbage",                "yesterday",                       None),
            ("empty",                  "",                                None),
            ("bad_month",              "Sun, 06 Foo 1994 08:49:37 GMT",   None),
            ("list_of_dates",          "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", None),
        ];
        for (name, value, want) in cases {
            let ims = headers(&[(&IF_MODIFIED_SINCE, value)]);
            let got = Conditions::from_headers_at(&ims, now).if_modified_since;
            assert_eq!(got, want, "If-Modified-Since {name}");
            let ius = headers(&[(&IF_UNMODIFIED_SINCE, value)]);
            let got = Conditions::from_headers_at(&ius, now).if_unmodified_since;
            assert_eq!(got, want, "If-Unmodified-Since {name}");
        }
    }

    #[test]
    fn if_modified_since_with_several_lines_or_in_the_future_is_ignored() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(ims_at(&[date, date], RFC_DATE + 1), None);
        assert_eq!(ims_at(&[date], RFC_DATE - 1), None);
        assert_eq!(ims_at(&[date], RFC_DATE), Some(t(RFC_DATE)));
        // The future rule is for If-Modified-Since only (§13.1.3).
        let ius = headers(&[(&IF_UNMODIFIED_SINCE, date)]);
        let got = Conditions::from_headers_at(&ius, t(RFC_DATE - 1)).if_unmodified_since;
        assert_eq!(got, Some(t(RFC_DATE)));
    }

    #[test]
    fn if_range_reads_a_tag_a_date_or_invalid() {
        let date = IfRange::Date(t(RFC_DATE));
        #[rustfmt::skip]
        let cases = [
            ("strong_tag",   &["\"v1\""][..],                   Some(IfRange::ETag(tag("\"v1\"")))),
            ("weak_tag",     &["W/\"v1\""],                     Some(IfRange::ETag(tag("W/\"v1\"")))),
            ("imf_date",     &["Sun, 06 Nov 1994 08:49:37 GMT"], Some(date.clone())),
            ("rfc850_date",  &["Sunday, 06-Nov-94 08:49:37 GMT"], Some(date.clone())),
            ("asctime_date", &["Sun Nov  6 08:49:37 1994"],      Some(date)),
            ("garbage",      &["tomorrow"],                      Some(IfRange::Invalid)),
            ("broken_tag",   &["\"v1"],                          Some(IfRange::Invalid)),
            ("tag_list",     &["\"v1\", \"v2\""],                Some(IfRange::Invalid)),
            ("two_lines",    &["\"v1\"", "\"v1\""],               Some(IfRange::Invalid)),
            ("absent",       &[],                                None),
        ];
        for (name, values, want) in cases {
            let pairs: Vec<_> = values.iter().map(|v| (&IF_RANGE, *v)).collect();
            let got = Conditions::from_headers(&headers(&pairs)).if_range;
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn from_headers_reads_every_precondition_and_is_empty_without_them() {
        assert!(Conditions::from_headers(&HeaderMap::new()).is_empty());
        let ignored = headers(&[(&IF_MODIFIED_SINCE, "not a date")]);
        assert!(Conditions::from_headers(&ignored).is_empty());
        let all = headers(&[
            (&IF_MATCH, "\"a\""),
            (&IF_NONE_MATCH, "*"),
            (&IF_MODIFIED_SINCE, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (&IF_UNMODIFIED_SINCE, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (&IF_RANGE, "\"a\""),
        ]);
        let c = Conditions::from_headers(&all);
        assert!(!c.is_empty());
        assert_eq!(c.if_match.map(|f| f.list()), Some(ETagList::parse("\"a\"")));
        assert_eq!(c.if_none_match.map(|f| f.list()), Some(ETagList::Any));
        assert_eq!(c.if_modified_since, Some(t(RFC_DATE)));
        assert_eq!(c.if_unmodified_since, Some(t(RFC_DATE)));
        assert_eq!(c.if_range, Some(IfRange::ETag(tag("\"a\""))));
    }

    #[test]
    fn range_allowed_needs_a_strong_tag_or_the_exact_date() {
        let (strong, weak) = (tag("\"v1\""), tag("W/\"v1\""));
        let lm = Some(t(LM));
        let late = Some(t(LM) + Duration::from_millis(400));
        let tagged = |s: &str| Some(IfRange::ETag(tag(s)));
        let dated = |offset: i64| Some(IfRange::Date(at(offset)));
        #[rustfmt::skip]
        let cases = [
            ("no_if_range",                None,                   &strong, lm,   true),
            ("same_strong_tag",            tagged("\"v1\""),       &strong, lm,   true),
            ("other_strong_tag",           tagged("\"v2\""),       &strong, lm,   false),
            ("weak_tag_never",             tagged("W/\"v1\""),     &strong, lm,   false),
            ("current_tag_weak",           tagged("\"v1\""),       &weak,   lm,   false),
            ("exact_date",                 dated(0),               &strong, lm,   true),
            ("exact_date_whole_seconds",   dated(0),               &strong, late, true),
            ("later_date",                 dated(1),               &strong, lm,   false),
            ("earlier_date",               dated(-1),              &strong, lm,   false),
            ("date_without_last_modified", dated(0),               &strong, None, false),
            ("invalid",                    Some(IfRange::Invalid), &strong, lm,   false),
        ];
        for (name, if_range, etag, last_modified, want) in cases {
            let c = Conditions {
                if_range,
                ..Conditions::default()
            };
            let v = Validators {
                etag,
                last_modified,
            };
            assert_eq!(range_allowed(&c, &v), want, "{name}");
        }
    }

    #[test]
    fn a_last_modified_is_strong_a_minute_after_its_second() {
        let lm = t(RFC_DATE) + Duration::from_millis(300);
        for (later, strong) in [
            (0, false),
            (1, false),
            (59, false),
            (60, true),
            (3600, true),
        ] {
            let now = t(RFC_DATE + later) + Duration::from_millis(100);
            assert_eq!(last_modified_is_strong(lm, now), strong, "{later} s later");
        }
        // Through `range_allowed`: a date of this very minute does not allow the range.
        let now = SystemTime::now();
        let c = Conditions {
            if_range: Some(IfRange::Date(now)),
            ..Conditions::default()
        };
        let v = Validators {
            etag: &tag("\"v1\""),
            last_modified: Some(now),
        };
        assert!(!range_allowed(&c, &v));
    }

    #[test]
    fn whole_seconds_rounds_down_on_both_sides_of_the_epoch() {
        assert_eq!(whole_seconds(t(5) + Duration::from_millis(999)), 5);
        assert_eq!(whole_seconds(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(whole_seconds(UNIX_EPOCH - Duration::from_secs(2)), -2);
    }
}
