//! The fuser adapter: converts kernel requests into calls on the async core ([`crate::fs::Fs`]),
//! runs them on tokio, and replies. No filesystem logic lives here.
//!
//! The FUSE session thread never waits on the network: an operation is polled once on the
//! session thread, and if it must wait (for S3, say) it moves, with its reply, into a tokio
//! task. If an operation panics its reply is dropped, which fuser answers with EIO, so a bug
//! fails one call visibly instead of hanging it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use tracing::{Instrument, Level, debug_span, event};

use crate::fs::error::Error;
use crate::fs::inode::Kind;
use crate::fs::names::Name;
use crate::fs::writes::setattr::SetAttr;
use crate::fs::writes::writing::Owner;
use crate::fs::{Fs, KernelCache, Stat};
use crate::store::ObjectStore;

pub struct FuseFs<S: ObjectStore> {
    fs: Arc<Fs<S>>,
    rt: tokio::runtime::Handle,
    ttl: Duration,
    /// How files opened for writing, and large files opened for reading, are opened: direct
    /// I/O where the kernel allows it with shared mmap (see `init`).
    direct_flags: FopenFlags,
}

impl<S: ObjectStore> FuseFs<S> {
    pub fn new(fs: Arc<Fs<S>>, rt: tokio::runtime::Handle) -> Self {
        let ttl = fs.config().metadata_ttl;
        FuseFs { fs, rt, ttl, direct_flags: FopenFlags::empty() }
    }

    /// Runs `f` inside a span named for the operation: first right here on the session thread,
    /// and only if it must wait (for S3, a lock, a timer) as a task on the runtime, which
    /// goes on from where it stopped. Most operations are answered from memory (a lookup or
    /// stat from a cached listing, a write into a part buffer); answering them here saves two
    /// thread switches each, which were the largest cost of `cp -r` of small files (perf: a
    /// quarter of the daemon's samples in the scheduler; daemon CPU -30%). Nothing here
    /// blocks for long: waits on S3 are awaits, and local file work is a system call on the
    /// staging file. Reads use `spawn_task`.
    fn spawn<F>(&self, span: tracing::Span, f: impl FnOnce(Arc<Fs<S>>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let _rt = self.rt.enter();
        let mut fut = Box::pin(f(self.fs.clone()).instrument(span));
        // A future may be polled with one waker and later with another: the runtime's poll
        // registers its own waker, and a task is always polled once when spawned.
        let mut cx = Context::from_waker(Waker::noop());
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(())) => {}
            Ok(Poll::Pending) => {
                self.rt.spawn(fut);
            }
            // The panic is logged by the hook; dropping the future drops its reply, which
            // fuser answers with EIO, as for a task that panics.
            Err(_) => drop(fut),
        }
    }

    /// Runs `f` as a task on the runtime, inside a span named for the operation.
    fn spawn_task<F>(&self, span: tracing::Span, f: impl FnOnce(Arc<Fs<S>>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(self.fs.clone()).instrument(span));
    }
}

/// The core's [`KernelCache`], told to the kernel through the session's notifier from a thread
/// of its own: a notification waits for the kernel's lock on the directory, which a request
/// waiting for s3drive may hold, so it is never sent from a thread that answers requests.
pub struct KernelNotifier {
    tx: std::sync::mpsc::Sender<Forget>,
}

/// Parent and name (none: keep the entry, drop the inode's attributes and pages only), inode.
type Forget = (u64, Option<std::ffi::OsString>, u64);

impl KernelNotifier {
    pub fn start(notifier: fuser::Notifier) -> std::io::Result<KernelNotifier> {
        let (tx, rx) = std::sync::mpsc::channel::<Forget>();
        std::thread::Builder::new().name("s3drive-notify".into()).spawn(move || {
            for (parent, name, ino) in rx {
                // ENOENT means the kernel held nothing to forget; after unmount every call fails.
                let inode = notifier.inval_inode(INodeNo(ino), 0, 0);
                let entry = name.as_ref().map(|name| notifier.inval_entry(INodeNo(parent), name));
                tracing::debug!(parent, ?name, ino, ?inode, ?entry, "told the kernel to forget");
            }
        })?;
        Ok(KernelNotifier { tx })
    }
}

impl KernelCache for KernelNotifier {
    fn forget(&self, parent: u64, name: &Name, ino: u64) {
        let _ = self.tx.send((parent, Some(name.as_str().into()), ino));
    }

    fn invalidate(&self, ino: u64) {
        let _ = self.tx.send((0, None, ino));
    }
}

fn errno(op: &str, e: &Error) -> Errno {
    match e.level() {
        Level::WARN => {
            event!(Level::WARN, op, error = %e, "operation failed");
            crate::stats::error(format!("{op}: {e}"));
        }
        Level::INFO => event!(Level::INFO, op, error = %e, "operation failed"),
        _ => event!(Level::DEBUG, op, error = %e, "operation failed"),
    }
    Errno::from_i32(e.errno())
}

