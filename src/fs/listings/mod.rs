//! The listing cache: which directories' listings this mount holds, and what it remembers
//! between them.
//!
//! Owns: the cached listings (LRU by directory, within [`LISTED_ENTRIES_BUDGET`] names), names
//! found missing (for `--negative-ttl`), directories known to be larger than one page and the
//! lookups seen in them, the directories being listed whole in the background, and the count of
//! changes made to cached listings (a listing fetched while one happened may miss it).
//!
//! Also owns what one listing is ([`Listing`], `listing.rs`): its pages, freshness, the
//! stat-ahead and walk-ahead positions.
//!
//! May call: the store (a listing fetches its pages), the inode locations and names. Called by
//! `Fs` (lookups, readdir, the changes made through the mount, the background trim). Called by `Fs` (lookups, readdir, the changes
//! made through the mount, the background trim).

mod cache;
mod listing;

pub use cache::{LIST_PAGE, LISTED_ENTRIES_BUDGET, ListingCache, ListingRef, STALE_LISTING_TTLS};

pub use listing::{Entry, Listing, Marker, STAT_AHEAD_MAX, STAT_AHEAD_MIN, WALK_AHEAD_MAX};
