import CVirtFS
import Glibc
import Synchronization

/// One thin wrapper per system call, relative to directory fds and never following symlinks.
/// Every wrapper retries on EINTR and throws `VirtFSError.system` naming the call.
public enum Sys {
    /// Runs `body` until it stops failing with EINTR; returns its result, the negative result
    /// when it fails with an errno in `tolerated` (errno left set), or throws errno. Refuses a
    /// name or attribute with a NUL byte first: the kernel would act on a shorter one.
    @inline(__always)
    static func retry<T: BinaryInteger>(_ op: String, _ name: [UInt8], attribute: [UInt8]? = nil, tolerating tolerated: [Int32] = [],
                                        _ body: () -> T) throws(VirtFSError) -> T {
        try checkName(name, op)
        if let attribute { try checkName(attribute, op) }
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = virtfs_errno()
            if e == EINTR { continue }
            if tolerated.contains(e) { return r }
            throw VirtFSError.system(op, path: name, attribute: attribute, errno: e)
        }
    }

    /// Calls `body` with `bytes` as a NUL-terminated C string.
    @inline(__always)
    /// On the stack for names of ordinary length: every system call of a walk passes one.
    static func withCString<T, E: Error>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) throws(E) -> T) throws(E) -> T {
        // withUnsafeTemporaryAllocation only rethrows (any Error): the result carries E out.
        try withUnsafeTemporaryAllocation(of: CChar.self, capacity: bytes.count + 1) { z in
            bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(z).copyMemory(from: $0) }
            z[bytes.count] = 0
            return Result { () throws(E) -> T in try body(UnsafePointer(z.baseAddress!)) }
        }.get()
    }

    static func checkName(_ name: [UInt8], _ op: String) throws(VirtFSError) {
        if name.withUnsafeBytes({ b in b.baseAddress.map { memchr($0, 0, b.count) != nil } ?? false }) {
            throw VirtFSError.refused(op, path: name, "name contains a NUL byte")
        }
    }

    // MARK: descriptors

    /// openat(2) with O_NOFOLLOW and O_CLOEXEC always added.
    public static func openAt(_ dirfd: Int32, _ name: [UInt8], _ flags: Int32, mode: mode_t = 0) throws(VirtFSError) -> Int32 {
        let all = flags | VIRTFS_O_NOFOLLOW | VIRTFS_O_CLOEXEC | VIRTFS_O_NOCTTY
        return try retry("openat", name) { withCString(name) { Glibc.openat(dirfd, $0, all, mode) } }
    }

    /// Opens a directory below `dirfd` for walking (O_RDONLY|O_DIRECTORY|O_NOFOLLOW).
    public static func openDirectory(_ dirfd: Int32, _ name: [UInt8]) throws(VirtFSError) -> Int32 {
        try openAt(dirfd, name, O_RDONLY | VIRTFS_O_DIRECTORY)
    }

    /// flock(2) without waiting: false when another open file holds a conflicting lock.
    public static func tryLock(_ fd: Int32, exclusive: Bool, path: [UInt8]) throws(VirtFSError) -> Bool {
        try retry("flock", path, tolerating: [EWOULDBLOCK]) { virtfs_flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) } == 0
    }

    /// Opens a path the user named (an operand): only its last component is protected from
    /// symlinks, like stat(1) and QEMU's own `path=` option.
    public static func openOperandParent(_ path: [UInt8]) throws(VirtFSError) -> (dirfd: Int32, name: [UInt8]) {
        var (parent, name) = Bytes.splitParent(path)
        // `/` itself (the only path without a last component but the empty one, which fails).
        if name.isEmpty && parent == [UInt8(ascii: "/")] { name = [UInt8(ascii: ".")] }
        let fd = try openPath(parent, O_RDONLY | VIRTFS_O_DIRECTORY)
        if name == Array("..".utf8) {
            // `..` as the last component has to be resolved, not looked up as a name.
            let up = try openAt(fd, name, O_RDONLY | VIRTFS_O_DIRECTORY)
            close(fd)
            return (up, [UInt8(ascii: ".")])
        }
        return (fd, name)
    }

    /// open(2) of a path the user named (an archive operand, the working directory): symlinks
    /// in it are followed, as tar and cd follow them; O_CLOEXEC and O_NOCTTY always added.
    public static func openPath(_ path: [UInt8], _ flags: Int32) throws(VirtFSError) -> Int32 {
        try retry("open", path) { withCString(path) { Glibc.open($0, flags | VIRTFS_O_CLOEXEC | VIRTFS_O_NOCTTY) } }
    }

    /// Makes the working directory a new, already removed directory (mkdtemp(3), chdir(2),
    /// rmdir(2)), in which no relative name resolves; returns a descriptor of the previous one
    /// for `returnToDirectory`.
    public static func enterEmptyDirectory() throws(VirtFSError) -> Int32 {
        let saved = try openPath([UInt8(ascii: ".")], O_RDONLY | VIRTFS_O_DIRECTORY)
        var template = Array("/tmp/virtfs-import.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw VirtFSError.system("mkdtemp", errno: errno)
        }
        guard chdir(made) == 0 else { throw VirtFSError.system("chdir", errno: errno) }
        rmdir(made)
        return saved
    }

    /// fchdir(2) back to the directory `enterEmptyDirectory` left, and closes it.
    public static func returnToDirectory(_ saved: Int32) {
        _ = fchdir(saved)
        close(saved)
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    public static func dup(_ fd: Int32) throws(VirtFSError) -> Int32 {
        try retry("dup", []) { fcntl(fd, F_DUPFD_CLOEXEC, 0) }
    }

    /// Calls `body` with each name in a directory (without `.` and `..`) and its d_type, until
    /// it returns false. Reads through a duplicate descriptor from the start, so other users of
    /// `dirfd` are not disturbed.
    public static func forEachName(in dirfd: Int32, path: [UInt8] = [], _ body: ([UInt8], UInt8) throws(VirtFSError) -> Bool) throws(VirtFSError) {
        let stream = try DirectoryStream(dirfd, path: path)
        while let (name, type) = try stream.next() {
            if try !body(name, type) { return }
        }
    }

    /// Whether the directory holds no entry at all (a place a new tree can be written).
    public static func isEmptyDirectory(_ dirfd: Int32, path: [UInt8] = []) throws(VirtFSError) -> Bool {
        try DirectoryStream(dirfd, path: path).next() == nil
    }

    // MARK: metadata

    /// statx(2) of `name` below `dirfd`, never following a final symlink.
    public static func stat(_ dirfd: Int32, _ name: [UInt8]) throws(VirtFSError) -> HostStat {
        var sx = virtfs_statx()
        _ = try retry("statx", name) { withCString(name) { virtfs_statx(dirfd, $0, 0, &sx) } }
        return HostStat(sx)
    }

    /// statx(2) of an open descriptor.
    public static func stat(fd: Int32) throws(VirtFSError) -> HostStat {
        var sx = virtfs_statx()
        _ = try retry("statx", []) { virtfs_statx(fd, "", VIRTFS_AT_EMPTY_PATH, &sx) }
        return HostStat(sx)
    }

    /// statx(2) of a path the user named, symlinks in it followed (stat(1) -L): through an
    /// O_PATH descriptor, since the statx wrapper never follows a final symlink.
    public static func stat(path: [UInt8]) throws(VirtFSError) -> HostStat {
        let fd = try openPath(path, VIRTFS_O_PATH)
        defer { close(fd) }
        return try stat(fd: fd)
    }

    /// The groups this process acts with: getegid(2) and getgroups(2).
    public static func groups() -> Set<UInt32> {
        var groups = [gid_t](repeating: 0, count: 256)
        let n = getgroups(Int32(groups.count), &groups)
        return Set(groups.prefix(max(0, Int(n))) + [getegid()])
    }

    /// readlinkat(2), growing the buffer until the target fits.
    public static func readLink(_ dirfd: Int32, _ name: [UInt8]) throws(VirtFSError) -> [UInt8] {
        var size = 256
        while true {
            var buf = [UInt8](repeating: 0, count: size)
            let n = try retry("readlinkat", name) {
                withCString(name) { p in buf.withUnsafeMutableBufferPointer { readlinkat(dirfd, p, UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), size) } }
            }
            if n < size { return Array(buf[0..<n]) }
            size *= 4
        }
    }

    /// Reads a whole regular file below `dirfd` (O_NOFOLLOW), at most `limit` bytes.
    /// `truncated` tells whether more was there.
    public static func readFile(_ dirfd: Int32, _ name: [UInt8], limit: Int, regularSize: Int? = nil) throws(VirtFSError) -> (bytes: [UInt8], truncated: Bool) {
        let fd = try openAt(dirfd, name, O_RDONLY | VIRTFS_O_NONBLOCK)
        defer { close(fd) }
        return try readAll(fd, name: name, limit: limit, regularSize: regularSize)
    }

    /// syncfs(2): writes out everything cached for the filesystem holding `fd`.
    public static func syncFilesystem(_ fd: Int32, _ name: [UInt8]) throws(VirtFSError) {
        _ = try retry("syncfs", name) { virtfs_syncfs(fd) }
    }

    /// Reads to the end, at most `limit` bytes. `regularSize`, the size fstat gave for a regular
    /// file, sizes the buffer so that a file that has not grown since is read by one read(2): a
    /// short read of a regular file is its end.
    public static func readAll(_ fd: Int32, name: [UInt8], limit: Int, regularSize: Int? = nil) throws(VirtFSError) -> (bytes: [UInt8], truncated: Bool) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: regularSize.map { min($0, limit) + 1 } ?? 65536)
        while out.count <= limit {
            let n = try retry("read", name) { chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { return (out, false) }
            out.append(contentsOf: chunk[0..<n])
            if regularSize != nil && n < chunk.count { return (out, false) }
        }
        return (Array(out.prefix(limit)), true)
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], name: [UInt8]) throws(VirtFSError) {
        var offset = 0
        while offset < bytes.count {
            let n = try retry("write", name) {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            }
            offset += n
        }
    }

    /// Copies all data from one descriptor to another, in the kernel where it can
    /// (copy_file_range: reflinks on filesystems that share extents), else through a buffer.
    public static func copyData(from input: Int32, to output: Int32, name: [UInt8]) throws(VirtFSError) {
        var copied = 1
        while copied > 0 {
            copied = try retry("copy_file_range", name, tolerating: [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP]) { virtfs_copy_file_range(input, output, 1 << 30) }
        }
        if copied == 0 { return }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try retry("read", name) { chunk.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) } }
            if n == 0 { return }
            try writeAll(output, Array(chunk[0..<n]), name: name)
        }
    }

    // MARK: extended attributes

    /// The path QEMU itself uses to reach an entry's xattrs without following it:
    /// `/proc/self/fd/DIRFD/NAME` with the l*xattr calls (CVE-2016-9602 hardening).
    public static func xattrPath(_ dirfd: Int32, _ name: [UInt8]) -> [UInt8] {
        Array("/proc/self/fd/\(dirfd)/".utf8) + name
    }

    /// Set once the *xattrat calls turn out to be missing (Linux before 6.13) or refused (a
    /// seccomp filter that does not know them); from then on only the /proc path is used.
    static let xattrAtUnusable = Atomic<Bool>(false)

    /// One xattr call on NAME below `dirfd`, never following a symlink: `at` with the *xattrat
    /// call (one lookup of one component, AT_SYMLINK_NOFOLLOW), else `legacy` with the l*xattr
    /// call on `xattrPath` (a /proc lookup and a string per call). Returns the call's result,
    /// errno set when it is negative.
    static func xattrCall(_ dirfd: Int32, _ name: [UInt8], at: (UnsafePointer<CChar>) -> Int,
                          legacy: (UnsafePointer<CChar>) -> Int) -> Int {
        // An empty name means the directory itself, which only the /proc path spells.
        if !name.isEmpty && !xattrAtUnusable.load(ordering: .relaxed) {
            let r = withCString(name, at)
            if r >= 0 { return r }
            let e = virtfs_errno()
            guard e == ENOSYS || e == EPERM else { return r }
            // EPERM is also a real answer (a user.* xattr written on a symlink): only when the
            // /proc path answers otherwise was the call itself refused.
            let fallback = withCString(xattrPath(dirfd, name), legacy)
            let saved = virtfs_errno()
            if e == ENOSYS || fallback >= 0 || saved != EPERM {
                xattrAtUnusable.store(true, ordering: .relaxed)
            }
            virtfs_set_errno(saved)
            return fallback
        }
        return withCString(xattrPath(dirfd, name), legacy)
    }

    /// lgetxattr(2), the attribute name as raw bytes (a guest can set names that are not UTF-8);
    /// nil when the attribute does not exist (ENODATA). Sized by `sizedRead`.
    public static func getXattr(_ dirfd: Int32, _ name: [UInt8], raw rawAttr: [UInt8]) throws(VirtFSError) -> [UInt8]? {
        try withCString(rawAttr) { a throws(VirtFSError) in
            try sizedRead(256, "lgetxattr", name, attribute: rawAttr, absent: ENODATA) { buffer, size in
                xattrCall(dirfd, name, at: { virtfs_getxattrat(dirfd, $0, a, buffer, size) }, legacy: { lgetxattr($0, a, buffer, size) })
            }
        }
    }

    /// llistxattr(2) as a list of names (raw bytes); sized by `sizedRead`.
    public static func listXattrs(_ dirfd: Int32, _ name: [UInt8]) throws(VirtFSError) -> [[UInt8]] {
        guard let buf = try sizedRead(1024, "llistxattr", name, absent: ENOTSUP, { buffer, size in
            let list = buffer?.assumingMemoryBound(to: CChar.self)
            return xattrCall(dirfd, name, at: { virtfs_listxattrat(dirfd, $0, list, size) }, legacy: { llistxattr($0, list, size) })
        }) else { return [] }
        // NUL-terminated names, one array each, without a per-byte conversion.
        var names: [[UInt8]] = []
        var start = 0
        for i in 0..<buf.count where buf[i] == 0 {
            if i > start { names.append(Array(buf[start..<i])) }
            start = i + 1
        }
        if start < buf.count { names.append(Array(buf[start...])) }
        return names
    }

    /// A call that fills a buffer (lgetxattr, llistxattr): first with `size` bytes, which fit
    /// every value QEMU writes (one call per attribute); a larger result is sized with a probe
    /// and read again, looping on ERANGE since it can grow between the two calls. Read into the
    /// array's own storage: no zeroing, no copy, no trimming. Nil when it fails with `absent`.
    static func sizedRead(_ size: Int, _ op: String, _ name: [UInt8], attribute: [UInt8]? = nil, absent: Int32,
                          _ call: (UnsafeMutableRawPointer?, Int) -> Int) throws(VirtFSError) -> [UInt8]? {
        try checkName(name, op)
        if let attribute { try checkName(attribute, op) }
        var size = size
        while true {
            var n = 0, e: Int32 = 0
            let buf = [UInt8](unsafeUninitializedCapacity: size) { b, count in
                n = call(UnsafeMutableRawPointer(b.baseAddress), size)
                if n < 0 { e = virtfs_errno() }
                count = max(n, 0)
            }
            if n >= 0 { return buf }
            switch e {
            case EINTR: continue
            case absent: return nil
            case ERANGE:
                let probe = call(nil, 0)
                if probe < 0 && virtfs_errno() == absent { return nil }
                size = max(probe, size * 2)
            default:
                throw VirtFSError.system(op, path: name, attribute: attribute, errno: e)
            }
        }
    }

    /// lsetxattr(2), the attribute name as raw bytes.
    public static func setXattr(_ dirfd: Int32, _ name: [UInt8], raw rawAttr: [UInt8], _ value: [UInt8]) throws(VirtFSError) {
        _ = try retry("lsetxattr", name, attribute: rawAttr) {
            withCString(rawAttr) { a in
                value.withUnsafeBytes { v in
                    xattrCall(dirfd, name, at: { virtfs_setxattrat(dirfd, $0, a, v.baseAddress, value.count) },
                              legacy: { Int(lsetxattr($0, a, v.baseAddress, value.count, 0)) })
                }
            }
        }
    }

    /// lremovexattr(2), the attribute name as raw bytes; a missing attribute is not an error.
    public static func removeXattr(_ dirfd: Int32, _ name: [UInt8], raw rawAttr: [UInt8]) throws(VirtFSError) {
        _ = try retry("lremovexattr", name, attribute: rawAttr, tolerating: [ENODATA]) {
            withCString(rawAttr) { a in
                xattrCall(dirfd, name, at: { virtfs_removexattrat(dirfd, $0, a) }, legacy: { Int(lremovexattr($0, a)) })
            }
        }
    }

    // MARK: creating and changing entries

    public static func mkdir(_ dirfd: Int32, _ name: [UInt8], _ mode: mode_t) throws(VirtFSError) {
        _ = try retry("mkdirat", name) { withCString(name) { mkdirat(dirfd, $0, mode) } }
    }

    public static func mknod(_ dirfd: Int32, _ name: [UInt8], _ mode: mode_t, _ dev: UInt64) throws(VirtFSError) {
        _ = try retry("mknodat", name) { withCString(name) { mknodat(dirfd, $0, mode, dev_t(dev)) } }
    }

    public static func symlink(_ target: [UInt8], _ dirfd: Int32, _ name: [UInt8]) throws(VirtFSError) {
        try checkName(target, "symlinkat")
        _ = try retry("symlinkat", name) { withCString(target) { t in withCString(name) { symlinkat(t, dirfd, $0) } } }
    }

    /// linkat(2) without following a symlink source.
    public static func link(_ olddirfd: Int32, _ oldname: [UInt8], _ newdirfd: Int32, _ newname: [UInt8]) throws(VirtFSError) {
        _ = try retry("linkat", newname) {
            withCString(oldname) { o in withCString(newname) { linkat(olddirfd, o, newdirfd, $0, 0) } }
        }
    }

    /// open(2) of an unnamed regular file in a directory (O_TMPFILE): nothing in the directory
    /// changes until `linkOpenFile` names it. Throws EOPNOTSUPP (or EISDIR) where the
    /// filesystem cannot.
    public static func openUnnamed(in dirfd: Int32, mode: mode_t) throws(VirtFSError) -> Int32 {
        // O_TMPFILE is __O_TMPFILE | O_DIRECTORY, a macro Swift does not import.
        let tmpfile: Int32 = 0o20_000_000 | VIRTFS_O_DIRECTORY
        return try retry("openat", [UInt8(ascii: ".")]) { Glibc.openat(dirfd, ".", O_WRONLY | tmpfile | VIRTFS_O_CLOEXEC, mode) }
    }

    /// linkat(2) of an open file to `name`, through its /proc/self/fd link (AT_SYMLINK_FOLLOW),
    /// which needs no privilege; fails with EEXIST when the name is taken.
    public static func linkOpenFile(_ fd: Int32, _ dirfd: Int32, _ name: [UInt8]) throws(VirtFSError) {
        let path = Array("/proc/self/fd/\(fd)".utf8)
        _ = try retry("linkat", name) {
            withCString(path) { p in withCString(name) { linkat(AT_FDCWD, p, dirfd, $0, 0x400 /* AT_SYMLINK_FOLLOW */) } }
        }
    }

    public static func rename(_ olddirfd: Int32, _ oldname: [UInt8], _ newdirfd: Int32, _ newname: [UInt8]) throws(VirtFSError) {
        _ = try retry("renameat", newname) {
            withCString(oldname) { o in withCString(newname) { renameat(olddirfd, o, newdirfd, $0) } }
        }
    }

    public static func unlink(_ dirfd: Int32, _ name: [UInt8], directory: Bool = false) throws(VirtFSError) {
        _ = try retry("unlinkat", name) { withCString(name) { unlinkat(dirfd, $0, directory ? VIRTFS_AT_REMOVEDIR : 0) } }
    }

    /// fchownat(2) with AT_SYMLINK_NOFOLLOW: changes a symlink itself, never its target.
    public static func chown(_ dirfd: Int32, _ name: [UInt8], _ uid: UInt32, _ gid: UInt32) throws(VirtFSError) {
        _ = try retry("fchownat", name) {
            withCString(name) { fchownat(dirfd, $0, uid, gid, VIRTFS_AT_SYMLINK_NOFOLLOW) }
        }
    }

    /// Set once fchmodat2 turns out to be missing (Linux before 6.6).
    static let fchmodat2Unusable = Atomic<Bool>(false)

    /// chmod of an entry that is not a symlink, without a window in which a swapped-in symlink
    /// could redirect it: fchmodat2 with AT_SYMLINK_NOFOLLOW where the kernel has it (one
    /// call); else the entry is pinned with O_PATH|O_NOFOLLOW, checked, then changed through
    /// its /proc/self/fd link.
    public static func chmod(_ dirfd: Int32, _ name: [UInt8], _ mode: mode_t) throws(VirtFSError) {
        if !name.isEmpty && !fchmodat2Unusable.load(ordering: .relaxed) {
            if withCString(name, { virtfs_fchmodat_nofollow(dirfd, $0, mode) }) == 0 { return }
            if virtfs_errno() == ENOSYS { fchmodat2Unusable.store(true, ordering: .relaxed) }
            // A symlink (EOPNOTSUPP), a refusal, a seccomp filter's EPERM or an interruption:
            // the pinned path below gives the answer.
        }
        let fd = try openAt(dirfd, name, VIRTFS_O_PATH)
        defer { close(fd) }
        let st = try stat(fd: fd)
        if st.fileType == .symlink {
            throw VirtFSError.system("fchmodat", path: name, errno: ELOOP)
        }
        let path = Array("/proc/self/fd/\(fd)".utf8)
        _ = try retry("fchmodat", name) { withCString(path) { Glibc.chmod($0, mode) } }
    }

    /// utimensat(2) with AT_SYMLINK_NOFOLLOW.
    public static func setTimes(_ dirfd: Int32, _ name: [UInt8], atime: Timestamp, mtime: Timestamp) throws(VirtFSError) {
        var times = [atime, mtime].map { timespec(tv_sec: Int($0.seconds), tv_nsec: Int($0.nanoseconds)) }
        _ = try retry("utimensat", name) { withCString(name) { utimensat(dirfd, $0, &times, VIRTFS_AT_SYMLINK_NOFOLLOW) } }
    }

    /// Raises the soft open-file limit to the hard limit: the walker holds a few descriptors per
    /// directory level of the tree.
    public static func raiseOpenFileLimit() {
        var lim = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0, lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        }
    }
}
