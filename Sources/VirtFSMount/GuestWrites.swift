import CVirtFS
import Glibc
import VirtFSCore

/// Who asks for a write: the calling process's fsuid and fsgid, as the kernel gives them.
public struct Caller: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    /// The caller's umask, applied to a new object's mode unless its directory has a default
    /// ACL, which takes the umask's place (as on every POSIX-ACL filesystem).
    public var umask: UInt32
    public init(uid: UInt32, gid: UInt32, umask: UInt32 = 0) {
        self.uid = uid
        self.gid = gid
        self.umask = umask
    }
}

/// The guest's operations on a mounted tree, each stored as QEMU stores the same guest
/// operation in the tree's model, through the model's codec. Every new object is built under a
/// temporary name and renamed into place with its metadata complete, so a daemon killed at any
/// point leaves names that each have their metadata (and at most a temporary leftover, which
/// virtfs-fsck removes).
extension GuestFilesystem {
    func serialized<T>(_ body: () throws(Failure) -> T) throws(Failure) -> T {
        guard writable else { throw Failure(EROFS) }
        return try writing.withLock { _ throws(Failure) in try body() }
    }

    func attempt<T>(_ body: () throws -> T) throws(Failure) -> T {
        do { return try body() } catch let failure as Failure { throw failure } catch { throw Failure(error) }
    }

    /// The directory that holds a new or changed name, the name, and the directory's guest view.
    func parent(_ path: [UInt8]) throws(Failure) -> (directory: DirectoryContext, name: [UInt8], view: GuestView) {
        let parts = path.split(separator: UInt8(ascii: "/")).map(Array.init)
        guard let name = parts.last else { throw Failure(EBUSY) }
        // QEMU refuses the mapped-file names with EINVAL rather than hiding them (ENOENT).
        if codec.holdsMetadata(name) { throw Failure(EINVAL) }
        // The names the mount builds aside under, which it removes as leftovers when it lists them.
        if TemporaryName.matches(name) { throw Failure(EINVAL) }
        let above = Array(parts.dropLast().joined(separator: [UInt8(ascii: "/")]))
        let directory = try directory(above)
        let view = try self.view(above)
        return (directory, name, view)
    }

    func exists(_ name: [UInt8], in directory: DirectoryContext) -> Bool {
        (try? Sys.stat(directory.fd, name)) != nil
    }

    /// The set-group-ID bit: a directory that has it gives new entries its group, and new
    /// directories the bit, as the guest kernel's 9p client asks of QEMU.
    static let setGroupID: UInt32 = 0o2000

    /// What a new object inherits from the directory's default ACL, as the kernel's
    /// posix_acl_create gives it and the guest's 9p client sends it to QEMU: the default ACL
    /// masked by the requested mode becomes the access ACL (none when the mode says it all), the
    /// mode is masked by it in turn, and a directory keeps the default ACL.
    static func inherit(_ inherited: ACL, into attributes: inout GuestAttributes) {
        var acl = inherited
        var mode = attributes.permissions
        let hasMask = acl.entries.contains { $0.tag == .mask }
        for i in acl.entries.indices {
            switch acl.entries[i].tag {
            case .userObj:
                acl.entries[i].permissions &= UInt16((mode >> 6) & 7)
                mode &= UInt32(acl.entries[i].permissions) << 6 | ~UInt32(0o700)
            case .other:
                acl.entries[i].permissions &= UInt16(mode & 7)
                mode &= UInt32(acl.entries[i].permissions) | ~UInt32(0o007)
            case .mask, .groupObj where !hasMask:
                acl.entries[i].permissions &= UInt16((mode >> 3) & 7)
                mode &= UInt32(acl.entries[i].permissions) << 3 | ~UInt32(0o070)
            default: break
            }
        }
        attributes.permissions = mode
        attributes.accessACL = acl.isMinimal ? nil : acl
        if attributes.type == .directory { attributes.defaultACL = inherited }
    }

