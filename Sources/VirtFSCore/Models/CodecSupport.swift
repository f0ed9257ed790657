import CVirtFS
import Glibc

public enum HostACLXattr {
    public static let access = "system.posix_acl_access"
    public static let `default` = "system.posix_acl_default"
    /// The same names as the system calls take them.
    public static let bytes = (access: Array(access.utf8), default: Array(`default`.utf8))
}

let userPrefix = Array("user.".utf8)

extension HostEntry {
    /// The host object's type; one the toolkit does not know fails the entry in every model.
    func fileType() throws(VirtFSError) -> FileType {
        guard let type = stat.fileType else {
            throw VirtFSError.corrupt("statx", path: path, "unknown host file type in mode 0\(String(stat.mode, radix: 8))")
        }
        return type
    }

    /// Decodes an ACL blob; a blob the guest kernel would reject becomes a diagnostic.
    func acl(_ attribute: [UInt8], present names: [[UInt8]], into diagnostics: inout [VirtFSError]) throws(VirtFSError) -> ACL? {
        guard names.contains(attribute), let bytes = try xattr(raw: attribute) else { return nil }
        do {
            return try ACL(xattr: bytes, attribute: String(decoding: attribute, as: UTF8.self))
        } catch let error {
            diagnostics.append(error.at(path).found(.aclRejected))
            return nil
        }
    }

    /// The view's ACLs, from the xattrs `acls` names (nil: the model keeps none), and the
    /// `user.*` xattrs the guest can list and read, in host order. In mapped-xattr QEMU hides
    /// the whole `user.virtfs.` namespace (`hidingVirtfs`); elsewhere the guest sees every `user.*`.
    func applyXattrs(_ names: [[UInt8]], acls: (access: [UInt8], default: [UInt8])?, hidingVirtfs: Bool = false,
                     to view: inout GuestView) throws(VirtFSError) {
        if let acls {
            view.attributes.accessACL = try acl(acls.access, present: names, into: &view.diagnostics)
            view.attributes.defaultACL = try acl(acls.default, present: names, into: &view.diagnostics)
        }
        view.attributes.xattrs = []
        for name in names where name.starts(with: userPrefix) && !(hidingVirtfs && name.starts(with: virtfsPrefix)) {
            // Read by its raw bytes: a guest can set names that are not UTF-8.
            if let value = try xattr(raw: name) {
                view.attributes.xattrs.append(Xattr(name: name, value: value))
            }
        }
    }

    /// The host object's own symlink, as a guest of a mapped export sees it: a symlink whose
    /// target QEMU < 11 cannot read (it opens it with O_NOFOLLOW: ELOOP).
    func applyHostSymlink(to view: inout GuestView, readable: Bool) throws(VirtFSError) {
        view.attributes.symlinkTarget = try readLink()
        view.symlinkReadable = readable
    }
}

extension HostEntry {
    /// A mode read from metadata replaces the whole st_mode, file type included, as in QEMU.
    /// One without a valid type fails the entry, or in lenient decoding takes the host's type.
    func applyMappedMode(_ mode: UInt32, from source: Source, attribute: [UInt8], shown: @autoclosure () -> String,
                         to view: inout GuestView, hostType: FileType, lenient: Bool) throws(VirtFSError) {
        let type = FileType(mode: mode)
        if type == nil {
            let error = VirtFSError.corrupt("decode", path: path, attribute: attribute,
                                            "\(shown()) has no valid file type").found(.modeWithoutType)
            guard lenient else { throw error }
            view.diagnostics.append(error)
        }
        view.attributes.type = type ?? hostType
        view.attributes.permissions = mode & 0o7777
        view.provenance.mode = source
        checkTypeAgainstHost(&view, host: hostType)
    }

    /// What both mapped models do once the fields are read: note an entry with no metadata at
    /// all, and read symlink targets (a real host symlink is one QEMU < 11 cannot read, since
    /// both models open it with O_NOFOLLOW).
    func finishMappedView(_ view: inout GuestView, hostType: FileType) throws(VirtFSError) {
        let p = view.provenance
        view.hostFallback = p.uid == .host && p.gid == .host && p.mode == .host && p.rdev == .host
        if hostType == .symlink {
            try applyHostSymlink(to: &view, readable: false)
        } else if view.type == .symlink && hostType == .regular {
            // A mapped symlink's target: the data of the host regular file standing for it.
            var truncated = stat.size > UInt64(symlinkTargetLimit)
            if readsStoredSymlinkTarget {
                let bytes: [UInt8]
                (bytes, truncated) = try readContent(limit: symlinkTargetLimit)
                view.attributes.symlinkTarget = bytes
            }
            if truncated {
                view.diagnostics.append(.corrupt("readlink", path: path, "symlink target longer than \(symlinkTargetLimit) bytes"))
            }
        }
    }
}

