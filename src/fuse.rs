//! The fuser adapter: converts kernel requests into calls on the async core ([`crate::fs::Fs`]),
//! runs them on tokio, and replies. No filesystem logic lives here.
//!
//! The FUSE session thread never waits on the network: every operation that may send a request
//! moves its reply into a tokio task. If a task panics its reply is dropped, which fuser answers
//! with EIO, so a bug fails one call visibly instead of hanging it.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use tracing::{Instrument, Level, debug_span, event};

use crate::fs::error::Error;
use crate::fs::names::Name;
use crate::fs::{Fs, Stat};
use crate::store::ObjectStore;

pub struct FuseFs<S: ObjectStore> {
    fs: Arc<Fs<S>>,
    rt: tokio::runtime::Handle,
    ttl: Duration,
}

impl<S: ObjectStore> FuseFs<S> {
    pub fn new(fs: Arc<Fs<S>>, rt: tokio::runtime::Handle) -> Self {
        let ttl = fs.config().metadata_ttl;
        FuseFs { fs, rt, ttl }
    }

    /// Runs `f` on the runtime inside a span named for the operation.
    fn spawn<F>(&self, span: tracing::Span, f: impl FnOnce(Arc<Fs<S>>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(self.fs.clone()).instrument(span));
    }
}

fn errno(op: &str, e: &Error) -> Errno {
    match e.level() {
        Level::WARN => event!(Level::WARN, op, error = %e, "operation failed"),
        Level::INFO => event!(Level::INFO, op, error = %e, "operation failed"),
        _ => event!(Level::DEBUG, op, error = %e, "operation failed"),
    }
    Errno::from_i32(e.errno())
}

fn attr(s: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(s.ino),
        size: s.size,
        blocks: s.size.div_ceil(512),
        atime: s.mtime,
        mtime: s.mtime,
        ctime: s.mtime,
        crtime: s.mtime,
        kind: if s.dir { FileType::Directory } else { FileType::RegularFile },
        perm: s.perm,
        nlink: if s.dir { 2 } else { 1 },
        uid: s.uid,
        gid: s.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn rofs() -> Errno {
    Errno::from_i32(Error::ReadOnly.errno())
}

impl<S: ObjectStore> Filesystem for FuseFs<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Attributes come with listings: let the kernel take them from readdirplus.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_PARALLEL_DIROPS);
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(64);
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
                Ok(s) => reply.entry(&ttl, &attr(&s), Generation(0)),
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
                        let kind = if it.stat.dir { FileType::Directory } else { FileType::RegularFile };
                        if reply.add(INodeNo(it.stat.ino), it.next, kind, &it.name) {
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
                            Some(e) => fs.remember_entry(ino.0, e),
                            None => it.stat,
                        };
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

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        self.spawn(debug_span!("open", ino = ino.0), |fs| async move {
            match fs.open(ino.0, write).await {
                Ok((fh, keep)) => {
                    let flags = if keep { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
                    reply.opened(FileHandle(fh), flags)
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
        self.spawn(debug_span!("read", ino = ino.0, offset, size), |fs| async move {
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
        self.fs.release(fh.0);
        reply.ok();
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // S3 has no capacity: report a large, fixed size so `df` prints something sensible
        // and tools that check free space before copying go ahead.
        const BLOCK: u32 = 4096;
        const BLOCKS: u64 = (1u64 << 50) / BLOCK as u64; // 1 PiB
        const FILES: u64 = 1 << 32;
        reply.statfs(BLOCKS, BLOCKS, BLOCKS, FILES, FILES, BLOCK, 255, BLOCK);
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::from_i32(libc::ENODATA));
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 { reply.size(0) } else { reply.data(&[]) }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    // ----- changes: this mount does not write yet -----

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(rofs());
    }

    fn mknod(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, _r: u32, reply: ReplyEntry) {
        reply.error(rofs());
    }

    fn mkdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(rofs());
    }

    fn unlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(rofs());
    }

    fn rmdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(rofs());
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        reply.error(rofs());
    }

    fn rename(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(rofs());
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(rofs());
    }

    fn create(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, _f: i32, reply: ReplyCreate) {
        reply.error(rofs());
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(rofs());
    }

    fn setxattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, _v: &[u8], _f: i32, _p: u32, reply: ReplyEmpty) {
        reply.error(rofs());
    }

    fn removexattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(rofs());
    }
}
