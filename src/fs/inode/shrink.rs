//! Keeping the kernel's inodes within `--inode-budget`: which nodes it is asked to forget.

use crate::fs::*;

impl<S: ObjectStore> Fs<S> {
    /// Keeps the inode table within `--inode-budget`: when the kernel holds more inodes, it is
    /// told to forget the least recently used (unused for the metadata TTL, at most
    /// [`SHRINK_IDLE`]: what a walk just handed over stays a moment), down to 80% of the
    /// budget. Files go first; directories only when files alone are not enough, and only
    /// those nothing the kernel holds lies in (so a tree empties from its leaves over a few
    /// rounds). Open files, open directories, and directories a process stands in (its working
    /// directory: see [`pinned`]) are not offered; the others come back as FORGETs, which
    /// remove their nodes. Returns how many the kernel was asked to forget.
    pub fn shrink_nodes(&self) -> usize {
        let n = self.inodes.len();
        let budget = self.config.inode_budget;
        let Some(kernel) = self.kernel.get() else { return 0 };
        if n <= budget {
            return 0;
        }
        let want = n - budget / 10 * 8;
        let idle = self.config.metadata_ttl.clamp(Duration::from_secs(1), SHRINK_IDLE);
        let victims = self.inodes.coldest(want, idle);
        // Open files are left alone: the kernel keeps their dentries anyway, and one it was
        // told to drop would show as "(deleted)" in /proc/PID/fd.
        let mut open: std::collections::HashSet<Ino> = self.writers.lock().unwrap().keys().copied().collect();
        open.extend(self.file_handles.lock().unwrap().values().map(|h| match &**h {
            FileHandle::Read(ino, _) | FileHandle::Staged { ino, .. } => *ino,
        }));
        // Asks the kernel to forget a node it may drop; whether it was asked.
        let forget = |open: &std::collections::HashSet<Ino>, (ino, parent, loc): &(Ino, Ino, Location)| {
            let name = loc.name().filter(|_| !open.contains(ino));
            name.map(|name| kernel.forget(*parent, &name, *ino)).is_some()
        };
        let mut asked = victims.iter().filter(|v| forget(&open, v)).count();
        let dirs = if asked < want { self.inodes.coldest_dirs(want - asked, idle) } else { Vec::new() };
        if !dirs.is_empty() {
            let who = if self.config.allow_other {
                super::pinned::Entrants::Anyone
            } else if self.config.allow_root || self.config.auto_unmount {
                super::pinned::Entrants::RootAndOwner
            } else {
                super::pinned::Entrants::Owner
            };
            // Unknown (another user's process may be in here): no directory is dropped.
            if let Some(paths) = super::pinned::standing_in(std::path::Path::new("/proc"), &self.config.mountpoint, who)
            {
                let standing: Vec<Location> = paths.iter().filter_map(|names| self.location_at(names)).collect();
                open.extend(self.dir_handles.lock().unwrap().values().map(|h| h.ino));
                asked += dirs.iter().filter(|v| !standing.contains(&v.2) && forget(&open, v)).count();
            }
        }
        debug!(nodes = n, asked, "asked the kernel to forget inodes it has not used");
        asked
    }

    /// The directory at `names` below the mount's root, as lookups would find it.
    pub(in crate::fs) fn location_at(&self, names: &[String]) -> Option<Location> {
        let mut loc = self.inodes.get(ROOT)?.loc;
        for n in names {
            let name = Name::new(n)?;
            loc = match loc {
                Location::Buckets => Location::Dir { bucket: n.as_str().into(), prefix: String::new() },
                dir => dir.child(&name, true)?,
            };
        }
        Some(loc)
    }
}