extension HostEntry {
    /// Gives a host object the owner and mode the mapped models give the objects they create
    /// (`acl`: the host ACL that is the guest's, whose owner, mask and other entries are then
    /// the mode bits). A chown that changes nothing is skipped, so the set-id bits it would
    /// clear are set by the chmod as asked.
    func place(_ placement: HostPlacement, acl: ACL? = nil) throws(VirtFSError) {
        if let owner = placement.owner, stat.uid != owner.uid || stat.gid != owner.gid {
            try Sys.chown(directory.fd, name, owner.uid, owner.gid)
        }
        var mode = stat.fileType == .directory ? placement.directoryMode : placement.fileMode
        if let acl, !acl.isMinimal { mode = (mode & 0o7000) | acl.modeBits }
        if stat.mode & 0o7777 != mode { try Sys.chmod(directory.fd, name, mode_t(mode)) }
    }
}

/// Checks the file type the metadata claims against the host object that carries it. QEMU
/// believes the metadata; the guest then fails on the object (a "directory" it cannot list).
func checkTypeAgainstHost(_ view: inout GuestView, host: FileType) {
    let claimed = view.attributes.type
    // A regular file stands for every type but a directory.
    if host == .regular ? claimed == .directory : claimed != host {
        view.diagnostics.append(VirtFSError.corrupt("decode", path: view.path, attribute: Array("mode".utf8),
                                                    "metadata says \(claimed.keyword) but the host object is a \(host.keyword)").found(.typeContradictsHost))
    }
}

/// Creation of the host object that stands for a guest object in both mapped models: a
/// directory for a directory, a regular file for everything else (symlink target as data).
/// Made here, with its data; what only looks at the new object (what creation gave it, set to
/// the placement's owner and mode) is returned, to run later if the caller wants, and gives the entry.
func createMappedHostObject(_ attributes: GuestAttributes, named name: [UInt8], in directory: DirectoryContext,
                            content: Content, placement: HostPlacement) throws(VirtFSError) -> () throws(VirtFSError) -> HostEntry {
    let path = Bytes.join(directory.path, name)
    let mode = attributes.type == .directory ? placement.directoryMode : placement.fileMode
    var fd: Int32 = -1
    do {
        if attributes.type == .directory {
            try Sys.mkdir(directory.fd, name, mode_t(mode & 0o777))
        } else {
            fd = try Sys.openAt(directory.fd, name, O_WRONLY | O_CREAT | O_EXCL, mode: mode_t(mode & 0o777))
            if attributes.type == .symlink {
                try Sys.writeAll(fd, attributes.symlinkTarget ?? [], name: name)
            } else if attributes.type == .regular {
                try content.write(to: fd, name: name)
            }
        }
    } catch let error {
        if fd >= 0 { Sys.close(fd) }
        throw error.at(path)
    }
    return { [fd] () throws(VirtFSError) -> HostEntry in
        defer { if fd >= 0 { Sys.close(fd) } }
        if placement.creationIsExact {
            // Nothing to look at: creation gave what was asked. (The mapped models' writers go
            // by the name alone; the stat is what creation is known to give, not the inode's.)
            let stat = HostStat(created: attributes.type == .directory ? .directory : .regular, permissions: mode,
                                owner: placement.owner ?? (geteuid(), getegid()))
            return HostEntry(directory: directory, name: name, path: path, stat: stat, isExportRoot: false)
        }
        do throws(VirtFSError) {
            var stat = fd >= 0 ? try Sys.stat(fd: fd) : try Sys.stat(directory.fd, name)
            // The umask, a default ACL or a set-group-ID directory decide what creation gave: only
            // what differs from the placement is set (most creations need neither call).
            if stat.permissions != mode {
                try Sys.chmod(directory.fd, name, mode_t(mode))
                stat.mode = stat.mode & ~0o7777 | mode
            }
            if let owner = placement.owner, stat.uid != owner.uid || stat.gid != owner.gid {
                try Sys.chown(directory.fd, name, owner.uid, owner.gid)
                (stat.uid, stat.gid) = owner
            }
            return HostEntry(directory: directory, name: name, path: path, stat: stat, isExportRoot: false)
        } catch let error {
            throw error.at(path)
        }
    }
}

