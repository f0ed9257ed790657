import Glibc

/// Reserved names of the mapped-file model: hidden from the guest and refused for its operations.
public enum MappedFileNames {
    public static let metadataDirectory: [UInt8] = Array(".virtfs_metadata".utf8)
    public static let rootMetadata: [UInt8] = Array(".virtfs_metadata_root".utf8)

    public static func isReserved(_ name: [UInt8]) -> Bool {
        name == metadataDirectory || name == rootMetadata
    }
}


/// `security_model=mapped-file`: the guest's uid, gid, mode and rdev in `DIR/.virtfs_metadata/NAME`
/// (the export root's in `.virtfs_metadata_root`); ACLs are real host ACLs.
public struct MappedFileCodec: ModelCodec {
    public var model: SecurityModel { .mappedFile }
    /// Lenient decoding (for checking and repair): a mode without a valid type takes the host
    /// object's instead of failing the entry.
    public var lenient: Bool

    public init(lenient: Bool = false) {
        self.lenient = lenient
    }

    /// Largest metadata file read; QEMU's own files are under 100 bytes.
    static let metadataLimit = 64 * 1024

    /// Where an entry's metadata file is: (directory fd, name) — nil when there is no
    /// `.virtfs_metadata` directory.
    func metadataLocation(of entry: HostEntry) throws(VirtFSError) -> (fd: Int32, name: [UInt8], path: [UInt8])? {
        if entry.isExportRoot {
            return (entry.directory.fd, MappedFileNames.rootMetadata, Bytes.join(entry.directory.path, MappedFileNames.rootMetadata))
        }
        guard let mfd = try entry.directory.metadataDirectory() else { return nil }
        let dir = Bytes.join(entry.directory.path, MappedFileNames.metadataDirectory)
        return (mfd, entry.name, Bytes.join(dir, entry.name))
    }

    /// The metadata file's bytes, nil when QEMU would find none. QEMU opens it with O_NOFOLLOW,
    /// so a symlink in its place reads as no metadata; that is reported, not followed.
    func readMetadata(of entry: HostEntry, diagnostics: inout [VirtFSError]) throws(VirtFSError) -> [UInt8]? {
        guard let location = try metadataLocation(of: entry) else {
            entry.facts?.metadataStat = .some(nil)
            return nil
        }
        let fd: Int32
        do {
            fd = try Sys.openAt(location.fd, location.name, O_RDONLY | VIRTFS_O_NONBLOCK_FLAG)
        } catch let error where error.errno == ENOENT {
            entry.facts?.metadataStat = .some(nil)
            return nil
        } catch let error where error.errno == ELOOP {
            diagnostics.append(VirtFSError.corrupt("openat", path: location.path, "metadata file is a symlink; QEMU ignores it").found(.metadataNotAFile))
            return nil
        } catch let error {
            throw error.at(location.path)
        }
        defer { Sys.close(fd) }
        let st = try Sys.stat(fd: fd)
        // Opened without following a symlink: the same object a stat of the name finds.
        entry.facts?.metadataStat = st
        guard st.fileType == .regular else {
            diagnostics.append(VirtFSError.corrupt("open", path: location.path, "metadata file is a \(st.fileType?.keyword ?? "strange object"); QEMU reads nothing from it").found(.metadataNotAFile))
            return nil
        }
        do {
            let (bytes, truncated) = try Sys.readAll(fd, name: location.path, limit: Self.metadataLimit, regularSize: Int(clamping: st.size))
            if truncated {
                diagnostics.append(VirtFSError.corrupt("read", path: location.path, "metadata file larger than \(Self.metadataLimit) bytes").found(.metadataUnparsable))
            }
            return bytes
        } catch let error {
            throw error.at(location.path)
        }
    }

