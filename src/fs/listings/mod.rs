//! The listing cache: which directories' listings this mount holds, and what it remembers
//! between them.
//!
//! Owns: the cached listings (LRU by directory, within [`LISTED_ENTRIES_BUDGET`] names), names
//! found missing (for `--negative-ttl`), directories known to be larger than one page and the
//! lookups seen in them, the directories being listed whole in the background, and the count of
//! changes made to cached listings (a listing fetched while one happened may miss it).
//!
//! May call: nothing of the filesystem core but the [`Listing`] type it stores; a listing's
//! freshness and contents are [`Listing`]'s. Called by `Fs` (lookups, readdir, the changes
//! made through the mount, the background trim).

mod cache;

pub use cache::{LIST_PAGE, LISTED_ENTRIES_BUDGET, ListingCache, ListingRef, STALE_LISTING_TTLS};

use super::dir::Listing;
