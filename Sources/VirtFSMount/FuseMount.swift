import CFuse
import Glibc
import VirtFSCore

/// The filesystem the callbacks serve. libfuse's callbacks carry no context a Swift closure
/// could capture, and one process serves one mount.
nonisolated(unsafe) private var served: GuestFilesystem?

/// How a tree is mounted: what the user asked of libfuse, and what this mount adds.
public struct MountRequest: Sendable {
    public var tree: [UInt8]
    public var mountpoint: [UInt8]
    public var model: SecurityModel?
    /// `-o` options, comma lists as given.
    public var options: [String]
    public var foreground: Bool

    public init(tree: [UInt8], mountpoint: [UInt8], model: SecurityModel?, options: [String], foreground: Bool) {
        self.tree = tree
        self.mountpoint = mountpoint
        self.model = model
        self.options = options
        self.foreground = foreground
    }

    /// Whether the mount writes: unless `-o ro` was given (the last of ro and rw wins).
    public var writable: Bool {
        var writable = true
        for list in options {
            for option in list.split(separator: ",") {
                if option == "ro" { writable = false } else if option == "rw" { writable = true }
            }
        }
        return writable
    }

    /// The options libfuse is given. The kernel checks permissions against the guest's owners
    /// and modes (default_permissions) whenever other users can enter the mount (allow_other);
    /// without allow_other only the mounting user can, and that user may do to the guest view
    /// whatever the user QEMU runs as may do to the tree.
    func fuseOptions() throws -> String {
        var given: [String] = []
        for list in options {
            for option in list.split(separator: ",").map(String.init) where !option.isEmpty {
                switch option {
                case "ro", "rw": continue
                default: given.append(option)
                }
            }
        }
        var out = [writable ? "rw" : "ro"]
        if given.contains("allow_other") && !given.contains("default_permissions") { out.append("default_permissions") }
        out += given
        // libfuse 3.14.0 (Debian 12's) gives fuse_main's multi-threaded loop an unset idle-thread
        // limit and warns about it at every mount. At most 10 threads run (its max_threads
        // default), so a limit of 10 idle ones keeps what unset means: none is ended.
        if !given.contains(where: { $0.hasPrefix("max_idle_threads=") }) { out.append("max_idle_threads=10") }
        // libfuse splits its option list at commas; a backslash keeps one in the name.
        var name = ""
        for c in String(decoding: tree, as: UTF8.self) {
            if c == "," || c == "\\" { name.append("\\") }
            name.append(c)
        }
        out += ["fsname=\(name)", "subtype=virtfs"]
        return out.joined(separator: ",")
    }
}

public enum FuseMount {
    /// Opens the tree, then mounts it and serves requests until it is unmounted. Returns
    /// libfuse's status: 0 after a clean unmount.
    public static func run(_ request: MountRequest) throws -> Int32 {
        let options = try request.fuseOptions()
        served = try GuestFilesystem(tree: request.tree, model: request.model, writable: request.writable)
        var arguments: [[UInt8]] = [Array("virtfs-mount".utf8), request.mountpoint, Array("-o".utf8), Array(options.utf8)]
        if request.foreground { arguments.append(Array("-f".utf8)) }
        var operations = Self.operations()
        let argv = arguments.map { bytes in strdup(String(decoding: bytes, as: UTF8.self)) }
        defer { argv.forEach { free($0) } }
        var pointers = argv + [nil]
        return pointers.withUnsafeMutableBufferPointer { buffer in
            virtfs_fuse_main(Int32(arguments.count), buffer.baseAddress, &operations, nil)
        }
    }

