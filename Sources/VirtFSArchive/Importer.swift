import Dispatch
import Glibc
import VirtFSCore

/// Writes the members of an archive into an export root in one security model, as QEMU would
/// have stored what a guest created: the archive's guest view is decoded by libarchive and
/// encoded by the model's codec. Names are resolved one component at a time from the root
/// without following symlinks; members that would land outside it are refused the way bsdtar's
/// secure defaults refuse them (`..` in a path or link target, extraction through a symlink),
/// and a leading `/` is removed, as bsdtar does.
public struct Importer {
    public struct Options: Sendable {
        public var model: SecurityModel
        public var placement = HostPlacement()
        /// More than one: each object's metadata (and times) is written on a second thread
        /// while the next objects are made. The tree, the events and the counts are the same.
        public var jobs = 1

        public init(model: SecurityModel) {
            self.model = model
        }
    }

    public struct Summary: Sendable {
        public var imported: [FileType: Int] = [:]
        public var bytes: UInt64 = 0
        public var refused = 0
        public var failures = 0
        /// Members whose xattrs, ACLs or owner the model could not keep.
        public var incomplete = 0

        public var total: Int { imported.values.reduce(0, +) }
    }

    public enum Event {
        case imported(path: [UInt8], GuestAttributes)
        /// The member was written, without something the model or the user cannot keep.
        case warning(VirtFSError)
        /// The member was not written: it would escape the root, or cannot exist here.
        case refused(VirtFSError)
        case failed(VirtFSError)
    }

    public let options: Options
    let codec: any ModelCodec
    let privileged: Bool

    public init(options: Options) {
        var options = options
        // An import fills a new tree, which a crash leaves to be made again whatever was
        // flushed: one syncfs when it ends (`run`) makes it durable, not an fsync per metadata file.
        options.placement.syncEachFile = false
        self.options = options
        codec = options.model.codec
        privileged = geteuid() == 0
    }

    /// Why this import cannot run at all, whatever the target.
    public func refusal() -> VirtFSError? {
        if options.model == .passthrough && !privileged {
            return .refused("import", "passthrough keeps owners and device nodes in the host inode: it needs root (use mapped-xattr or mapped-file, or none, unprivileged)")
        }
        return nil
    }

    /// Why this import cannot run into `root`, before anything is written.
    public func refusal(into root: Walker.Location) -> VirtFSError? {
        if let refusal = refusal() { return refusal.at(root.path) }
        do {
            return try Sys.isEmptyDirectory(root.directory.fd, path: root.path)
                ? nil : .refused("import", path: root.path, "not empty: import into an empty or new directory")
        } catch {
            return error
        }
    }

    // MARK: the export root: made or taken over, and given back when the import fails

    /// The export root an import writes into, and what it was before: a failed import removes
    /// what it created and gives an empty directory it was handed back as it found it.
    public struct Target {
        public let root: Walker.Location
        /// The import made the directory.
        public let created: Bool
        let parent: DirectoryContext
        let name: [UInt8]
        let before: HostStat
        let beforeXattrs: [Xattr]
    }

    /// Creates the export root `path` (its parent must exist), or takes an existing empty
    /// directory. In the mapped models the root gets the host owner and directory mode of the
    /// placement, as every directory the import makes does, so that the user QEMU runs as can
    /// serve it (exactly `--dmode`, whatever the umask).
    public func prepare(_ path: [UInt8]) throws(VirtFSError) -> Target {
        let (parentFD, name) = try Sys.openOperandParent(path)
        let parent = DirectoryContext(fd: parentFD, path: path.contains(UInt8(ascii: "/")) ? Bytes.splitParent(path).parent : [])
        var created = true
        do {
            try Sys.mkdir(parent.fd, name, 0o700)
        } catch let error where error.errno == EEXIST {
            created = false
        } catch let error {
            throw error.at(path)
        }
        let root = try Walker.exportRoot(path)
        let directory = root.directory
        let before = try Sys.stat(fd: directory.fd)
        var xattrs: [Xattr] = []
        if !created {
            if let refusal = refusal(into: root) { throw refusal }
            for attribute in try Sys.listXattrs(directory.fd, dot) {
                if let value = try Sys.getXattr(directory.fd, dot, raw: attribute) { xattrs.append(Xattr(name: attribute, value: value)) }
            }
        }
        let target = Target(root: root, created: created, parent: parent, name: name, before: before, beforeXattrs: xattrs)
        do {
            if options.model.isMapped {
                if let owner = options.placement.owner, before.uid != owner.uid || before.gid != owner.gid {
                    try Sys.chown(directory.fd, dot, owner.uid, owner.gid)
                }
                try Sys.chmod(directory.fd, dot, mode_t(options.placement.directoryMode & 0o7777))
            } else if created {
                // Until the archive's `./` says otherwise: bsdtar's mode for a directory it makes.
                try Sys.chmod(directory.fd, dot, 0o755)
            }
        } catch let error {
            try? undo(target)
            throw error.at(path)
        }
        return target
    }

