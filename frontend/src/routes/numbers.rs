//! Numbers a client writes into request headers (`Last-Event-ID`, `Prefer: wait=N`),
//! read digit by digit with checked arithmetic: a value past `u64` is an error the
//! route answers (a 400 problem, or for a hint, the clamp the hint allows), never a
//! wrap or a panic. Query numbers are typed fields that serde parses the same way
//! (an overflow is its error, answered 400 by [`super::query_config`]).

use actix_web::http::header::HeaderMap;

use crate::problem::ApiError;

/// Why a header's value is not a number we take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("{0} must be a whole number of at most 20 digits")]
    NotANumber(&'static str),
    #[error("{0} is past the largest number this service counts to ({max})", max = u64::MAX)]
    Overflow(&'static str),
    #[error("{0} names the last event there can be; nothing follows it")]
    NoNext(&'static str),
}

impl From<NumberError> for ApiError {
    fn from(error: NumberError) -> Self {
        let field = match &error {
            NumberError::NotANumber(name) | NumberError::Overflow(name) | NumberError::NoNext(name) => *name,
        };
        ApiError::invalid(field, error.to_string())
    }
}

/// A plain decimal: ASCII digits only (no sign, no spaces, no `_`), overflow an error.
pub fn decimal(text: &str, name: &'static str) -> Result<u64, NumberError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotANumber(name));
    }
    text.bytes().try_fold(0u64, |value, digit| {
        value.checked_mul(10).and_then(|v| v.checked_add(u64::from(digit - b'0'))).ok_or(NumberError::Overflow(name))
    })
}

/// The place in a log a follow stream starts at: one past the `Last-Event-ID` the
/// client saw (its ids are the places we sent), or the start without one. The
/// header is only ever one of our ids, so anything else is refused.
pub fn resume_after(headers: &HeaderMap) -> Result<u64, NumberError> {
    const NAME: &str = "last-event-id";
    let Some(value) = headers.get(NAME) else { return Ok(0) };
    let text = value.to_str().map_err(|_| NumberError::NotANumber(NAME))?.trim();
    if text.is_empty() {
        return Ok(0); // EventSource sends none rather than an empty one; take it as none
    }
    decimal(text, NAME)?.checked_add(1).ok_or(NumberError::NoNext(NAME))
}

/// The `wait` preference of the request's `Prefer` headers, clamped to `max`. A
/// preference is a hint (RFC 7240): a malformed one is ignored, one past `max` —
/// however far, past `u64` too — is taken as `max`; when several name `wait`, the
/// first well-formed one counts.
pub fn prefer_wait(headers: &HeaderMap, max: u64) -> Option<u64> {
    headers.get_all("prefer").filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(',')).find_map(
        |preference| {
            // `token [= value] *( ";" parameter )`: only the token and its value matter here
            let head = preference.split(';').next()?.trim();
            let (name, value) = head.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            match decimal(value.trim().trim_matches('"'), "prefer") {
                Ok(wait) => Some(wait.min(max)),
                Err(NumberError::Overflow(_)) => Some(max),
                Err(_) => None,
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::*;

    fn headers(name: &'static str, values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HeaderName::from_static(name), HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    /// What a digit string means, by arbitrary precision: `None` past `u64`.
    fn exact(digits: &str) -> Option<u64> {
        let trimmed = digits.trim_start_matches('0');
        if trimmed.len() > 20 {
            return None;
        }
        (if trimmed.is_empty() { "0" } else { trimmed }).parse::<u128>().ok()?.try_into().ok()
    }

    #[test]
    fn the_largest_event_id_has_no_next_and_one_past_u64_overflows() {
        let resume = |value: &str| resume_after(&headers("last-event-id", &[value.as_bytes()]));
        assert_eq!(resume_after(&HeaderMap::new()), Ok(0));
        assert_eq!(resume(""), Ok(0));
        assert_eq!(resume(" 41 "), Ok(42));
        assert_eq!(resume("18446744073709551614"), Ok(u64::MAX));
        assert_eq!(resume("18446744073709551615"), Err(NumberError::NoNext("last-event-id")));
        assert_eq!(resume("18446744073709551616"), Err(NumberError::Overflow("last-event-id")));
        for junk in ["-1", "+1", "1e3", "0x10", "1_000", "٣", "4 2"] {
            assert_eq!(resume(junk), Err(NumberError::NotANumber("last-event-id")), "{junk}");
        }
        let error = ApiError::from(NumberError::NoNext("last-event-id"));
        assert!(matches!(error, ApiError::InvalidRequest { field: Some(f), .. } if f == "last-event-id"));
    }

    #[test]
    fn a_wait_preference_past_u64_is_the_longest_wait() {
        let prefer = |value: &str| prefer_wait(&headers("prefer", &[value.as_bytes()]), 60);
        assert_eq!(prefer("wait=99999999999999999999999999"), Some(60));
        assert_eq!(prefer("wait=18446744073709551615"), Some(60));
        assert_eq!(prefer("wait=+5"), None, "not a plain decimal: ignored as malformed");
    }

    proptest! {
        #[test]
        fn any_digit_string_is_read_exactly_or_refused_as_an_overflow(digits in "[0-9]{1,45}") {
            match exact(&digits) {
                Some(value) => prop_assert_eq!(decimal(&digits, "n"), Ok(value)),
                None => prop_assert_eq!(decimal(&digits, "n"), Err(NumberError::Overflow("n"))),
            }
        }

        #[test]
        fn any_last_event_id_header_resumes_one_past_it_or_is_refused(value in proptest::collection::vec(any::<u8>(), 0..48)) {
            let Ok(header) = HeaderValue::from_bytes(&value) else { return Ok(()) };
            let text = header.to_str().ok().map(str::trim).map(str::to_owned);
            let mut map = HeaderMap::new();
            map.insert(HeaderName::from_static("last-event-id"), header);
            let digits = text.as_deref().filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
            match resume_after(&map) {
                Ok(0) => prop_assert_eq!(text.as_deref(), Some("")),
                Ok(next) => prop_assert_eq!(digits.and_then(exact).and_then(|last| last.checked_add(1)), Some(next)),
                Err(NumberError::NotANumber(_)) => prop_assert!(digits.is_none() && text.as_deref() != Some("")),
                Err(NumberError::Overflow(_)) => prop_assert!(digits.is_some_and(|d| exact(d).is_none())),
                Err(NumberError::NoNext(_)) => prop_assert_eq!(digits.and_then(exact), Some(u64::MAX)),
            }
        }

        #[test]
        fn any_prefer_header_gives_a_wait_within_the_maximum(value in "[ -~]{0,64}", max in 0u64..=120) {
            let Ok(header) = HeaderValue::from_str(&value) else { return Ok(()) };
            let mut map = HeaderMap::new();
            map.insert(HeaderName::from_static("prefer"), header);
            prop_assert!(prefer_wait(&map, max).is_none_or(|wait| wait <= max));
        }

        #[test]
        fn a_wait_preference_of_any_size_is_clamped_never_wrapped(digits in "[0-9]{1,45}") {
            let map = headers("prefer", &[format!("wait={digits}").as_bytes()]);
            let expected = exact(&digits).map_or(60, |wait| wait.min(60));
            prop_assert_eq!(prefer_wait(&map, 60), Some(expected));
        }

        #[test]
        fn any_wait_query_is_read_exactly_or_refused_never_wrapped(digits in "[0-9]{1,45}", junk in "[ -~]{0,24}") {
            use actix_web::web::Query;
            use super::super::jobs::WaitQuery;
            let parsed = Query::<WaitQuery>::from_query(&format!("wait={digits}")).map(|q| q.wait);
            prop_assert_eq!(parsed.ok().flatten(), exact(&digits));
            // whatever else the query says, it parses or is refused; it never panics
            let _ = Query::<WaitQuery>::from_query(&format!("wait={junk}"));
        }
    }
}
