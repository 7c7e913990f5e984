//! [`HeadsInFlight`]: the HeadObjects of listed files in flight, one per object, shared by the
//! lookups that need the same one and by the stat-ahead that sent it early.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::{ObjectMeta, StoreResult};

/// Bucket and key.
type ObjectKey = (Arc<str>, String);

/// One HeadObject's answer, once it came; shared by everyone waiting for it.
pub type HeadCell = tokio::sync::OnceCell<StoreResult<ObjectMeta>>;

#[derive(Default)]
pub struct HeadsInFlight {
    cells: Mutex<HashMap<ObjectKey, Arc<HeadCell>>>,
}

impl HeadsInFlight {
    /// The cell of `id`'s HeadObject in flight, or a new one registered for it.
    pub fn join(&self, id: &ObjectKey) -> Arc<HeadCell> {
        self.cells.lock().unwrap().entry(id.clone()).or_default().clone()
    }

    /// A new cell registered for `id`, or `None` if one is on its way already.
    pub fn start(&self, id: &ObjectKey) -> Option<Arc<HeadCell>> {
        let mut cells = self.cells.lock().unwrap();
        if cells.contains_key(id) {
            return None;
        }
        Some(cells.entry(id.clone()).or_default().clone())
    }

    /// `cell` answered (or is given up): later lookups ask anew.
    pub fn done(&self, id: &ObjectKey, cell: &Arc<HeadCell>) {
        let mut cells = self.cells.lock().unwrap();
        if cells.get(id).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            cells.remove(id);
        }
    }

    /// Withdraws `cell` if nobody has started its request (the answer was found elsewhere).
    pub fn withdraw(&self, id: &ObjectKey, cell: &Arc<HeadCell>) {
        let mut cells = self.cells.lock().unwrap();
        if cells.get(id).is_some_and(|c| Arc::ptr_eq(c, cell)) && cell.get().is_none() {
            cells.remove(id);
        }
    }
}
