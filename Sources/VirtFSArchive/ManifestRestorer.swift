import CArchive
import Glibc
import VirtFSCore

/// Puts the guest view recorded in an mtree(5) manifest, or in the archive the tree came from
/// (tar, pax, cpio), back onto an existing tree: the repair after a `cp` or `rsync` that lost
/// the model's metadata. An entry is restored only when its host object still holds what the
/// manifest describes (type as the model stores it; a file's size, and its sha256 in a manifest
/// or its every byte, compared as the member streams by, in an archive; a symlink's target);
/// entries that differ or are missing are reported and left alone. An archive that records
/// user xattrs and ACLs puts them back too; a manifest records none, and those on the tree
/// are kept as they are. A hard link the archive records and a copy broke is made again, by
/// rename, when both names still hold the same data.
public struct ManifestRestorer {
    public struct Options: Sendable {
        public var model: SecurityModel
        public var placement = HostPlacement()
        public var dryRun = false

        public init(model: SecurityModel) {
            self.model = model
        }
    }

    public struct Summary: Sendable {
        public var restored = 0
        public var unchanged = 0
        public var differing = 0
        public var missing = 0
        public var failures = 0
        /// Entries restored without something the archive records that the model cannot keep.
        public var incomplete = 0
        /// Names the archive records as hard links of another that the tree held as a separate
        /// file of the same content: made hard links again (counted in `restored` too).
        public var relinked = 0
        /// Entries left alone because their inode has names outside the tree: changing it would
        /// change a file outside the tree.
        public var linkedOutside = 0
    }

    public enum Event {
        /// The entry's guest view was (or, dry-run, would be) changed to the manifest's.
        case restored(path: [UInt8], before: GuestAttributes, after: GuestAttributes)
        case unchanged(path: [UInt8])
        case differs(VirtFSError)
        case missing(VirtFSError)
        case failed(VirtFSError)
        /// Restored, without something the model cannot keep (named).
        case incomplete(VirtFSError)
        /// A hard link the tree had lost (the name was a separate copy), made again (or, dry
        /// run, to be made again).
        case relinked(path: [UInt8], target: [UInt8])
        /// Said once about the member, counted nowhere (an ACL name resolved by the host).
        case note(VirtFSError)
    }

    public let options: Options
    let privileged = geteuid() == 0

    public init(options: Options) {
        self.options = options
    }