fn kind(s: &Stat) -> FileType {
    if s.dir {
        FileType::Directory
    } else {
        match s.kind {
            Kind::File => FileType::RegularFile,
            Kind::Symlink => FileType::Symlink,
            Kind::Fifo => FileType::NamedPipe,
            Kind::Socket => FileType::Socket,
            Kind::CharDev(_) => FileType::CharDevice,
            Kind::BlockDev(_) => FileType::BlockDevice,
        }
    }
}

fn attr(s: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(s.ino),
        size: s.size,
        blocks: s.size.div_ceil(512),
        atime: s.atime,
        mtime: s.mtime,
        ctime: s.ctime,
        crtime: s.mtime,
        kind: kind(s),
        perm: s.perm,
        nlink: if s.dir {
            2
        } else if s.unlinked {
            0
        } else {
            1
        },
        uid: s.uid,
        gid: s.gid,
        rdev: s.kind.rdev(),
        // Large blocks make cp, cat and friends use 1 MiB buffers: fewer, larger FUSE requests.
        blksize: 1 << 20,
        flags: 0,
    }
}

impl<S: ObjectStore> Filesystem for FuseFs<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Attributes come with listings: let the kernel take them from readdirplus. O_TRUNC
        // comes with open (else the kernel opens, which stages the old bytes, then truncates).
        let _ = config.add_capabilities(
            InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_PARALLEL_DIROPS | InitFlags::FUSE_ATOMIC_O_TRUNC,
        );
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(64);
        // Files opened for writing bypass the page cache (FOPEN_DIRECT_IO): the kernel hands
        // the writer's own pages to the daemon instead of first copying every byte into fresh
        // page-cache pages that nobody reads again (for a 4 GiB `cp` that copy cost the
        // writer 4-12 s of CPU, and as much memory). Only where the kernel still allows shared
        // mmap of such files (Linux 6.6+), so programs that mmap what they write keep working.
        // Large files opened for reading bypass it too (`--direct-read-size`): a cold read of
        // 1 GiB spent more of the daemon's CPU copying into fresh page-cache pages than on
        // everything else, for pages that a file streamed once never needs again.
        if config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP).is_ok() {
            self.direct_flags = FopenFlags::FOPEN_DIRECT_IO;
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = match Name::from_os(name) {
            Ok(n) => n,
            Err(e) => return reply.error(errno("lookup", &e)),
        };
        let ttl = self.ttl;
        self.spawn(debug_span!("lookup", parent = parent.0, %name), |fs| async move {
            match fs.lookup(parent.0, &name).await {
                Ok(s) if s.known => reply.entry(&ttl, &attr(&s), Generation(0)),
                // The name is right, the attributes are the listing's: the kernel keeps the
                // name (an unlink needs nothing more) and asks for the attributes (getattr).
                Ok(s) => reply.entry_with_ttls(&Duration::ZERO, &ttl, &attr(&s), Generation(0)),
                Err(e) => reply.error(errno("lookup", &e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ttl = self.ttl;
        self.spawn(debug_span!("getattr", ino = ino.0), |fs| async move {
            match fs.getattr(ino.0).await {
                Ok(s) => reply.attr(&ttl, &attr(&s)),
                Err(e) => reply.error(errno("getattr", &e)),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.spawn(debug_span!("opendir", ino = ino.0), |fs| async move {
            match fs.opendir(ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno("opendir", &e)),
            }
        });
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.spawn(debug_span!("readdir", ino = ino.0, offset), |fs| async move {
            match fs.readdir(fh.0, offset, 1024).await {
                Ok(items) => {
                    for it in items {
                        if reply.add(INodeNo(it.stat.ino), it.next, kind(&it.stat), &it.name) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(errno("readdir", &e)),
            }
        });
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let ttl = self.ttl;
        self.spawn(debug_span!("readdirplus", ino = ino.0, offset), |fs| async move {
            match fs.readdir(fh.0, offset, 256).await {
                Ok(items) => {
                    for it in items {
                        // An entry handed over counts as a lookup; take it back if it did not fit.
                        let stat = match &it.entry {
                            Some(e) => fs.remember_entry(ino.0, e, it.stat.known),
                            None => it.stat,
                        };
                        // Attributes not known to be right are not kept by the kernel (zero
                        // TTLs): a stat or open looks the name up, and s3drive fetches them.
                        let ttl = if stat.known { ttl } else { Duration::ZERO };
                        if reply.add(INodeNo(stat.ino), it.next, &it.name, &ttl, &attr(&stat), Generation(0)) {
                            if it.entry.is_some() {
                                fs.forget(stat.ino, 1);
                            }
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(errno("readdirplus", &e)),
            }
        });
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let pid = req.pid();
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        let direct_flags = self.direct_flags;
        self.spawn(debug_span!("open", ino = ino.0), |fs| async move {
            match fs.open(ino.0, write, truncate, pid).await {
                Ok(o) => {
                    let mut flags = if o.keep_cache { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
                    if write || o.direct_read {
                        flags |= direct_flags;
                    }
                    reply.opened(FileHandle(o.fh), flags)
                }
                Err(e) => reply.error(errno("open", &e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Always a task: the kernel keeps several reads of a file in flight, and copying one
        // reply's bytes to the kernel on the session thread would hold up reading the next.
        self.spawn_task(debug_span!("read", ino = ino.0, offset, size), |fs| async move {
            match fs.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno("read", &e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // The kernel ignores release's answer and does not wait for it (close has returned
        // already): answer at once, then do the work. Answering after it, a release still
        // running when the file system is unmounted (cp, then umount) answered a connection
        // that was gone, and fuser logged an error. The work is not lost: the unmount's
        // shutdown waits for the file, which release holds locked until it is done.
        reply.ok();
        self.spawn(debug_span!("release", fh = fh.0), |fs| async move {
            fs.release(fh.0).await;
        });
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        let pid = req.pid();
        self.spawn(debug_span!("flush", ino = ino.0, fh = fh.0), |fs| async move {
            match fs.flush(fh.0, Some(pid)).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("flush", &e)),
            }
        });
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.spawn(debug_span!("fsync", ino = ino.0, fh = fh.0), |fs| async move {
            match fs.fsync(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("fsync", &e)),
            }
        });
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.spawn(debug_span!("fsyncdir", ino = ino.0), |fs| async move {
            match fs.fsyncdir().await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("fsyncdir", &e)),
            }
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // S3 has no capacity: report a large, fixed size so `df` prints something sensible
        // and tools that check free space before copying go ahead.
        const BLOCK: u32 = 4096;
        const BLOCKS: u64 = (1u64 << 50) / BLOCK as u64; // 1 PiB
        const FILES: u64 = 1 << 32;
        reply.statfs(BLOCKS, BLOCKS, BLOCKS, FILES, FILES, BLOCK, 255, BLOCK);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // The kernel's namespaces are never stored: answer at once that the namespace is not
        // supported, as the VFS does for a namespace without a handler. `ls -l` probes
        // security.selinux and the POSIX ACL of every file, but stops asking on a device that
        // answered ENOTSUP once (ENODATA cost it two round trips per file).
        let Some(name) = name.to_str().filter(|n| !crate::fs::xattr::kernel_namespace(n)).map(str::to_string) else {
            return reply.error(Errno::from_i32(Error::NotSupported.errno()));
        };
        self.spawn(debug_span!("getxattr", ino = ino.0, name), |fs| async move {
            match fs.getxattr(ino.0, &name).await {
                Ok(v) => xattr_reply(reply, size, &v),
                Err(e) => reply.error(errno("getxattr", &e)),
            }
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.spawn(debug_span!("listxattr", ino = ino.0), |fs| async move {
            match fs.listxattr(ino.0).await {
                Ok(v) => xattr_reply(reply, size, &v),
                Err(e) => reply.error(errno("listxattr", &e)),
            }
        });
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    // ----- changes -----

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let time = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        };
        let set = SetAttr { mode, uid, gid, size, mtime: mtime.map(time), atime: atime.map(time) };
        let ttl = self.ttl;
        self.spawn(debug_span!("setattr", ino = ino.0, ?set), |fs| async move {
            match fs.setattr(ino.0, set).await {
                Ok(s) => reply.attr(&ttl, &attr(&s)),
                Err(e) => reply.error(errno("setattr", &e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(name) = name_arg("create", name) else {
            return reply.error(Errno::from_i32(Error::Invalid.errno()));
        };
        let direct_flags = self.direct_flags;
        let (owner, ttl) = (owner(req), self.ttl);
        self.spawn(debug_span!("create", parent = parent.0, %name), |fs| async move {
            match fs.create(parent.0, &name, mode, owner).await {
                Ok((s, fh)) => reply.created(&ttl, &attr(&s), Generation(0), FileHandle(fh), direct_flags),
                Err(e) => reply.error(errno("create", &e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        let kill_suid = wf.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        self.spawn(debug_span!("write", ino = ino.0, offset, len = data.len()), |fs| async move {
            match fs.write(fh.0, offset, &data, kill_suid).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno("write", &e)),
            }
        });
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _u: u32, rdev: u32, reply: ReplyEntry) {
        let Some(name) = name_arg("mknod", name) else {
            return reply.error(Errno::from_i32(Error::Invalid.errno()));
        };
        let (owner, ttl) = (owner(req), self.ttl);
        self.spawn(debug_span!("mknod", parent = parent.0, %name), |fs| async move {
            match fs.mknod(parent.0, &name, mode, rdev, owner).await {
                Ok(s) => reply.entry(&ttl, &attr(&s), Generation(0)),
                Err(e) => reply.error(errno("mknod", &e)),
            }
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let Some(name) = name_arg("mkdir", name) else {
            return reply.error(Errno::from_i32(Error::Invalid.errno()));
        };
        let (owner, ttl) = (owner(req), self.ttl);
        self.spawn(debug_span!("mkdir", parent = parent.0, %name), |fs| async move {
            match fs.mkdir(parent.0, &name, mode, owner).await {
                Ok(s) => reply.entry(&ttl, &attr(&s), Generation(0)),
                Err(e) => reply.error(errno("mkdir", &e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match Name::from_os(name) {
            Ok(n) => n,
            Err(e) => return reply.error(errno("unlink", &e)),
        };
        self.spawn(debug_span!("unlink", parent = parent.0, %name), |fs| async move {
            match fs.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("unlink", &e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match Name::from_os(name) {
            Ok(n) => n,
            Err(e) => return reply.error(errno("rmdir", &e)),
        };
        self.spawn(debug_span!("rmdir", parent = parent.0, %name), |fs| async move {
            match fs.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("rmdir", &e)),
            }
        });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let Some(name) = name_arg("symlink", link_name) else {
            return reply.error(Errno::from_i32(Error::Invalid.errno()));
        };
        let target = target.as_os_str().as_bytes().to_vec();
        let (owner, ttl) = (owner(req), self.ttl);
        self.spawn(debug_span!("symlink", parent = parent.0, %name), |fs| async move {
            match fs.symlink(parent.0, &name, &target, owner).await {
                Ok(s) => reply.entry(&ttl, &attr(&s), Generation(0)),
                Err(e) => reply.error(errno("symlink", &e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn(debug_span!("readlink", ino = ino.0), |fs| async move {
            match fs.readlink(ino.0).await {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(errno("readlink", &e)),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = match (Name::from_os(name), Name::from_os(newname)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) => return reply.error(errno("rename", &e)),
            (_, Err(_)) => return reply.error(Errno::from_i32(Error::Invalid.errno())),
        };
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            // Two S3 objects cannot trade places atomically.
            return reply.error(Errno::from_i32(Error::Invalid.errno()));
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        self.spawn(
            debug_span!("rename", parent = parent.0, %name, newparent = newparent.0, %newname),
            |fs| async move {
                match fs.rename(parent.0, &name, newparent.0, &newname, noreplace).await {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(errno("rename", &e)),
                }
            },
        );
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.spawn(debug_span!("copy_file_range", fh_in = fh_in.0, fh_out = fh_out.0, len), |fs| async move {
            match fs.copy_range(fh_in.0, offset_in, fh_out.0, offset_out, len).await {
                Ok(n) => reply.written(n as u32),
                // Not a whole-object copy: ENOTSUP makes the kernel fall back to reads and writes
                // (ENOSYS would turn copy_file_range off for the whole mount).
                Err(e) => reply.error(errno("copy_file_range", &e)),
            }
        });
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        // S3 has no hard links.
        reply.error(Errno::from_i32(Error::NotPermitted.errno()));
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _p: u32,
        reply: ReplyEmpty,
    ) {
        let Some(name) = name.to_str().map(str::to_string) else {
            return reply.error(Errno::from_i32(Error::NotSupported.errno()));
        };
        let value = value.to_vec();
        self.spawn(debug_span!("setxattr", ino = ino.0, name), |fs| async move {
            match fs.setxattr(ino.0, &name, &value, flags).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("setxattr", &e)),
            }
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name.to_str().map(str::to_string) else {
            return reply.error(Errno::from_i32(Error::NoData.errno()));
        };
        self.spawn(debug_span!("removexattr", ino = ino.0, name), |fs| async move {
            match fs.removexattr(ino.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("removexattr", &e)),
            }
        });
    }
}

/// getxattr/listxattr: the size when asked for it, else the value if it fits.
fn xattr_reply(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() <= size as usize {
        reply.data(value);
    } else {
        reply.error(Errno::from_i32(libc::ERANGE));
    }
}

fn owner(req: &Request) -> Owner {
    Owner { uid: req.uid(), gid: req.gid(), pid: req.pid() }
}

/// A name for a new entry: one that no key could hold is refused with EINVAL.
fn name_arg(op: &str, name: &OsStr) -> Option<Name> {
    match Name::from_os(name) {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::debug!(op, ?name, "refused: not a valid S3 key segment");
            None
        }
    }
}