    /// Removes everything a failed import wrote: the directory it created, or the content and
    /// metadata it put into the empty directory it was given (owner, mode and xattrs back as
    /// they were). Nothing outside the root is reached: the walk goes by directory fds and
    /// removes symlinks, never follows them.
    public func undo(_ target: Target) throws(VirtFSError) {
        let directory = target.root.directory
        try? Sys.chmod(directory.fd, dot, mode_t(0o700))
        try Self.removeContents(of: directory)
        if target.created {
            try Sys.unlink(target.parent.fd, target.name, directory: true)
            return
        }
        for attribute in try Sys.listXattrs(directory.fd, dot) where !target.beforeXattrs.contains(where: { $0.name == attribute }) {
            try Sys.removeXattr(directory.fd, dot, raw: attribute)
        }
        for x in target.beforeXattrs {
            try Sys.setXattr(directory.fd, dot, raw: x.name, x.value)
        }
        let now = try Sys.stat(fd: directory.fd)
        if now.uid != target.before.uid || now.gid != target.before.gid {
            try Sys.chown(directory.fd, dot, target.before.uid, target.before.gid)
        }
        try Sys.chmod(directory.fd, dot, mode_t(target.before.permissions))
    }

    static func removeContents(of directory: DirectoryContext) throws(VirtFSError) {
        // One directory's names at a time: memory follows the widest directory, not the tree.
        var names: [[UInt8]] = []
        try Sys.forEachName(in: directory.fd, path: directory.path) { name, _ in
            names.append(name)
            return true
        }
        for name in names {
            let path = Bytes.join(directory.path, name)
            let stat = try Sys.stat(directory.fd, name)
            if stat.fileType == .directory {
                let child = try directory.child(name, path: path)
                // An unprivileged host-inode import keeps the archive's modes: a 0555
                // directory has to be opened up before its entries can go.
                if stat.permissions & 0o700 != 0o700 { try Sys.chmod(child.fd, dot, mode_t(stat.permissions | 0o700)) }
                try removeContents(of: child)
                try Sys.unlink(directory.fd, name, directory: true)
            } else {
                try Sys.unlink(directory.fd, name)
            }
        }
    }

    // MARK: the directories along the current member's path

    /// An open directory of the current path and what to give back to it when the walk of the
    /// archive leaves it: its times (creating entries changes them) and, for unprivileged
    /// host-inode imports, a mode that did not let its owner write.
    struct Frame {
        let name: [UInt8]
        let directory: DirectoryContext
        var times: (atime: Timestamp, mtime: Timestamp)?
        var restoreMode: UInt32?

        func close() {
            if let restoreMode { try? Sys.chmod(directory.fd, dot, mode_t(restoreMode)) }
            if let times { try? Sys.setTimes(directory.fd, dot, atime: times.atime, mtime: times.mtime) }
        }
    }

    /// A name in `member` (its own, or the target of a hard link: `what`) as components below
    /// the root (a leading `/` is none), or why it is refused.
    static func components(of raw: [UInt8], in member: [UInt8], _ what: String = "path") throws(VirtFSError) -> [[UInt8]] {
        let parts = Bytes.components(raw)
        if parts.contains(Array("..".utf8)) { throw .refused("import", path: member, "\(what) contains '..'") }
        return parts
    }