    public func run(_ manifest: ArchiveReader, onto root: Walker.Location, event: (Event) -> Void) -> Summary {
        var summary = Summary()
        let codec = options.model.codec(lenient: true)
        let outside = linkedOutside(root) { summary.failures += 1; event(.failed($0)) }
        // SVR4 cpio (newc, what cpio -H newc and initramfs use) stores a hard-linked file's data
        // with its last name: the earlier names come without it, and are checked and restored
        // when it comes. Only such names are held.
        var pending: [[UInt8]: ArchiveMember] = [:]
        // Files whose data is not the archive's: a later hard link of one is not its copy.
        var differed = Set<[UInt8]>()
        manifest.forEach({ member in
            if manifest.isCpio, member.hardlinkTarget == nil, member.type == .regular, member.size == 0, member.links > 1 {
                pending[member.path] = member
                return
            }
            if let target = member.hardlinkTarget, var first = pending.removeValue(forKey: target) {
                first.size = member.size
                restore(first, manifest: manifest, root: root, codec: codec, outside: outside, differed: &differed, summary: &summary, event: event)
            }
            restore(member, manifest: manifest, root: root, codec: codec, outside: outside, differed: &differed, summary: &summary, event: event)
        }, failure: { error in
            summary.failures += 1
            event(.failed(error))
        })
        for (path, _) in pending.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            summary.differing += 1
            event(.differs(.refused("restore", path: path, "a hard-linked cpio member whose data the archive never gave: not checked, left alone")))
        }
        return summary
    }

    /// Restores one entry from its member, or says why not.
    func restore(_ member: ArchiveMember, manifest: ArchiveReader, root: Walker.Location, codec: any ModelCodec,
                 outside: [FileIdentity: UInt64], differed: inout Set<[UInt8]>, summary: inout Summary, event: (Event) -> Void) {
        do throws(VirtFSError) {
            guard let entry = try Self.entry(member.path, of: member, in: root) else {
                summary.missing += 1
                return event(.missing(.refused("restore", path: member.path, "in the \(manifest.isManifest ? "manifest" : "archive"), not in the tree")))
            }
            if entry.stat.fileType != .directory, let names = outside[entry.stat.identity] {
                summary.linkedOutside += 1
                event(.differs(.refused("restore", path: member.path, "its inode has \(entry.stat.nlink) links, \(names) of them in the tree: a hard link from outside the tree, left alone")))
                return
            }
            let current = try codec.decode(entry)
            var restored: GuestAttributes
            if let target = member.hardlinkTarget {
                if differed.contains(target) {
                    summary.differing += 1
                    differed.insert(member.path)
                    event(.differs(.refused("restore", path: member.path, "a hard link of \(String(decoding: target, as: UTF8.self)), whose data is not the archive's")))
                    return
                }
                guard let linked = try relink(member, target: target, entry: entry, root: root, codec: codec,
                                              summary: &summary, event: event) else { return }
                restored = linked
            } else {
                guard let wanted = member.attributes else {
                    throw VirtFSError.corrupt(manifest.isManifest ? "mtree" : "archive", path: member.path, "no type for this entry")
                }
                if let difference = try difference(member, wanted, entry, archive: manifest.isManifest ? nil : manifest) {
                    summary.differing += 1
                    if !manifest.isManifest && wanted.type == .regular { differed.insert(member.path) }
                    event(.differs(.refused("restore", path: member.path, difference)))
                    return
                }
                restored = current.attributes
                restored.type = wanted.type
                restored.uid = wanted.uid
                restored.gid = wanted.gid
                restored.rdev = wanted.type.hasDeviceNumber ? wanted.rdev : .zero
                restored.symlinkTarget = wanted.symlinkTarget
                if wanted.type == .symlink {
                    restored.accessACL = nil
                    restored.defaultACL = nil
                    restored.xattrs = []
                }
                // An archive member that records xattrs or ACLs says what they are; one that
                // records none (a manifest never does) leaves the tree's as they are.
                if !manifest.isManifest, !member.xattrs.isEmpty || member.accessACL != nil || member.defaultACL != nil || !member.unreadable.isEmpty {
                    for note in member.notes { event(.note(.refused("restore", path: member.path, note))) }
                    let (kept, dropped) = try Importer.keepable(wanted, member: member, model: options.model, privileged: privileged)
                    restored.xattrs = kept.xattrs
                    restored.accessACL = kept.accessACL
                    restored.defaultACL = kept.defaultACL
                    if !dropped.isEmpty {
                        summary.incomplete += 1
                        event(.incomplete(.refused("restore", path: member.path, "not kept: " + dropped.joined(separator: ", "))))
                    }
                }
                // The manifest's mode is the guest's: an ACL kept from the tree follows it.
                restored = restored.changingPermissions(wanted.permissions)
            }
            let mtime = member.mtime.flatMap { $0 == current.host.mtime ? nil : $0 }
            if restored == current.attributes && !current.hostFallback && mtime == nil {
                summary.unchanged += 1
                event(.unchanged(path: member.path))
                return
            }
            if !options.dryRun {
                // Only a time to put back (a copy that kept the metadata files): the
                // metadata is not rewritten.
                if restored != current.attributes || current.hostFallback {
                    try codec.update(restored, of: entry, placement: options.placement)
                }
                if let mtime {
                    try Sys.setTimes(entry.directory.fd, entry.name, atime: current.host.atime, mtime: mtime)
                }
            }
            summary.restored += 1
            event(.restored(path: member.path, before: current.attributes, after: restored))
        } catch {
            summary.failures += 1
            event(.failed(error.path.isEmpty ? error.at(member.path) : error))
        }
    }

    /// The inodes of the tree that have names outside it (a hard link count above the names the
    /// tree holds), with the count of those inside: a restore that changed one (in passthrough
    /// its owner and mode, in mapped-xattr its xattrs) would change a file outside the tree,
    /// such as a host file a guest linked in. Only hard-linked inodes are held.
    func linkedOutside(_ root: Walker.Location, failure: (VirtFSError) -> Void) -> [FileIdentity: UInt64] {
        var names: [FileIdentity: (inside: UInt64, links: UInt64)] = [:]
        var walk = Walker.Options(recursive: true, model: options.model)
        walk.auditStorage = false
        Walker(options: walk).walk(root, visit: { entry in
            let stat = entry.stat
            guard stat.fileType != .directory, stat.nlink > 1 else { return }
            names[stat.identity, default: (0, stat.nlink)].inside += 1
        }, failure: failure)
        return names.filter { $0.value.inside < $0.value.links }.mapValues(\.inside)
    }

    /// The guest view an archive's hard link member gives its name: that of the entry it links
    /// to, as restored before it. The tree's name must still be that entry, or (a copy that
    /// broke the link) a file of the same content, which is made a hard link of it again. nil
    /// when it is neither (reported), or when it has just been linked again (nothing left to do).
    func relink(_ member: ArchiveMember, target: [UInt8], entry: HostEntry, root: Walker.Location, codec: any ModelCodec,
                summary: inout Summary, event: (Event) -> Void) throws(VirtFSError) -> GuestAttributes? {
        guard let linked = try Self.entry(target, of: member, in: root) else {
            summary.missing += 1
            event(.missing(.refused("restore", path: member.path, "hard link of \(String(decoding: target, as: UTF8.self)), which is not in the tree")))
            return nil
        }
        let view = try codec.decode(linked)
        if entry.stat.identity != linked.stat.identity {
            guard entry.stat.fileType == linked.stat.fileType, entry.stat.size == linked.stat.size, try sameContent(entry, linked) else {
                summary.differing += 1
                event(.differs(.refused("restore", path: member.path, "content differs from \(String(decoding: target, as: UTF8.self)), of which the archive has it as a hard link")))
                return nil
            }
            if !options.dryRun { try link(entry, to: linked, codec: codec) }
            summary.relinked += 1
            summary.restored += 1
            event(.relinked(path: member.path, target: target))
            return nil
        }
        return view.attributes
    }

    /// The tree's entry at `path` (the member's name, or the target of the hard link it is),
    /// nil when the tree has no such name.
    static func entry(_ path: [UInt8], of member: ArchiveMember, in root: Walker.Location) throws(VirtFSError) -> HostEntry? {
        let parts = try Importer.components(of: path, in: member.path, path == member.path ? "path" : "hard link target")
        do {
            return try Walker.inside(root, relative: parts, path: path).entry()
        } catch where error.errno == ENOENT {
            return nil
        }
    }

    /// Replaces `entry`'s name by a hard link of `linked` in one rename, so that the name is
    /// always one file or the other; in mapped-file the name's metadata file becomes a link of
    /// the other's first, as QEMU keeps it (a run killed in between leaves a temporary, which
    /// virtfs-fsck reports, and the name with the metadata it is being given anyway).
    func link(_ entry: HostEntry, to linked: HostEntry, codec: any ModelCodec) throws(VirtFSError) {
        let parent = entry.directory
        let temporary = TemporaryName.current
        // The directory's mtime, restored before its entries, is the archive's: keep it.
        let times = try Sys.stat(fd: parent.fd)
        defer { try? Sys.setTimes(parent.fd, dot, atime: times.atime, mtime: times.mtime) }
        try codec.link(linked, as: temporary, in: parent, placement: options.placement)
        try codec.commitTemporary(temporary, as: entry.name, in: parent, dataFirst: false)
    }

    func sameContent(_ a: HostEntry, _ b: HostEntry) throws(VirtFSError) -> Bool {
        let fa = try Sys.openAt(a.directory.fd, a.name, O_RDONLY | O_NONBLOCK)
        defer { Sys.close(fa) }
        let fb = try Sys.openAt(b.directory.fd, b.name, O_RDONLY | O_NONBLOCK)
        defer { Sys.close(fb) }
        var x = [UInt8](repeating: 0, count: 1 << 16), y = x
        while true {
            let n = try readFull(fa, into: &x, count: x.count, path: a.path), m = try readFull(fb, into: &y, count: y.count, path: b.path)
            if n != m || memcmp(x, y, n) != 0 { return false }
            if n == 0 { return true }
        }
    }

    /// How the host object differs from what the manifest describes, in the model's storage
    /// terms; nil when it holds the same thing.
    func difference(_ member: ArchiveMember, _ wanted: GuestAttributes, _ entry: HostEntry, archive: ArchiveReader?) throws(VirtFSError) -> String? {
        guard let host = entry.stat.fileType else { return "unknown host file type" }
        let expectedHost: FileType = options.model.isMapped ? (wanted.type == .directory ? .directory : .regular) : wanted.type
        if host != expectedHost {
            return "the manifest has a \(wanted.type.keyword), stored as a host \(expectedHost.keyword) in \(options.model.rawValue); the tree has a host \(host.keyword)"
        }
        switch wanted.type {
        case .regular:
            if let size = member.size, size != entry.stat.size {
                return "content differs: \(entry.stat.size) bytes, the manifest has \(size)"
            }
            if let digest = member.sha256, try sha256(entry) != digest {
                return "content differs: sha256 does not match the manifest"
            }
            if let archive {
                let fd = try Sys.openAt(entry.directory.fd, entry.name, O_RDONLY | O_NONBLOCK)
                defer { Sys.close(fd) }
                if try !archive.dataEquals(fd, path: entry.path) {
                    return "content differs from the archive's"
                }
            }
        case .symlink:
            let target = options.model.isMapped ? try entry.readContent(limit: 4096).bytes : try entry.readLink()
            if target != (member.symlinkTarget ?? []) {
                return "symlink target differs: \(Bytes.shellEscaped(target)), the manifest has \(Bytes.shellEscaped(member.symlinkTarget ?? []))"
            }
        case .characterDevice, .blockDevice:
            if !options.model.isMapped && entry.stat.rdev != wanted.rdev {
                return "device \(entry.stat.rdev), the manifest has \(wanted.rdev)"
            }
        default:
            break
        }
        return nil
    }

    func sha256(_ entry: HostEntry) throws(VirtFSError) -> [UInt8] {
        let fd = try Sys.openAt(entry.directory.fd, entry.name, O_RDONLY | O_NONBLOCK)
        defer { Sys.close(fd) }
        guard let context = EVP_MD_CTX_new() else { throw VirtFSError.system("EVP_MD_CTX_new", path: entry.path, errno: ENOMEM) }
        defer { EVP_MD_CTX_free(context) }
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while case let n = try readFull(fd, into: &buffer, count: buffer.count, path: entry.path), n > 0 {
            EVP_DigestUpdate(context, buffer, n)
        }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return Array(digest.prefix(Int(length)))
    }
}

extension ManifestRestorer {
    /// `run` in an empty working directory: libarchive's mtree reader looks for each entry's
    /// file relative to the working directory (and follows symlinks there).
    public func runIsolated(_ manifest: ArchiveReader, onto root: Walker.Location, event: (Event) -> Void) throws(VirtFSError) -> Summary {
        let saved = try Sys.enterEmptyDirectory()
        defer { Sys.returnToDirectory(saved) }
        return run(manifest, onto: root, event: event)
    }
}