    /// Unmounts with fusermount3, as an ordinary user must.
    public static func unmount(_ mountpoint: [UInt8]) -> Int32 {
        let arguments = ["fusermount3", "-u", String(decoding: mountpoint, as: UTF8.self)]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawnp(&pid, "fusermount3", nil, nil, argv, environ) == 0 else { return 127 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    static func path(_ p: UnsafePointer<CChar>?) -> [UInt8] {
        guard let p else { return [] }
        return Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
    }

    static func fill(_ st: UnsafeMutablePointer<stat>, _ view: GuestView) {
        var s = stat()
        s.st_mode = mode_t(view.mode)
        s.st_uid = view.uid
        s.st_gid = view.gid
        s.st_rdev = dev_t(view.attributes.rdev.glibc)
        s.st_size = off_t(truncatingIfNeeded: view.host.size)
        s.st_blocks = blkcnt_t(truncatingIfNeeded: view.host.blocks)
        s.st_blksize = blksize_t(view.host.blockSize)
        s.st_nlink = nlink_t(view.host.nlink)
        s.st_ino = ino_t(view.host.identity.inode)
        s.st_atim = timespec(tv_sec: Int(view.host.atime.seconds), tv_nsec: Int(view.host.atime.nanoseconds))
        s.st_mtim = timespec(tv_sec: Int(view.host.mtime.seconds), tv_nsec: Int(view.host.mtime.nanoseconds))
        s.st_ctim = timespec(tv_sec: Int(view.host.ctime.seconds), tv_nsec: Int(view.host.ctime.nanoseconds))
        st.pointee = s
    }

    static func answer(_ body: (GuestFilesystem) throws(GuestFilesystem.Failure) -> Int32) -> Int32 {
        guard let fs = served else { return -EIO }
        do { return try body(fs) } catch { return -error.errno }
    }

    static func operations() -> fuse_operations {
        var ops = fuse_operations()
        ops.`init` = { connection, config in
            // Every readdir answers with the attributes it decoded anyway (readdirplus), not
            // only a directory's first batch, so a walk needs no lookup per entry.
            connection?.pointee.want &= ~UInt32(FUSE_CAP_READDIRPLUS_AUTO)
            // read_buf's descriptors are spliced into the reply where the kernel allows it.
            if let c = connection {
                for cap in [FUSE_CAP_SPLICE_WRITE, FUSE_CAP_SPLICE_MOVE] where c.pointee.capable & UInt32(cap) != 0 {
                    c.pointee.want |= UInt32(cap)
                }
            }
            // The umask is the daemon's to apply: a directory's default ACL replaces it.
            if let c = connection, c.pointee.capable & UInt32(FUSE_CAP_DONT_MASK) != 0 { c.pointee.want |= UInt32(FUSE_CAP_DONT_MASK) }
            // The guest's inode numbers, so hard links are seen as such (tar, rsync -H, find).
            config?.pointee.use_ino = 1
            config?.pointee.readdir_ino = 1
            // File data stays in the kernel's page cache between opens, dropped when the
            // backing file's size or mtime changed (auto_cache): reads run at page-cache speed.
            config?.pointee.auto_cache = 1
            // An unlinked file still open is removed at once (the daemon keeps its descriptor),
            // not renamed to a .fuse_hidden name in the tree.
            config?.pointee.hard_remove = 1
            return nil
        }
        ops.getattr = { path, st, _ in
            FuseMount.answer { fs throws(GuestFilesystem.Failure) in
                FuseMount.fill(st!, try fs.view(FuseMount.path(path)))
                return 0
            }
        }
        ops.readlink = { path, buffer, size in
            FuseMount.answer { fs throws(GuestFilesystem.Failure) in
                let target = try fs.target(FuseMount.path(path))
                guard let buffer, size > 0 else { return -EINVAL }
                let count = min(target.count, size - 1)
                target.withUnsafeBytes { raw in
                    UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress!, byteCount: count)
                }
                buffer[count] = 0
                return 0
            }
        }
        ops.readdir = { path, buffer, filler, _, _, flags in
            FuseMount.answer { fs throws(GuestFilesystem.Failure) in
                let plus = (flags.rawValue & FUSE_READDIR_PLUS.rawValue) != 0
                let dot = Array(".".utf8), dotdot = Array("..".utf8)
                for name in [dot, dotdot] { _ = addEntry(filler, buffer, name, nil, plus: false) }
                try fs.list(FuseMount.path(path)) { name, view in
                    var st = stat()
                    if let view { FuseMount.fill(&st, view) }
                    // An entry that cannot be decoded is listed with an unknown type, as the guest lists it.
                    return addEntry(filler, buffer, name, &st, plus: plus && view != nil) == 0
                }
                return 0
            }
        }
        ops.open = { path, info in
            FuseMount.answer { fs throws(GuestFilesystem.Failure) in
                guard let info else { return -EINVAL }
                if info.pointee.flags & O_ACCMODE != O_RDONLY {
                    info.pointee.fh = UInt64(try fs.open(FuseMount.path(path), flags: info.pointee.flags))
                    return 0
                }
                info.pointee.fh = UInt64(try fs.openForReading(FuseMount.path(path)))
                return 0
            }
        }
        // File data is the backing file's: the kernel is handed its descriptor and offset, so
        // the bytes move from file to /dev/fuse by splice, never through the daemon's memory.
        ops.read_buf = { _, bufp, size, offset, info in
            guard let info, let bufp else { return -EINVAL }
            return virtfs_read_from_fd(bufp, size, offset, Int32(info.pointee.fh))
        }
        ops.release = { _, info in
            if let info { close(Int32(info.pointee.fh)) }
            return 0
        }
        ops.statfs = { _, out in
            FuseMount.answer { fs in fs.statfs(out!) }
        }
        ops.getxattr = { path, name, value, size in
            FuseMount.answer { fs throws(GuestFilesystem.Failure) in
                let wanted = FuseMount.path(name)
                try fs.checkReadable(wanted)
                guard let found = try fs.xattrs(FuseMount.path(path)).first(where: { $0.name == wanted }) else { return -ENODATA }
                return FuseMount.copyOut(found.value, to: value, size: size)
            }
        }
        ops.listxattr = { path, list, size in
            FuseMount.answer { fs throws(GuestFilesystem.Failure) in
                let names: [UInt8] = try fs.xattrs(FuseMount.path(path)).flatMap { $0.name + [0] }
                return FuseMount.copyOut(names, to: list, size: size)
            }
        }
        if served?.writable == true { addWriteOperations(&ops) }
        return ops
    }

    /// getxattr(2)'s convention: size 0 asks for the length; too small a buffer is ERANGE.
    static func copyOut(_ bytes: [UInt8], to buffer: UnsafeMutablePointer<CChar>?, size: Int) -> Int32 {
        if size == 0 { return Int32(bytes.count) }
        guard bytes.count <= size, let buffer else { return -ERANGE }
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress { UnsafeMutableRawPointer(buffer).copyMemory(from: base, byteCount: raw.count) }
        }
        return Int32(bytes.count)
    }
}

/// Adds one name to a readdir reply; nonzero when the reply is full.
private func addEntry(_ filler: fuse_fill_dir_t?, _ buffer: UnsafeMutableRawPointer?, _ name: [UInt8],
                      _ st: UnsafePointer<stat>?, plus: Bool) -> Int32 {
    guard let filler else { return 1 }
    return (name + [0]).withUnsafeBufferPointer { raw in
        raw.withMemoryRebound(to: CChar.self) { chars in
            filler(buffer, chars.baseAddress, st, 0, plus ? FUSE_FILL_DIR_PLUS : fuse_fill_dir_flags(0))
        }
    }
}