    /// Imports every member of `reader` into `root`, which `refusal` accepted.
    public func run(_ reader: ArchiveReader, into root: Walker.Location, event: @escaping (Event) -> Void) -> Summary {
        let out = Output(jobs: options.jobs, event: event)
        Sys.raiseOpenFileLimit()
        let rootStat = try? root.entry().stat
        var stack = [Frame(name: [], directory: root.directory, times: rootStat.map { ($0.atime, $0.mtime) })]
        defer { while let frame = stack.popLast() { frame.close() } }
        let flush = BackgroundFlush(root.directory.fd)
        // Until a directory with a default ACL is there, nothing the import makes inherits an
        // ACL that would have to be removed again. (Unreadable: removed, as always.)
        var placement = options.placement
        do throws(VirtFSError) {
            placement.inheritsNoACL = try Sys.getXattr(root.directory.fd, dot, raw: HostACLXattr.bytes.default) == nil
            placement.creationIsExact = try createsExactly(root, rootStat: rootStat, placement: placement)
        } catch { placement.creationIsExact = false }
        reader.forEach({ member in
            if let warning = reader.warning {
                out.say(.warning(.corrupt("archive_read_next_header", path: member.path, warning)))
            }
            do throws(VirtFSError) {
                try importMember(member, root: root, stack: &stack, data: reader, placement: &placement, out: out)
            } catch {
                out.say(Event(error))
            }
            out.settle()
        }, failure: { out.say(Event($0)) })
        out.settle(all: true)
        flush.finish()
        do { try Sys.syncFilesystem(root.directory.fd, root.path) } catch { out.say(Event(error)) }
        return out.summary
    }

    /// Whether open and mkdir give what the import creates exactly the placement's mode and
    /// owner (`HostPlacement.creationIsExact`). Every directory is the import's own (the root
    /// is empty) and none has a default ACL; the umask clears no bit asked for, none is above
    /// 0o777 (which they drop), so no new directory is set-group-ID; the owner is the process's,
    /// and so is the group a new object could take from its directory instead (a set-group-ID
    /// root; a filesystem mounted grpid, where every directory passes its group on).
    func createsExactly(_ root: Walker.Location, rootStat: HostStat?, placement: HostPlacement) throws(VirtFSError) -> Bool {
        let mask = UInt32(umask(0))
        umask(mode_t(mask))
        let asked = placement.fileMode | placement.directoryMode | 0o600
        let me = (uid: geteuid(), gid: getegid())
        guard let rootStat, options.model.isMapped, placement.inheritsNoACL, asked & ~0o777 == 0, asked & mask == 0,
              placement.owner.map({ $0 == me }) ?? true, rootStat.permissions & UInt32(S_ISGID) == 0, rootStat.gid == me.gid
        else { return false }
        return try Sys.isEmptyDirectory(root.directory.fd, path: root.path)
    }