/// Writes ACLs under `accessName`/`defaultName` (removing absent ones) and the guest's user
/// xattrs, which every model but none keeps on the host object as they are. `fresh`: the host
/// object was just made, so it has no xattr of these (user) names to remove.
func writeACLs(_ attributes: GuestAttributes, to entry: HostEntry, accessName: [UInt8], defaultName: [UInt8], fresh: Bool = false) throws(VirtFSError) {
    let directory = attributes.type == .directory
    if !directory && attributes.defaultACL != nil {
        throw VirtFSError.refused("setxattr", path: entry.path, "only directories have default ACLs")
    }
    func write(_ name: [UInt8], _ acl: ACL?) throws(VirtFSError) {
        if let acl { try entry.setXattr(raw: name, acl.xattrValue) } else if !fresh { try entry.removeXattr(raw: name) }
    }
    try write(accessName, attributes.accessACL)
    if directory { try write(defaultName, attributes.defaultACL) }
}

func writeUserXattrs(_ attributes: GuestAttributes, to entry: HostEntry, refusingVirtfs: Bool) throws(VirtFSError) {
    for x in attributes.xattrs {
        guard x.name.starts(with: userPrefix) else {
            throw VirtFSError.refused("lsetxattr", path: entry.path, "guest xattr \(String(decoding: x.name, as: UTF8.self)) is not in the user namespace")
        }
        if refusingVirtfs && x.name.starts(with: virtfsPrefix) {
            throw VirtFSError.refused("lsetxattr", path: entry.path, "mapped-xattr cannot keep a guest xattr named \(String(decoding: x.name, as: UTF8.self)): QEMU reserves user.virtfs.*")
        }
        try entry.setXattr(raw: x.name, x.value)
    }
}

/// Data that arrives as a stream (an archive member): written once, never held whole.
public protocol ContentSource: Sendable {
    func write(to fd: Int32, path: [UInt8]) throws(VirtFSError)
}

/// The data of a regular file being created: given bytes, streamed from an existing file
/// (a conversion copies data without holding it in memory), or from another source.
public enum Content: Sendable {
    case bytes([UInt8])
    case copy(of: HostEntry)
    case stream(any ContentSource)

    public static let empty = Content.bytes([])

    func write(to fd: Int32, name: [UInt8]) throws(VirtFSError) {
        switch self {
        case .bytes(let bytes):
            try Sys.writeAll(fd, bytes, name: name)
        case .copy(let source):
            let input = try Sys.openAt(source.directory.fd, source.name, O_RDONLY | VIRTFS_O_NONBLOCK_FLAG)
            defer { Sys.close(input) }
            try Sys.copyData(from: input, to: fd, name: source.path)
        case .stream(let source):
            try source.write(to: fd, path: name)
        }
    }
}

extension HostEntry: @unchecked Sendable {}

/// The one name virtfs-tools builds things under before renaming them into place:
/// `.virtfs-tools.PID.tmp`. Whatever an interrupted run leaves under such a name is garbage
/// that the next run (or virtfs-fsck) removes.
public enum TemporaryName {
    /// (A process's id does not change; asking the kernel for it per entry cost a system call.)
    static let pid = getpid()
    /// Per thread: threads of one run that write beside each other never share a temporary.
    /// (The thread's handle is unique among the live threads of the process, and costs no call;
    /// it is spelled in hex without a String, as every object a conversion rebuilds asks for it.)
    public static var current: [UInt8] {
        var name = ours
        let handle = UInt(bitPattern: Int(bitPattern: pthread_self()))
        let digits = max(1, (UInt.bitWidth - handle.leadingZeroBitCount + 3) / 4)
        for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
            name.append(hexDigits[Int(handle >> UInt(shift) & 0xf)])
        }
        return name + suffix
    }
    /// The start of every temporary name of this run.
    static let ours = prefix + Array("\(pid).".utf8)
    private static let prefix = Array(".virtfs-tools.".utf8)
    private static let suffix = Array(".tmp".utf8)
    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A second temporary name of this run, for a step that needs two at once.
    public static func named(_ purpose: String) -> [UInt8] { ours + Array(purpose.utf8) + suffix }

    public static func matches(_ name: [UInt8]) -> Bool {
        name.starts(with: prefix) && name.suffix(suffix.count).elementsEqual(suffix)
    }

    /// Whether virtfs-tools keeps a file of this name itself: a temporary, or the record of a
    /// conversion under way.
    public static func isReserved(_ name: [UInt8]) -> Bool {
        matches(name) || name == ConversionRecord.fileName
    }
}
