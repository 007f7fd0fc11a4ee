//! The one page rule of the list routes (jobs, pipeline runs): a page holds 1 to
//! [`MAX`] items ([`DEFAULT`] unless `limit` says), newest first, and names the
//! cursor of the next one — its last item, passed back as `before` — only when
//! more follow, so the last page has none.

use crate::problem::ApiError;

pub const DEFAULT: usize = 20;
pub const MAX: usize = 100;

/// The page size a request's `limit` asks for; out of range is a 400 naming it.
pub fn size(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT);
    if (1..=MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid("limit", format!("limit must be between 1 and {MAX}")))
    }
}

/// The next page's cursor: `cursor` of the page's last item when `more` follow.
pub fn next<T, C>(page: &[T], more: bool, cursor: impl FnOnce(&T) -> C) -> Option<C> {
    page.last().filter(|_| more).map(cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_1_to_100_items_and_only_a_page_with_more_after_it_names_the_next() {
        assert_eq!(size(None).unwrap(), 20);
        assert_eq!(size(Some(100)).unwrap(), 100);
        for refused in [0, 101] {
            assert!(
                matches!(size(Some(refused)), Err(ApiError::InvalidRequest { field: Some(f), .. }) if f == "limit")
            );
        }
        assert_eq!(next(&[1, 2], true, |n| *n), Some(2));
        assert_eq!(next(&[1, 2], false, |n| *n), None, "a full last page names none");
        assert_eq!(next(&[] as &[u8], true, |n| *n), None);
    }
}