    public func decode(_ entry: HostEntry) throws(VirtFSError) -> GuestView {
        let hostType = try entry.fileType()
        var view = GuestView(path: entry.path, model: model, host: entry.stat, type: hostType)
        if let bytes = try readMetadata(of: entry, diagnostics: &view.diagnostics) {
            let metadata = MappedFileMetadata.parse(bytes)
            let file = entry.isExportRoot ? MappedFileNames.rootMetadata
                : Bytes.join(MappedFileNames.metadataDirectory, entry.name)
            for deviation in metadata.deviations {
                view.diagnostics.append(VirtFSError.corrupt("parse", path: entry.path, attribute: file, offset: deviation.offset, deviation.description).found(.metadataUnparsable))
            }
            // QEMU assigns the C int to uid_t, gid_t, mode_t and dev_t; a Linux guest keeps
            // the low 32 bits of the device number.
            if let v = metadata.uid { view.attributes.uid = UInt32(bitPattern: v); view.provenance.uid = .metadataFile }
            if let v = metadata.gid { view.attributes.gid = UInt32(bitPattern: v); view.provenance.gid = .metadataFile }
            if let v = metadata.rdev {
                view.attributes.rdev = DeviceNumber(guestKernel: UInt64(UInt32(bitPattern: v)))
                view.provenance.rdev = .metadataFile
            }
            if let v = metadata.mode {
                let mode = UInt32(bitPattern: v)
                try entry.applyMappedMode(mode, from: .metadataFile, attribute: file, shown: "virtfs.mode=\(v) (0\(String(mode, radix: 8)))",
                                          to: &view, hostType: hostType, lenient: lenient)
            }
        }
        try entry.finishMappedView(&view, hostType: hostType)
        try entry.applyXattrs(try entry.xattrNames(), acls: HostACLXattr.bytes, to: &view)
        return view
    }

    /// The metadata QEMU writes for an object with these attributes.
    public static func metadata(for attributes: GuestAttributes) -> MappedFileMetadata {
        MappedFileMetadata(
            uid: Int32(bitPattern: attributes.uid),
            gid: Int32(bitPattern: attributes.gid),
            mode: Int32(bitPattern: attributes.mode),
            rdev: attributes.type.isSpecial
                ? Int32(truncatingIfNeeded: attributes.type.hasDeviceNumber ? attributes.rdev.glibc : 0) : nil
        )
    }

    /// Values a metadata file cannot carry: QEMU writes each field as a C int and leaves out a
    /// field that is -1 (its "unset"), so the guest would see the host object's value instead.
    public func cannotHold(_ attributes: GuestAttributes, name: [UInt8]?) -> [String] {
        var why: [String] = []
        for (field, id, host) in [("uid", attributes.uid, "owner's"), ("gid", attributes.gid, "group's")] where id == UInt32.max {
            why.append("\(field) 4294967295 is -1 in a metadata file, which QEMU reads as no \(field): the guest would see the host \(host)")
        }
        if attributes.type.hasDeviceNumber {
            let dev = attributes.rdev.glibc
            if dev > 0xffff_ffff {
                why.append("device \(attributes.rdev) does not fit in the 32-bit int a metadata file keeps")
            } else if dev == 0xffff_ffff {
                why.append("device \(attributes.rdev) is makedev() -1, which QEMU stores as no rdev: the guest would see 0,0")
            }
        }
        if let name, MappedFileNames.isReserved(name) {
            why.append("the name is reserved by mapped-file for its metadata: QEMU hides it from the guest")
        }
        return why
    }

    public func begin(_ attributes: GuestAttributes, named name: [UInt8], in directory: DirectoryContext,
                      content: Content, placement: HostPlacement) throws(VirtFSError) -> CreateCompletion {
        // (Placed now: the second thread of an import has the metadata file to make.)
        let entry = try createMappedHostObject(attributes, named: name, in: directory, content: content, placement: placement)()
        return { () throws(VirtFSError) in try write(attributes, to: entry, placement: placement, fresh: true) }
    }

    public func update(_ attributes: GuestAttributes, of entry: HostEntry, placement: HostPlacement) throws(VirtFSError) {
        try write(attributes, to: entry, placement: placement)
    }