    func importMember(_ member: ArchiveMember, root: Walker.Location, stack: inout [Frame], data: ArchiveReader,
                      placement: inout HostPlacement, out: Output) throws(VirtFSError) {
        if member.defaultACL != nil { (placement.inheritsNoACL, placement.creationIsExact) = (false, false) }
        let parts = try Self.components(of: member.path, in: member.path)
        let display = parts.isEmpty ? dot : parts.dropFirst().reduce(parts[0]) { Bytes.join($0, $1) }
        if member.path.first == UInt8(ascii: "/") {
            out.say(.warning(.refused("import", path: member.path, "removing leading '/' from member name")))
        }
        if let reserved = parts.first(where: { codec.holdsMetadata($0) || TemporaryName.isReserved($0) }) {
            let whose = codec.holdsMetadata(reserved) ? "is reserved by the mapped-file model" : "is a name virtfs-tools reserves"
            throw VirtFSError.refused("import", path: member.path, "\(String(decoding: reserved, as: UTF8.self)) \(whose)")
        }
        if member.hardlinkTarget == nil, member.type == nil {
            throw VirtFSError.refused("import", path: member.path, "unknown member type")
        }
        // The export root itself (`./` in most rootfs archives).
        guard let name = parts.last else {
            guard member.type == .directory, member.hardlinkTarget == nil else {
                throw VirtFSError.refused("import", path: member.path, "the root of the tree can only be a directory")
            }
            let attributes = try keepable(member.attributes!, member: member, path: display, out: out)
            out.settle(all: true)
            while stack.count > 1 { stack.removeLast().close() }
            try codec.update(attributes, of: root.entry(), placement: placement)
            if let mtime = member.mtime { stack[0].times = (member.atime ?? mtime, mtime) }
            return out.say(.imported(path: display, attributes))
        }

        let parent = try directory(for: Array(parts.dropLast()), root: root, stack: &stack, placement: placement, display: display, out: out)

        if let target = member.hardlinkTarget {
            let targetParts = try Self.components(of: target, in: member.path, "hard link target")
            guard !targetParts.isEmpty else {
                throw VirtFSError.refused("import", path: member.path, "hard link to the root of the tree")
            }
            // The target's metadata is whole before a name of it is made.
            out.settle(all: true)
            let location = try Walker.inside(root, relative: targetParts, path: target)
            let existing = try location.entry()
            guard existing.stat.fileType != .directory else {
                throw VirtFSError.refused("import", path: member.path, "hard link to a directory")
            }
            try removeExisting(name, in: parent, path: display, replacingWith: .regular)
            try codec.link(existing, as: name, in: parent, placement: placement)
            let linked = try codec.decode(HostEntry(directory: parent, name: name, path: display))
            return out.say(.imported(path: display, linked.attributes))
        }

        let attributes = try keepable(member.attributes!, member: member, path: display, out: out)
        // Unprivileged host-inode directories that forbid their owner to write are opened up
        // while members go into them (see `directory(for:)`).
        let content: Content = attributes.type == .regular ? .stream(data) : .empty
        var completion: CreateCompletion
        do {
            // Most names are new: only one that is there already is looked at.
            completion = try codec.begin(attributes, named: name, in: parent, content: content, placement: placement)
        } catch where error.errno == EEXIST {
            // The earlier member of that name is finished before it is replaced.
            out.settle(all: true)
            if try removeExisting(name, in: parent, path: display, replacingWith: attributes.type) {
                // A directory that is already there (named twice, or made for an earlier member).
                try codec.update(attributes, of: HostEntry(directory: parent, name: name, path: display), placement: placement)
                completion = {}
            } else {
                completion = try codec.begin(attributes, named: name, in: parent, content: content, placement: placement)
            }
        }
        let times = member.mtime.map { (atime: member.atime ?? $0, mtime: $0) }
        let finish = { [completion] () throws(VirtFSError) in
            try completion()
            if let times { try Sys.setTimes(parent.fd, name, atime: times.atime, mtime: times.mtime) }
        }
        // A directory is finished at once: what goes into it next may need its metadata.
        if attributes.type == .directory { try finish() }
        out.say(.imported(path: display, attributes), bytes: attributes.type == .regular ? member.size ?? 0 : 0,
                after: attributes.type == .directory ? nil : finish)
    }

    /// The attributes this model can keep, reporting (not failing on) what it drops.
    func keepable(_ attributes: GuestAttributes, member: ArchiveMember, path: [UInt8], out: Output) throws(VirtFSError) -> GuestAttributes {
        for note in member.notes {
            out.say(.warning(.refused("import", path: path, note)))
        }
        let (kept, dropped) = try Self.keepable(attributes, member: member, model: options.model, privileged: privileged)
        if !dropped.isEmpty {
            out.summary.incomplete += 1
            out.say(.warning(.refused("import", path: path, "not kept: " + dropped.joined(separator: ", "))))
        }
        return kept
    }

    /// What of a member's attributes `model` can keep, and what it cannot, in words; throws
    /// when the member cannot exist in this model at all.
    static func keepable(_ attributes: GuestAttributes, member: ArchiveMember, model: SecurityModel,
                         privileged: Bool) throws(VirtFSError) -> (GuestAttributes, dropped: [String]) {
        var kept = attributes
        var dropped = member.unreadable
        for x in member.xattrs where !x.name.starts(with: Array("user.".utf8)) {
            dropped.append("\(Bytes.xattrName(x.name)) (a 9p guest sees only user.* xattrs)")
        }
        let codec = model.codec
        let reserved = kept.xattrs.filter { codec.holdsMetadata(xattr: $0.name) }
        kept.xattrs.removeAll { codec.holdsMetadata(xattr: $0.name) }
        dropped += reserved.map { "\(Bytes.xattrName($0.name)) (reserved by \(model.rawValue))" }
        if kept.type == .symlink, !kept.xattrs.isEmpty || kept.accessACL != nil || kept.defaultACL != nil {
            dropped.append("xattrs and ACLs of a symlink (Linux keeps none)")
            kept.xattrs = []
            kept.accessACL = nil
            kept.defaultACL = nil
        }
        if model == .none, kept.accessACL != nil || kept.defaultACL != nil {
            dropped.append("ACLs (the none model shows none to the guest)")
            kept.accessACL = nil
            kept.defaultACL = nil
        }
        if kept.type != .directory, kept.defaultACL != nil {
            dropped.append("default ACL of a non-directory")
            kept.defaultACL = nil
        }
        if !model.isMapped && !privileged {
            if kept.type.hasDeviceNumber {
                throw VirtFSError.refused("import", path: member.path, "creating device node \(kept.rdev) needs root, or a mapped model")
            }
            // QEMU's none model ignores a chown it cannot do: the guest sees the host owner.
            if kept.uid != geteuid() || kept.gid != getegid() {
                dropped.append("owner \(kept.uid):\(kept.gid) (unprivileged, the none model keeps the host owner)")
                kept.uid = geteuid()
                kept.gid = getegid()
            }
        }
        return (kept, dropped)
    }

