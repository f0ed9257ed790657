import CVirtFS
import Glibc
import Synchronization
import VirtFSCore

/// The guest's view of a tree, answered path by path for a mount. Every path is resolved one
/// component at a time from the export root's descriptor or from a directory the mount keeps
/// open while it is still at its place (DirectoryCache), never following a symlink and never
/// naming the model's reserved entries, so a tree the guest controls cannot lead a request
/// outside it. Failures are errno values, which is all a mount can return.
public final class GuestFilesystem: Sendable {
    public let model: SecurityModel
    /// Held for the mount's lifetime when it writes; only ever released by the process ending.
    nonisolated(unsafe) let treeLock: TreeLock?
    /// One write at a time: a write is several steps on the tree (build aside, rename into
    /// place, metadata beside), under names of this process.
    let writing = Mutex<Void>(())
    public var writable: Bool { treeLock != nil }
    /// How created host objects are made: QEMU's default `fmode=`/`dmode=`, owned by the daemon's
    /// user, except that root writing a mapped tree owned by another user (the one QEMU runs
    /// as, as virtfs-fsck assumes) gives them that user, so that QEMU can still open them.
    public let placement: HostPlacement
    let codec: any ModelCodec
    let rootFD: Int32
    let rootPath: [UInt8]
    /// Recently walked directories, open, so that a request need not walk from the root.
    let directories: DirectoryCache

    /// Opens `tree` as an export root and settles its model: the one named, else the one the
    /// tree shows. A tree with an unfinished conversion is refused, as every tool refuses it.
    public init(tree: [UInt8], model explicit: SecurityModel?, writable: Bool = false) throws {
        let resolver = try OperandResolver(root: tree)
        let root = resolver.root!
        model = try resolver.model(for: root, explicit: explicit).0
        codec = model.codec
        rootFD = try Sys.dup(root.directory.fd)
        rootPath = tree
        directories = DirectoryCache(rootFD: rootFD)
        var placement = HostPlacement()
        let host = try Sys.stat(fd: rootFD)
        if geteuid() == 0 && model.isMapped && host.uid != 0 {
            placement.owner = (host.uid, host.gid)
        }
        self.placement = placement
        // A writing mount is a writer like any other tool: it holds the tree's lock until it
        // ends (the kernel drops it when the daemon dies, kill -9 included).
        treeLock = writable ? try TreeLock(directory: DirectoryContext(fd: rootFD, path: tree, owned: false)) : nil
    }

    deinit { Sys.close(rootFD) }

    /// A request's failure as the errno the kernel passes on.
    public struct Failure: Error {
        public let errno: Int32
        init(_ errno: Int32) { self.errno = errno }
        init(_ error: Error) { self.errno = (error as? VirtFSError)?.errno ?? EIO }
    }

    /// A fresh context for the root per request: contexts cache descriptors and are not shared
    /// between the mount's threads.
    func rootContext() -> DirectoryContext {
        DirectoryContext(fd: rootFD, path: rootPath, owned: false)
    }

    func components(_ path: [UInt8]) throws(Failure) -> [[UInt8]] {
        let parts = path.split(separator: UInt8(ascii: "/")).map(Array.init)
        for part in parts {
            if part == Array("..".utf8) || part == Array(".".utf8) { throw Failure(EINVAL) }
            // QEMU hides the model's metadata files and refuses every operation on it.
            if codec.holdsMetadata(part) { throw Failure(ENOENT) }
            // A leftover of a killed daemon: not the guest's, removed when its directory is listed.
            if writable && TemporaryName.matches(part) { throw Failure(ENOENT) }
        }
        return parts
    }

    /// The host entry a mount path names.
    func entry(_ path: [UInt8]) throws(Failure) -> HostEntry {
        let parts = try components(path)
        guard let last = parts.last else {
            do {
                return try HostEntry(directory: rootContext(), name: Array(".".utf8), path: rootPath, isExportRoot: true)
            } catch {
                throw Failure(error)
            }
        }
        let directory = try open(parts.dropLast())
        do {
            return try HostEntry(directory: directory, name: last, path: Bytes.join(directory.path, last))
        } catch {
            throw Failure(error)
        }
    }

    /// The directory a mount path names, open.
    func directory(_ path: [UInt8]) throws(Failure) -> DirectoryContext {
        try open(try components(path)[...])
    }

    /// Opens the directory at `parts` below the export root: from the nearest directory the
    /// cache still holds at its place, each further component opened without following a
    /// symlink.
    func open(_ parts: ArraySlice<[UInt8]>) throws(Failure) -> DirectoryContext {
        guard let last = parts.last else { return rootContext() }
        let relative = Array(parts.joined(separator: [UInt8(ascii: "/")]))
        let path = Bytes.join(rootPath, relative)
        if let fd = directories.open(relative) { return DirectoryContext(fd: fd, path: path) }
        let parent = try open(parts.dropLast())
        do {
            let fd = try Sys.openDirectory(parent.fd, last)
            directories.keep(fd, at: relative)
            return DirectoryContext(fd: fd, path: path)
        } catch {
            throw Failure(error)
        }
    }