    /// Creates an object: built complete under a temporary name, then renamed into place
    /// without replacing anything (what O_EXCL, mkdir and mknod promise).
    func make(_ attributes: GuestAttributes, at path: [UInt8], umask: UInt32) throws(Failure) {
        try serialized { () throws(Failure) in
            var attributes = attributes
            let (directory, name, parentView) = try parent(path)
            if parentView.attributes.permissions & Self.setGroupID != 0 {
                attributes.gid = parentView.gid
                if attributes.type == .directory { attributes.permissions |= Self.setGroupID }
            }
            if let inherited = parentView.attributes.defaultACL, attributes.type != .symlink {
                Self.inherit(inherited, into: &attributes)
            } else if attributes.type != .symlink {
                attributes.permissions &= ~(umask & 0o777)
            }
            if exists(name, in: directory) { throw Failure(EEXIST) }
            // A value the model cannot keep is refused, never stored as something else.
            if !codec.cannotHold(attributes, name: name).isEmpty { throw Failure(EOVERFLOW) }
            let temporary = TemporaryName.named("mount")
            try attempt {
                if let leftover = try? HostEntry(directory: directory, name: temporary, path: []) { try? codec.remove(leftover) }
                try codec.create(attributes, named: temporary, in: directory, content: .empty, placement: placement)
                let built = try HostEntry(directory: directory, name: temporary, path: Bytes.join(directory.path, temporary))
                do {
                    try codec.rename(built, to: name, in: directory, mode: .noReplace, placement: placement)
                } catch {
                    try? codec.remove(built)
                    throw error
                }
            }
        }
    }

    public func mkdir(_ path: [UInt8], mode: UInt32, caller: Caller) throws(Failure) {
        try make(GuestAttributes(type: .directory, permissions: mode, uid: caller.uid, gid: caller.gid), at: path, umask: caller.umask)
    }

    /// mknod(2): in the mapped models a device, fifo or socket is a host regular file whose
    /// metadata says what it is, as QEMU stores it.
    public func mknod(_ path: [UInt8], mode: UInt32, rdev: UInt64, caller: Caller) throws(Failure) {
        guard let type = FileType(mode: mode), type != .directory, type != .symlink else { throw Failure(EINVAL) }
        let device = type.hasDeviceNumber ? DeviceNumber(guestKernel: rdev) : .zero
        try make(GuestAttributes(type: type, permissions: mode, uid: caller.uid, gid: caller.gid, rdev: device), at: path, umask: caller.umask)
    }

    /// symlink(2): in the mapped models a host regular file holding the target.
    public func symlink(_ target: [UInt8], at path: [UInt8], caller: Caller) throws(Failure) {
        try make(GuestAttributes(type: .symlink, permissions: 0o777, uid: caller.uid, gid: caller.gid, symlinkTarget: target), at: path, umask: 0)
    }

    /// Creates a regular file and opens it (open(2) with O_CREAT); an existing file is opened
    /// unless O_EXCL was asked.
    public func create(_ path: [UInt8], mode: UInt32, flags: Int32, caller: Caller) throws(Failure) -> Int32 {
        do {
            try make(GuestAttributes(type: .regular, permissions: mode, uid: caller.uid, gid: caller.gid), at: path, umask: caller.umask)
        } catch let failure where failure.errno == EEXIST && flags & O_EXCL == 0 {
        }
        return try open(path, flags: flags)
    }

    /// Opens a guest regular file's data. The object opened must be the one decoded: a swap
    /// between the two is refused rather than followed.
    public func open(_ path: [UInt8], flags: Int32) throws(Failure) -> Int32 {
        if flags & O_ACCMODE != O_RDONLY && !writable { throw Failure(EROFS) }
        let entry = try entry(path)
        let view = try decode(entry)
        guard view.type == .regular else { throw Failure(view.type == .directory ? EISDIR : EACCES) }
        return try attempt {
            let fd = try Sys.openAt(entry.directory.fd, entry.name, flags & (O_ACCMODE | O_APPEND) | VIRTFS_O_NONBLOCK)
            guard let opened = try? Sys.stat(fd: fd), opened.identity == entry.stat.identity, opened.fileType == .regular else {
                Sys.close(fd)
                throw Failure(EAGAIN)
            }
            return fd
        }
    }

