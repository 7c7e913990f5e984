//! Which directories of the mount processes stand in: their working directory or their root,
//! read from /proc. Such a directory must never be dropped from the kernel's cache by
//! s3drive: its dentry would be unhashed while the process keeps it, and `getcwd` answers
//! ENOENT from then on (a shell shows "(deleted)"). Nor a directory another file system is
//! mounted on (a bind mount): dropping its entry detaches that mount. Asked only when the
//! inode budget wants directories gone (see `Fs::shrink_nodes`).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Who may enter the mount, by what fuser was told (`SessionACL`).
#[derive(Clone, Copy, Debug)]
pub enum Entrants {
    Anyone,
    RootAndOwner,
    Owner,
}

impl Entrants {
    fn includes(self, uid: u32, owner: u32) -> bool {
        match self {
            Entrants::Anyone => true,
            Entrants::RootAndOwner => uid == 0 || uid == owner,
            Entrants::Owner => uid == owner,
        }
    }
}

/// The paths below `mount` (relative to it, as names) where some process has its working
/// directory or root, or another file system is mounted, from `proc` (/proc). `None` when
/// that cannot be known: `mount` is not absolute, /proc is missing, or the link of another
/// user's process that may enter the mount (`allow_other`, or root with `allow_root`) cannot be
/// read (a daemon that is not root).
pub fn standing_in(proc: &Path, mount: &Path, who: Entrants) -> Option<HashSet<Vec<String>>> {
    if !mount.is_absolute() {
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    let owner = unsafe { libc::geteuid() };
    let mut found = HashSet::new();
    for entry in std::fs::read_dir(proc).ok()? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let dir = entry.path();
        // A process that has ended while we looked has nothing to keep.
        let Ok(meta) = std::fs::metadata(&dir) else { continue };
        for link in ["cwd", "root"] {
            match std::fs::read_link(dir.join(link)) {
                Ok(target) => {
                    if let Some(names) = below(mount, &target) {
                        found.insert(names);
                    }
                }
                // The process has ended (or is a zombie) while we looked.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Another user's process that may enter the mount: where it stands is unknown.
                Err(_) if meta.uid() != owner && owner != 0 && who.includes(meta.uid(), owner) => return None,
                // Otherwise it cannot enter the mount, or it is one of ours that guards itself
                // from reading (non-dumpable: agents, a sandbox's supervisor), which stand
                // elsewhere.
                Err(_) => {}
            }
        }
    }
    // A mount on a folder of ours (a bind mount) would be detached with the folder's entry.
    let mounts = std::fs::read_to_string(proc.join("self/mountinfo")).ok()?;
    for line in mounts.lines() {
        if let Some(at) = line.split(' ').nth(4)
            && let Some(names) = below(mount, Path::new(&unescape(at)))
            && !names.is_empty()
        {
            found.insert(names);
        }
    }
    Some(found)
}

/// A mountinfo field: space, tab, newline and backslash are written as `\ooo` (octal).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code =
            b.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok()).and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(c) if b[i] == b'\\' => {
                out.push(c);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `target`'s names below `mount`, or `None` if it is not below it.
fn below(mount: &Path, target: &Path) -> Option<Vec<String>> {
    target.strip_prefix(mount).ok()?.iter().map(|c| c.to_str().map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_standing_in_a_directory_below_the_mount_is_found() {
        let mount = tempfile::tempdir().unwrap();
        let inside = mount.path().join("a/b c");
        std::fs::create_dir_all(&inside).unwrap();
        let mut child = std::process::Command::new("sleep").arg("30").current_dir(&inside).spawn().unwrap();
        let found = standing_in(Path::new("/proc"), mount.path(), Entrants::Owner);
        child.kill().unwrap();
        child.wait().unwrap();
        let found = found.expect("this test's processes can be read");
        assert!(found.contains(&vec!["a".to_string(), "b c".to_string()]), "{found:?}");
        assert!(!found.iter().any(|p| p.is_empty()), "nothing stands in the mount's root: {found:?}");
        assert!(standing_in(Path::new("/proc"), Path::new("relative"), Entrants::Owner).is_none());
        assert!(standing_in(Path::new("/no/such/proc"), mount.path(), Entrants::Owner).is_none());
        assert_eq!(unescape(r"/tmp/a\040b\134c\011"), "/tmp/a b\\c\t");
    }
}