    /// The metadata file goes last: its presence marks an entry whose metadata is complete,
    /// which is what an interrupted virtfs-convert relies on.
    func write(_ attributes: GuestAttributes, to entry: HostEntry, placement: HostPlacement, fresh: Bool = false) throws(VirtFSError) {
        // Guest ACLs are host ACLs here; setting one makes the host group bits its mask, as it
        // does when the guest sets it through QEMU. (`fresh` only where nothing is inherited: a
        // new object takes the default ACL of its directory, which the guest view may not have.)
        try writeACLs(attributes, to: entry, accessName: HostACLXattr.bytes.access, defaultName: HostACLXattr.bytes.default,
                      fresh: fresh && placement.inheritsNoACL)
        try writeUserXattrs(attributes, to: entry, refusingVirtfs: false)
        try writeMetadataFile(Self.metadata(for: attributes).serialized(), for: entry, placement: placement, fresh: fresh)
    }

    /// An id of -1 is no id, and a device number is kept only on the types mknod makes.
    public func keeps(_ attributes: GuestAttributes, host: HostStat) -> Bool {
        let m = Self.metadata(for: attributes)
        func read(_ v: Int32?, _ fallback: UInt32) -> UInt32 { v.flatMap { $0 == -1 ? nil : UInt32(bitPattern: $0) } ?? fallback }
        let rdev = m.rdev.flatMap { $0 == -1 ? nil : DeviceNumber(guestKernel: UInt64(UInt32(bitPattern: $0))) } ?? host.rdev
        return read(m.uid, host.uid) == attributes.uid && read(m.gid, host.gid) == attributes.gid
            && read(m.mode, host.mode) == attributes.mode && rdev == attributes.rdev
    }

    public var keepsMetadataByName: Bool { true }
    public var storageDescription: String { "a .virtfs_metadata file" }

    /// Guest ACLs are host ACLs, whose owner entry a host chmod changes, and each name of a
    /// hard-linked inode may have metadata of its own, through which the shared host owner shows.
    public func hostShowsThrough(_ attributes: GuestAttributes, host: HostStat) -> Bool {
        attributes.accessACL != nil || (host.nlink > 1 && host.fileType != .directory)
    }

    /// The host ACL is the guest's, so its mask stays the group bits.
    public func settle(_ entry: HostEntry, names: [[UInt8]], placement: HostPlacement?) throws(VirtFSError) {
        if let placement { try entry.place(placement, acl: decode(entry).attributes.accessACL) }
    }

    /// mapped-file keeps a root's metadata in the root and anything else's in its parent: a
    /// directory operand is a root when it says so, or when walked recursively from a parent
    /// that is not part of a mapped-file tree.
    static func isExportRoot(_ operand: [UInt8], recursive: Bool) -> Bool {
        func exists(_ path: [UInt8]) -> Bool { Sys.withCString(path) { access($0, F_OK) } == 0 }
        return exists(Bytes.join(operand, MappedFileNames.rootMetadata))
            || (recursive && !exists(Bytes.join(Bytes.join(operand, Array("..".utf8)), MappedFileNames.metadataDirectory)))
    }
    public func holdsMetadata(_ name: [UInt8]) -> Bool { MappedFileNames.isReserved(name) }

    /// Whether the entry has a metadata file (regular or not).
    public func hasMetadata(_ entry: HostEntry) -> Bool { metadataStat(of: entry) != nil }

    public func metadataFile(of entry: HostEntry) -> [[UInt8]]? {
        entry.isExportRoot ? [MappedFileNames.rootMetadata] : [MappedFileNames.metadataDirectory, entry.name]
    }

    public func metadataStat(of entry: HostEntry) -> HostStat? {
        if let known = entry.facts?.metadataStat { return known }
        guard let location = try? metadataLocation(of: entry) else { return nil }
        return try? Sys.stat(location.fd, location.name)
    }

    public func storageStat(inside directory: HostEntry) -> (name: [UInt8], stat: HostStat)? {
        let inner = directory.name + [UInt8(ascii: "/")] + MappedFileNames.metadataDirectory
        guard let st = try? Sys.stat(directory.directory.fd, inner), st.fileType == .directory else { return nil }
        return (MappedFileNames.metadataDirectory, st)
    }