    public func link(_ existing: [UInt8], as path: [UInt8]) throws(Failure) {
        try serialized { () throws(Failure) in
            let source = try entry(existing)
            if source.stat.fileType == .directory { throw Failure(EPERM) }
            let (directory, name, _) = try parent(path)
            try attempt { try codec.link(source, as: name, in: directory, placement: placement) }
        }
    }

    /// unlink(2) and rmdir(2): the host type decides, as the guest's type always matches it
    /// for directories.
    public func remove(_ path: [UInt8], directory wanted: Bool) throws(Failure) {
        try serialized { () throws(Failure) in
            if try components(path).isEmpty { throw Failure(EBUSY) }
            let target = try entry(path)
            let isDirectory = target.stat.fileType == .directory
            if isDirectory != wanted { throw Failure(wanted ? ENOTDIR : EISDIR) }
            try attempt { try codec.remove(target) }
            if isDirectory { try forgetDirectories(at: path) }
        }
    }

    /// Closes what the mount keeps open at or below a path whose directory went away or moved.
    func forgetDirectories(at path: [UInt8]) throws(Failure) {
        directories.forget(Array(try components(path).joined(separator: [UInt8(ascii: "/")])))
    }

    /// rename(2) and renameat2(2)'s RENAME_NOREPLACE and RENAME_EXCHANGE (flags 1 and 2).
    public func rename(_ from: [UInt8], to path: [UInt8], flags: UInt32) throws(Failure) {
        let mode: RenameMode
        switch flags {
        case 0: mode = .replace
        case 1: mode = .noReplace
        case 2: mode = .exchange
        default: throw Failure(EINVAL)
        }
        try serialized { () throws(Failure) in
            if try components(from).isEmpty { throw Failure(EBUSY) }
            let source = try entry(from)
            let (directory, name, _) = try parent(path)
            if let target = try? Sys.stat(directory.fd, name), mode == .replace {
                // rename(2)'s own rules, which the host would apply to the host types.
                let sourceIsDirectory = source.stat.fileType == .directory
                if sourceIsDirectory && target.fileType != .directory && target.identity != source.stat.identity { throw Failure(ENOTDIR) }
                if !sourceIsDirectory && target.fileType == .directory { throw Failure(EISDIR) }
            }
            try attempt { try codec.rename(source, to: name, in: directory, mode: mode, placement: placement) }
            try forgetDirectories(at: from)
            try forgetDirectories(at: path)
        }
    }

    /// Rewrites an entry's guest metadata through its model. A mapped-file metadata file shared
    /// by hard links is replaced under each of its names (QEMU rewrites it in place, which a
    /// crash can leave half written): the names are found by a census of the tree, taken only
    /// when the file has more than one.
    func change(_ path: [UInt8], _ edit: (inout GuestAttributes) throws(Failure) -> Void) throws(Failure) {
        try serialized { () throws(Failure) in
            let target = try entry(path)
            var attributes = try decode(target).attributes
            try edit(&attributes)
            var placement = placement
            placement.links = LinkCensus(exportRoot: rootContext())
            try attempt { try codec.update(attributes, of: target, placement: placement) }
        }
    }

    /// chmod(2). An access ACL follows the new mode as the kernel's posix_acl_chmod makes it:
    /// owner, mask (group without a mask) and other entries take the mode's bits.
    public func chmod(_ path: [UInt8], mode: UInt32) throws(Failure) {
        try change(path) { attributes throws(Failure) in
            if attributes.type == .symlink { throw Failure(EOPNOTSUPP) }
            attributes = attributes.changingPermissions(mode)
        }
    }

    /// chown(2); an id of -1 is left as it is.
    public func chown(_ path: [UInt8], uid: UInt32, gid: UInt32) throws(Failure) {
        try change(path) { attributes throws(Failure) in
            if uid != UInt32.max { attributes.uid = uid }
            if gid != UInt32.max { attributes.gid = gid }
        }
    }

    /// truncate(2) of a path (ftruncate of an open file goes to its descriptor).
    public func truncate(_ path: [UInt8], size: Int64) throws(Failure) {
        guard writable else { throw Failure(EROFS) }
        let fd = try open(path, flags: O_WRONLY)
        defer { Sys.close(fd) }
        if ftruncate(fd, off_t(size)) != 0 { throw Failure(errno) }
    }

