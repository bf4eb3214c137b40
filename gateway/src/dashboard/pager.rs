//! Pagination for every list page: `?page=N` (1-based) over a known total.
//! A page number past the end shows the last page, garbage shows the first —
//! a hand-edited URL never makes an error page. Lists read only one page from
//! the database (`LIMIT`/`OFFSET` from [`Pager::limit`] and [`Pager::offset`])
//! or, for lists the store already holds in memory (agents), slice it.

use maud::{Markup, html};
use serde::Deserialize;

/// Rows per page unless a page says otherwise.
pub const PER_PAGE: i64 = 50;

/// The `page` query parameter, read leniently.
#[derive(Debug, Default, Deserialize)]
pub struct PageParam {
    pub page: Option<String>,
}

impl PageParam {
    pub fn number(&self) -> i64 {
        self.page.as_deref().and_then(|p| p.trim().parse::<i64>().ok()).filter(|p| *p >= 1).unwrap_or(1)
    }
}

/// One page of a list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pager {
    /// 1-based, within `1..=pages()`.
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

impl Pager {
    pub fn new(requested: i64, per_page: i64, total: i64) -> Pager {
        let per_page = per_page.max(1);
        let total = total.max(0);
        let pages = (total + per_page - 1) / per_page;
        Pager { page: requested.clamp(1, pages.max(1)), per_page, total }
    }

    pub fn pages(&self) -> i64 {
        ((self.total + self.per_page - 1) / self.per_page).max(1)
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    pub fn limit(&self) -> i64 {
        self.per_page
    }

    /// This page's part of a list held in memory.
    pub fn slice<'a, T>(&self, all: &'a [T]) -> &'a [T] {
        let start = usize::try_from(self.offset()).unwrap_or(0).min(all.len());
        let end = start.saturating_add(usize::try_from(self.per_page).unwrap_or(0)).min(all.len());
        &all[start..end]
    }

    /// "Page 2 of 7 · 312 items" with previous/next links; nothing when one
    /// page holds everything. `base` is the list's URL, with or without a
    /// query string of its own; `param` the page parameter's name (a page
    /// with two lists gives them different ones).
    pub fn render(&self, base: &str, param: &str) -> Markup {
        self.render_labelled(base, param, "← Previous", "Next →")
    }

    /// [`Pager::render`] with other link texts (a chat pages back in time:
    /// "Newer" / "Older").
    pub fn render_labelled(&self, base: &str, param: &str, prev: &str, next: &str) -> Markup {
        let href = |page: i64| {
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}{param}={page}")
        };
        html! {
            @if self.pages() > 1 {
                nav.pager aria-label="Pages of this list" {
                    @if self.page > 1 {
                        a rel="prev" href=(href(self.page - 1)) { (prev) }
                    }
                    span { "Page " (self.page) " of " (self.pages()) " · " (self.total) " items" }
                    @if self.page < self.pages() {
                        a rel="next" href=(href(self.page + 1)) { (next) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_clamp_and_slice() {
        let p = Pager::new(3, 50, 120);
        assert_eq!((p.page, p.pages(), p.offset()), (3, 3, 100));
        let all: Vec<i64> = (0..120).collect();
        assert_eq!(p.slice(&all).len(), 20);
        assert_eq!(Pager::new(99, 50, 120).page, 3, "past the end: the last page");
        assert_eq!(Pager::new(0, 50, 0).page, 1);
        assert!(Pager::new(1, 50, 0).slice(&[1, 2][..0]).is_empty());
        assert_eq!(PageParam { page: Some("x".into()) }.number(), 1);
        assert_eq!(PageParam { page: Some("-4".into()) }.number(), 1);
    }

    #[test]
    fn links_keep_the_query_and_stop_at_the_ends() {
        let html = Pager::new(2, 10, 30).render("/agents?x=1", "page").into_string();
        assert!(html.contains("href=\"/agents?x=1&amp;page=1\""), "{html}");
        assert!(html.contains("href=\"/agents?x=1&amp;page=3\""), "{html}");
        let last = Pager::new(3, 10, 30).render("/agents", "page").into_string();
        assert!(!last.contains("rel=\"next\""), "{last}");
        assert!(Pager::new(1, 10, 10).render("/a", "page").into_string().is_empty());
    }
}