    /// Linked under a temporary name, then renamed over: the name has its old metadata or the
    /// shared one, never none.
    public func shareMetadata(of sourceName: [UInt8], in sourceDirectory: DirectoryContext, with name: [UInt8],
                              in directory: DirectoryContext, placement: HostPlacement) throws(VirtFSError) -> Bool {
        guard let source = try sourceDirectory.metadataDirectory() else { return false }
        try linkMetadata(source, sourceName, as: name, in: directory, placement: placement)
        return true
    }

    /// Links the metadata file `sourceName` of `source` (a `.virtfs_metadata` fd) as `name`'s
    /// in `directory`: under a temporary name first, then renamed over whatever had the name.
    /// Returns the `.virtfs_metadata` it is linked into.
    @discardableResult
    func linkMetadata(_ source: Int32, _ sourceName: [UInt8], as name: [UInt8], in directory: DirectoryContext,
                      placement: HostPlacement) throws(VirtFSError) -> Int32 {
        let target = try directory.makeMetadataDirectory(placement: placement)
        let temporary = TemporaryName.named("link")
        try? Sys.unlink(target, temporary)
        try Sys.link(source, sourceName, target, temporary)
        try Sys.rename(target, temporary, target, name)
        return target
    }

    /// Removes the entry's metadata file, if any.
    public func removeMetadata(of entry: HostEntry) throws(VirtFSError) {
        guard let location = try metadataLocation(of: entry) else { return }
        do {
            try Sys.unlink(location.fd, location.name)
        } catch let error where error.errno == ENOENT {
        } catch let error {
            throw error.at(location.path)
        }
    }

    /// The metadata file first: until the data follows, it describes the old object equally.
    public func commitTemporary(_ temporary: [UInt8], as name: [UInt8], in directory: DirectoryContext, dataFirst: Bool = false) throws(VirtFSError) {
        if dataFirst { try Sys.rename(directory.fd, temporary, directory.fd, name) }
        if let mfd = try directory.metadataDirectory() {
            do {
                try Sys.rename(mfd, temporary, mfd, name)
            } catch {
                guard error.errno == ENOENT else { throw error }
                do { try Sys.unlink(mfd, name) } catch { guard error.errno == ENOENT else { throw error } }
            }
        }
        if !dataFirst { try Sys.rename(directory.fd, temporary, directory.fd, name) }
    }

    /// The `.virtfs_metadata` directory, when empty.
    public func removeStorage(of directory: DirectoryContext) {
        try? Sys.unlink(directory.fd, MappedFileNames.metadataDirectory, directory: true)
    }

    public func discardTemporary(_ temporary: [UInt8], in directory: DirectoryContext) {
        try? Sys.unlink(directory.fd, temporary)
        if let mfd = try? directory.metadataDirectory() { try? Sys.unlink(mfd, temporary) }
    }

    /// Metadata files written under a temporary name and never renamed into place.
    public func discardTemporaries(in directory: DirectoryContext) {
        guard let mfd = try? directory.metadataDirectory() else { return }
        var names: [[UInt8]] = []
        try? Sys.forEachName(in: mfd) { name, _ in
            if TemporaryName.matches(name) { names.append(name) }
            return true
        }
        for name in names { try? Sys.unlink(mfd, name) }
    }