    /// utimensat(2) as QEMU's local_utimensat: on the host object, never through a symlink;
    /// UTIME_NOW and UTIME_OMIT pass through.
    public func setTimes(_ path: [UInt8], _ times: UnsafePointer<timespec>?) throws(Failure) {
        guard writable else { throw Failure(EROFS) }
        let target = try entry(path)
        try attempt { try Sys.setTimes(target.directory.fd, target.name, times) }
    }

    // MARK: extended attributes

    static let aclAccess = HostACLXattr.bytes.access
    static let aclDefault = HostACLXattr.bytes.default
    static let userPrefix = Array("user.".utf8)

    /// QEMU's xattr namespaces: `user.*` and the two ACL names; everything else (`trusted.*`,
    /// `security.*`, other `system.*`) is EOPNOTSUPP, and so are ACLs in the none model.
    func checkNamespace(_ name: [UInt8]) throws(Failure) {
        if name == Self.aclAccess || name == Self.aclDefault {
            if model == .none { throw Failure(EOPNOTSUPP) }
            return
        }
        guard name.starts(with: Self.userPrefix) else { throw Failure(EOPNOTSUPP) }
    }

    /// The xattr names the model keeps for itself: a guest cannot set or remove them (EACCES)
    /// nor read them (ENODATA). Models that keep none let a guest set any user xattr.
    func isReserved(_ name: [UInt8]) -> Bool {
        codec.holdsMetadata(xattr: name)
    }

    /// getxattr(2)'s refusals before the lookup: other namespaces are EOPNOTSUPP, as in QEMU.
    public func checkReadable(_ name: [UInt8]) throws(Failure) {
        try checkNamespace(name)
    }

    /// setxattr(2) with XATTR_CREATE (1) or XATTR_REPLACE (2). An access ACL also sets the
    /// mode's owner, group-class and other bits, and one the mode says in full is not kept,
    /// as the guest kernel's posix_acl_update_mode does before it sends both to QEMU.
    public func setXattr(_ path: [UInt8], name: [UInt8], value: [UInt8], flags: Int32) throws(Failure) {
        try checkNamespace(name)
        if isReserved(name) { throw Failure(EACCES) }
        let current = try xattrs(path)
        let present = current.contains { $0.name == name }
        if flags & 1 != 0 && present { throw Failure(EEXIST) }
        if flags & 2 != 0 && !present { throw Failure(ENODATA) }
        if name == Self.aclAccess || name == Self.aclDefault {
            let acl: ACL
            do { acl = try ACL(xattr: value, attribute: String(decoding: name, as: UTF8.self)) } catch { throw Failure(EINVAL) }
            guard acl.entries.isEmpty || acl.isValid else { throw Failure(EINVAL) }
            try change(path) { attributes throws(Failure) in
                if name == Self.aclDefault {
                    guard attributes.type == .directory else { throw Failure(EACCES) }
                    attributes.defaultACL = acl.entries.isEmpty ? nil : acl
                } else {
                    attributes.permissions = attributes.permissions & 0o7000 | acl.modeBits
                    attributes.accessACL = acl.isMinimal ? nil : acl
                }
            }
            return
        }
        try change(path) { attributes throws(Failure) in
            attributes.xattrs = [Xattr(name: name, value: value)]
        }
    }

    public func removeXattr(_ path: [UInt8], name: [UInt8]) throws(Failure) {
        try checkNamespace(name)
        if isReserved(name) { throw Failure(EACCES) }
        let present = try xattrs(path).contains { $0.name == name }
        if name == Self.aclAccess || name == Self.aclDefault {
            // Removing an ACL that is not there succeeds, in QEMU as on Linux filesystems.
            guard present else { return }
            try change(path) { attributes throws(Failure) in
                if name == Self.aclAccess { attributes.accessACL = nil } else { attributes.defaultACL = nil }
            }
            return
        }
        guard present else { throw Failure(ENODATA) }
        // A user xattr is kept on the host object as it is in every model.
        try serialized { () throws(Failure) in
            let target = try entry(path)
            try attempt { try target.removeXattr(raw: name) }
        }
    }
}