    func decode(_ entry: HostEntry) throws(Failure) -> GuestView {
        do { return try codec.decode(entry) } catch { throw Failure(error) }
    }

    /// What the guest sees for a path.
    public func view(_ path: [UInt8]) throws(Failure) -> GuestView {
        try decode(try entry(path))
    }

    /// A symlink's target as the guest reads it.
    public func target(_ path: [UInt8]) throws(Failure) -> [UInt8] {
        let view = try view(path)
        guard view.type == .symlink, let target = view.attributes.symlinkTarget else { throw Failure(EINVAL) }
        return target
    }

    /// A directory's entries with what the guest sees for each (nil when it cannot be decoded:
    /// the name is still listed, as the guest lists it).
    public func list(_ path: [UInt8], _ body: ([UInt8], GuestView?) -> Bool) throws(Failure) {
        let directory = try directory(path)
        var leftovers = false
        do {
            try Sys.forEachName(in: directory.fd, path: directory.path) { name, _ in
                if codec.holdsMetadata(name) { return true }
                if writable && TemporaryName.matches(name) {
                    leftovers = true
                    return true
                }
                let view = try? codec.decode(HostEntry(directory: directory, name: name, path: Bytes.join(directory.path, name)))
                return body(name, view)
            }
        } catch {
            throw Failure(error)
        }
        if writable && (leftovers || model == .mappedFile) { removeLeftovers(in: directory) }
    }

    /// A daemon killed mid-write leaves what it was building aside under virtfs-tools'
    /// temporary names (and, in mapped-file, their metadata files). A writing mount is the
    /// tree's only writer (it holds the tree lock) and makes its own temporaries only under
    /// `writing`, so every such name it lists is a leftover: it removes them, as virtfs-fsck -y
    /// does, and does not list them. A directory left aside with something in it stays (the
    /// guest cannot have put anything in it; virtfs-fsck reports it).
    func removeLeftovers(in directory: DirectoryContext) {
        writing.withLock { _ in
            var names: [[UInt8]] = []
            try? Sys.forEachName(in: directory.fd, path: directory.path) { name, _ in
                if TemporaryName.matches(name) { names.append(name) }
                return true
            }
            for name in names {
                if let entry = try? HostEntry(directory: directory, name: name, path: Bytes.join(directory.path, name)) {
                    try? codec.remove(entry)
                }
            }
            guard model == .mappedFile, let metadata = try? directory.metadataDirectory() else { return }
            names = []
            try? Sys.forEachName(in: metadata) { name, _ in
                if TemporaryName.matches(name) && (try? Sys.stat(directory.fd, name)) == nil { names.append(name) }
                return true
            }
            for name in names { try? Sys.unlink(metadata, name) }
        }
    }

    /// The extended attributes the guest can list and read: its user xattrs (never the
    /// model's own) and its ACLs in the kernel's `system.posix_acl_*` format.
    public func xattrs(_ path: [UInt8]) throws(Failure) -> [Xattr] {
        let view = try view(path)
        var out = view.attributes.xattrs
        if let acl = view.attributes.accessACL { out.append(Xattr(HostACLXattr.access, acl.xattrValue)) }
        if let acl = view.attributes.defaultACL { out.append(Xattr(HostACLXattr.default, acl.xattrValue)) }
        return out
    }

    /// Opens a guest regular file's data for reading. The object opened must be the one
    /// decoded: a swap between the two is refused rather than followed.
    public func openForReading(_ path: [UInt8]) throws(Failure) -> Int32 {
        let entry = try entry(path)
        let view = try decode(entry)
        guard view.type == .regular else { throw Failure(view.type == .directory ? EISDIR : EACCES) }
        do {
            let fd = try Sys.openAt(entry.directory.fd, entry.name, O_RDONLY | VIRTFS_O_NOFOLLOW | VIRTFS_O_NONBLOCK | VIRTFS_O_CLOEXEC)
            guard let opened = try? Sys.stat(fd: fd), opened.identity == entry.stat.identity, opened.fileType == .regular else {
                Sys.close(fd)
                throw Failure(EAGAIN)
            }
            return fd
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(error)
        }
    }

    /// The backing filesystem's capacity, as `df` on the mount shows it.
    public func statfs(_ out: UnsafeMutablePointer<statvfs>) -> Int32 {
        fstatvfs(rootFD, out) == 0 ? 0 : -errno
    }
}