    /// Replaces the metadata file atomically, written whole before it has the name
    /// (`Sys.writeWhole`; QEMU itself rewrites in place). The old inode is never written, so a
    /// metadata file that also has a name outside the tree (a hard link to a host file) keeps
    /// its content there. A metadata file shared by hard links inside the
    /// tree (QEMU links it with the data) gets the new file under each of those names first, so
    /// the names stay one guest inode; that needs the writer's census (`placement.links`).
    func writeMetadataFile(_ bytes: [UInt8], for entry: HostEntry, placement: HostPlacement, fresh: Bool = false) throws(VirtFSError) {
        let dirfd = entry.isExportRoot ? entry.directory.fd : try entry.directory.makeMetadataDirectory(placement: placement)
        let name = entry.isExportRoot ? MappedFileNames.rootMetadata : entry.name
        let temporary = TemporaryName.current
        let path = entry.isExportRoot ? Bytes.join(entry.directory.path, name)
            : Bytes.join(Bytes.join(entry.directory.path, MappedFileNames.metadataDirectory), name)
        /// 0600 and the placement's owner, asked for only when creation gave something else
        /// (or may have); then the content, in one call, so that a file with content has them.
        func fill(_ fd: Int32) throws(VirtFSError) {
            if !placement.creationIsExact {
                let st = try Sys.stat(fd: fd)
                if st.permissions != 0o600 { _ = try Sys.retry("fchmod", name) { fchmod(fd, 0o600) } }
                if let owner = placement.owner, st.uid != owner.uid || st.gid != owner.gid {
                    _ = try Sys.retry("fchown", name) { fchown(fd, owner.uid, owner.gid) }
                }
            }
            try Sys.writeAll(fd, bytes, name: name)
            if placement.syncEachFile { _ = try Sys.retry("fsync", name) { fsync(fd) } }
        }
        do throws(VirtFSError) {
            // A new object's metadata file is written in place, as QEMU writes it: until it is
            // whole the object shows its host values, as it did without one. One already there
            // (left by anyone) is replaced whole, as every update is.
            if fresh || placement.metadataFileInPlace, let fd = try? Sys.openAt(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600) {
                defer { Sys.close(fd) }
                do { return try fill(fd) } catch {
                    try? Sys.unlink(dirfd, name)
                    throw error
                }
            }
            // (Only a writer with the census does anything with the file it replaces.)
            guard let links = placement.links, let existing = try? Sys.stat(dirfd, name) else {
                return try Sys.writeWhole(dirfd, name, via: temporary, fill: fill)
            }
            try Sys.writeWhole(dirfd, name, via: temporary, fill: fill) { () throws(VirtFSError) in
                if existing.fileType == .regular && existing.nlink > 1 {
                    try replaceOtherNames(of: existing, with: temporary, in: dirfd, name: name, links: links)
                }
            }
            if let written = try? Sys.stat(dirfd, name) { links.moved(existing.identity, to: written.identity) }
        } catch let error {
            throw error.at(path)
        }
    }

    /// Puts the new metadata file (`temporary` in `dirfd`) in place of every other name the old
    /// one has inside the tree: linked to a second temporary name beside it, renamed over.
    func replaceOtherNames(of old: HostStat, with temporary: [UInt8], in dirfd: Int32, name: [UInt8], links: LinkCensus) throws(VirtFSError) {
        let here = try Sys.stat(fd: dirfd).identity
        let second = TemporaryName.named("link")
        for parts in links.namesInside(old) {
            let other = try Walker.inside(links.root, relative: parts, path: Bytes.join(links.root.path, parts.reduce([]) { Bytes.join($0, $1) }))
            let otherDirectory = try Sys.stat(fd: other.directory.fd).identity
            if otherDirectory == here && other.name == name { continue }
            // Only names that still are the old file: the census may be older than the tree.
            guard let st = try? Sys.stat(other.directory.fd, other.name), st.identity == old.identity else { continue }
            try? Sys.unlink(other.directory.fd, second)
            try Sys.link(dirfd, temporary, other.directory.fd, second)
            try Sys.rename(other.directory.fd, second, other.directory.fd, other.name)
        }
    }

    /// mapped-file: a `.virtfs_metadata/NAME` whose NAME is gone is stale metadata; it also keeps
    /// the guest from removing the directory.
    public func audit(_ directory: DirectoryContext, report failure: (VirtFSError) -> Void) {
        let metadataPath = Bytes.join(directory.path, MappedFileNames.metadataDirectory)
        do {
            guard let mfd = try directory.metadataDirectory() else { return }
            try Sys.forEachName(in: mfd, path: metadataPath) { name, _ in
                if holdsMetadata(name) {
                    failure(VirtFSError.corrupt("lookup", path: Bytes.join(metadataPath, name), "metadata for a reserved name, which the guest can never use").found(.metadataForReservedName))
                    return true
                }
                if directory.wasListed(name) { return true }
                do throws(VirtFSError) {
                    _ = try Sys.stat(directory.fd, name)
                } catch let error where error.errno == ENOENT {
                    failure(VirtFSError.corrupt("lookup", path: Bytes.join(metadataPath, name), "metadata for a missing entry (stale; blocks the guest's rmdir)").found(.metadataOrphaned))
                } catch let error {
                    failure(error.at(Bytes.join(metadataPath, name)))
                }
                return true
            }
        } catch let error {
            failure(error)
        }
    }