    /// Makes room for a member named `name`: removes an earlier member of that name (an
    /// archive may name a path twice; the last one wins, as with tar). Returns true when a
    /// directory is there and the member is a directory too: it is updated, not replaced.
    @discardableResult
    func removeExisting(_ name: [UInt8], in parent: DirectoryContext, path: [UInt8], replacingWith type: FileType) throws(VirtFSError) -> Bool {
        let existing: HostEntry
        do {
            existing = try HostEntry(directory: parent, name: name, path: path)
        } catch let error where error.errno == ENOENT {
            return false
        }
        if existing.stat.fileType == .directory {
            if type == .directory { return true }
            do {
                if let child = try? parent.child(name, path: path) { codec.removeStorage(of: child) }
                try Sys.unlink(parent.fd, name, directory: true)
            } catch {
                guard error.errno == ENOTEMPTY || error.errno == EEXIST else { throw error }
                throw VirtFSError.refused("import", path: path, "would replace a directory that is not empty")
            }
        } else {
            try Sys.unlink(parent.fd, name)
        }
        try codec.removeNameMetadata(of: existing)
        return false
    }

    /// The directory `parts` below the root, opened along the stack of the previous member's
    /// directories; missing ones are created as bsdtar does (0755, owned by root in the guest).
    func directory(for parts: [[UInt8]], root: Walker.Location, stack: inout [Frame], placement: HostPlacement,
                   display: [UInt8], out: Output) throws(VirtFSError) -> DirectoryContext {
        var common = 0
        while common < parts.count && common + 1 < stack.count && stack[common + 1].name == parts[common] {
            common += 1
        }
        // A directory's times are put back once nothing written into it is outstanding.
        if stack.count > common + 1 { out.settle(all: true) }
        while stack.count > common + 1 { stack.removeLast().close() }
        for part in parts[common...] {
            let parent = stack.last!.directory
            let path = Bytes.join(parent.path, part)
            var opened: DirectoryContext
            do {
                opened = try parent.child(part, path: path)
            } catch let error where error.errno == ENOENT {
                let owner: (UInt32, UInt32) = options.model.isMapped || privileged ? (0, 0) : (geteuid(), getegid())
                try codec.create(GuestAttributes(type: .directory, permissions: 0o755, uid: owner.0, gid: owner.1),
                                 named: part, in: parent, content: .empty, placement: placement)
                opened = try parent.child(part, path: path)
            } catch let error where error.errno == ENOTDIR || error.errno == ELOOP {
                out.settle(all: true)
                let type = (try? codec.decode(HostEntry(directory: parent, name: part, path: path)))?.type
                throw VirtFSError.refused("import", path: display,
                    type == .symlink ? "cannot extract through symlink \(Bytes.shellEscaped(path))"
                                     : "\(Bytes.shellEscaped(path)) is not a directory")
            }
            let stat = try Sys.stat(fd: opened.fd)
            var frame = Frame(name: part, directory: opened, times: (stat.atime, stat.mtime))
            if !privileged, !options.model.isMapped, stat.permissions & 0o300 != 0o300 {
                frame.restoreMode = stat.permissions
                try Sys.chmod(opened.fd, dot, mode_t(stat.permissions | 0o700))
            }
            stack.append(frame)
        }
        return stack.last!.directory
    }
}

/// A directory's own name, for the *at() calls on its descriptor.
let dot = [UInt8(ascii: ".")]
