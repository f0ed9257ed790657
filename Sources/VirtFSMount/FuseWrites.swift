import CFuse
import Glibc
import VirtFSCore

extension FuseMount {
    /// The calling process, as libfuse reports it for the request being served.
    static func caller() -> Caller {
        guard let context = fuse_get_context() else { return Caller(uid: getuid(), gid: getgid(), umask: 0o022) }
        return Caller(uid: context.pointee.uid, gid: context.pointee.gid, umask: UInt32(context.pointee.umask))
    }

    /// Runs a request that answers 0 when it succeeds.
    static func perform(_ body: (GuestFilesystem) throws(GuestFilesystem.Failure) -> Void) -> Int32 {
        answer { fs throws(GuestFilesystem.Failure) in
            try body(fs)
            return 0
        }
    }

    /// The callbacks of a read-write mount; a read-only one has none of them, so the kernel
    /// (mounted ro as well) never asks.
    static func addWriteOperations(_ ops: inout fuse_operations) {
        ops.create = { path, mode, info in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in
                guard let info else { throw GuestFilesystem.Failure(EINVAL) }
                info.pointee.fh = UInt64(try fs.create(FuseMount.path(path), mode: UInt32(mode), flags: info.pointee.flags, caller: FuseMount.caller()))
            }
        }
        ops.mknod = { path, mode, rdev in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in
                if UInt32(mode) & FileType.mask == FileType.regular.rawValue {
                    Sys.close(try fs.create(FuseMount.path(path), mode: UInt32(mode), flags: O_RDONLY | O_EXCL, caller: FuseMount.caller()))
                } else {
                    try fs.mknod(FuseMount.path(path), mode: UInt32(mode), rdev: UInt64(rdev), caller: FuseMount.caller())
                }
            }
        }
        ops.mkdir = { path, mode in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in try fs.mkdir(FuseMount.path(path), mode: UInt32(mode), caller: FuseMount.caller()) }
        }
        ops.symlink = { target, path in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in try fs.symlink(FuseMount.path(target), at: FuseMount.path(path), caller: FuseMount.caller()) }
        }
        ops.link = { existing, path in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in
                try fs.link(FuseMount.path(existing), as: FuseMount.path(path))
                // The kernel knows the two names as two inodes: the old name's cached link
                // count would stay 1 until its attributes time out.
                if let context = fuse_get_context(), let fuse = context.pointee.fuse { _ = fuse_invalidate_path(fuse, existing) }
            }
        }
        ops.unlink = { path in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in try fs.remove(FuseMount.path(path), directory: false) }
        }
        ops.rmdir = { path in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in try fs.remove(FuseMount.path(path), directory: true) }
        }
        ops.rename = { from, to, flags in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in try fs.rename(FuseMount.path(from), to: FuseMount.path(to), flags: flags) }
        }
        ops.chmod = { path, mode, _ in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in try fs.chmod(FuseMount.path(path), mode: UInt32(mode)) }
        }
        ops.chown = { path, uid, gid, _ in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in try fs.chown(FuseMount.path(path), uid: uid, gid: gid) }
        }
        ops.truncate = { path, size, info in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in
                if let info, info.pointee.fh != 0 {
                    if ftruncate(Int32(info.pointee.fh), size) != 0 { throw GuestFilesystem.Failure(errno) }
                } else {
                    try fs.truncate(FuseMount.path(path), size: Int64(size))
                }
            }
        }
        ops.write = { _, buffer, size, offset, info in
            guard let info, let buffer else { return -EINVAL }
            let n = pwrite(Int32(info.pointee.fh), buffer, size, offset)
            return n < 0 ? -errno : Int32(n)
        }
        ops.fsync = { _, dataOnly, info in
            guard let info else { return -EINVAL }
            let fd = Int32(info.pointee.fh)
            return (dataOnly != 0 ? fdatasync(fd) : fsync(fd)) == 0 ? 0 : -errno
        }
        ops.utimens = { path, times, _ in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in try fs.setTimes(FuseMount.path(path), times) }
        }
        ops.setxattr = { path, name, value, size, flags in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                try fs.setXattr(FuseMount.path(path), name: FuseMount.path(name), value: bytes, flags: flags)
                FuseMount.forgetAttributes(path, afterChanging: name)
            }
        }
        ops.removexattr = { path, name in
            FuseMount.perform { fs throws(GuestFilesystem.Failure) in
                try fs.removeXattr(FuseMount.path(path), name: FuseMount.path(name))
                FuseMount.forgetAttributes(path, afterChanging: name)
            }
        }
    }

    /// An access ACL set or removed changes the mode, which the kernel would otherwise keep
    /// showing from its attribute cache until it times out (it treats the ACL as any xattr).
    static func forgetAttributes(_ path: UnsafePointer<CChar>?, afterChanging name: UnsafePointer<CChar>?) {
        guard let name, FuseMount.path(name) == GuestFilesystem.aclAccess,
              let context = fuse_get_context(), let fuse = context.pointee.fuse else { return }
        _ = fuse_invalidate_path(fuse, path)
    }
}