    /// QEMU links the metadata file with the data, so both names share one metadata file. Its
    /// new name is made first (QEMU makes it second): a crash in between leaves an orphaned
    /// metadata file, never a name without its metadata.
    public func link(_ entry: HostEntry, as newName: [UInt8], in newDirectory: DirectoryContext, placement: HostPlacement) throws(VirtFSError) {
        let newPath = Bytes.join(newDirectory.path, newName)
        do throws(VirtFSError) {
            if MappedFileNames.isReserved(newName) { throw .system("linkat", path: newPath, errno: EINVAL) }
            if (try? Sys.stat(newDirectory.fd, newName)) != nil { throw .system("linkat", path: newPath, errno: EEXIST) }
            var linked: Int32?
            if let source = try metadataFile(entry.name, in: entry.directory) {
                // Over whatever orphan had the name.
                linked = try linkMetadata(source, entry.name, as: newName, in: newDirectory, placement: placement)
            } else if let stale = try metadataFile(newName, in: newDirectory) {
                // An orphan of that name would become the new link's metadata: the source has none.
                try Sys.unlink(stale, newName)
            }
            do {
                try Sys.link(entry.directory.fd, entry.name, newDirectory.fd, newName)
            } catch {
                if let linked { try? Sys.unlink(linked, newName) }
                throw error
            }
        } catch let error {
            throw error.at(newPath)
        }
    }
}

extension DirectoryContext {
    /// The `.virtfs_metadata` directory below this one, or nil when there is none. Like QEMU,
    /// a symlink in its place is not followed (and so is not metadata).
    public func metadataDirectory() throws(VirtFSError) -> Int32? {
        try metadataLock.withLock { _ throws(VirtFSError) in try openMetadataDirectory() }
    }

    private func openMetadataDirectory() throws(VirtFSError) -> Int32? {
        switch metadata {
        case .open(let mfd): return mfd
        case .absent: return nil
        case .unknown:
            do {
                let mfd = try Sys.openDirectory(fd, MappedFileNames.metadataDirectory)
                metadata = .open(mfd)
                return mfd
            } catch let error where error.errno == ENOENT {
                metadata = .absent
                return nil
            } catch let error {
                throw error.at(Bytes.join(path, MappedFileNames.metadataDirectory))
            }
        }
    }

    /// The `.virtfs_metadata` directory, created (0700, like QEMU) when missing.
    public func makeMetadataDirectory(placement: HostPlacement) throws(VirtFSError) -> Int32 {
        try metadataLock.withLock { _ throws(VirtFSError) in try makeMetadataDirectoryLocked(placement: placement) }
    }

    private func makeMetadataDirectoryLocked(placement: HostPlacement) throws(VirtFSError) -> Int32 {
        if let mfd = try openMetadataDirectory() { return mfd }
        do {
            try Sys.mkdir(fd, MappedFileNames.metadataDirectory, 0o700)
            try Sys.chmod(fd, MappedFileNames.metadataDirectory, 0o700)
            if let owner = placement.owner {
                try Sys.chown(fd, MappedFileNames.metadataDirectory, owner.uid, owner.gid)
            }
        } catch {
            // Raced with another writer; open what is there.
            guard error.errno == EEXIST else { throw error }
        }
        metadata = .unknown
        guard let mfd = try openMetadataDirectory() else {
            throw VirtFSError.system("mkdirat", path: Bytes.join(path, MappedFileNames.metadataDirectory), errno: ENOENT)
        }
        return mfd
    }
}

let VIRTFS_O_NONBLOCK_FLAG: Int32 = O_NONBLOCK
