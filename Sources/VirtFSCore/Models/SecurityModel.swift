/// QEMU's `security_model=` values for the 9p `local` backend, spelled as QEMU spells them.
public enum SecurityModel: String, Sendable, CaseIterable, Codable {
    case passthrough
    case none
    case mappedXattr = "mapped-xattr"
    case mappedFile = "mapped-file"

    /// Accepts QEMU's alias `mapped` for `mapped-xattr`.
    public init?(name: String) {
        self.init(rawValue: name == "mapped" ? "mapped-xattr" : name)
    }

    /// Models that keep guest metadata beside the host object rather than in it.
    public var isMapped: Bool { self == .mappedXattr || self == .mappedFile }

    /// The codecs of the models that keep metadata beside the host object.
    static let mappedCodecs: [any ModelCodec] = allCases.filter(\.isMapped).map(\.codec)

    /// The mapped model whose storage a directory entry named `name` is, if any.
    static func storing(name: [UInt8]) -> SecurityModel? { mappedCodecs.first { $0.holdsMetadata(name) }?.model }

    /// The one codec for this model.
    public var codec: any ModelCodec { codec(lenient: false) }

    /// The codec, lenient for checking and repair: corrupt values are diagnostics, never
    /// failures, so that every entry has a view to repair towards.
    public func codec(lenient: Bool) -> any ModelCodec {
        switch self {
        case .passthrough: return HostInodeCodec(model: .passthrough)
        case .none: return HostInodeCodec(model: .none)
        case .mappedXattr: return MappedXattrCodec(lenient: lenient)
        case .mappedFile: return MappedFileCodec(lenient: lenient)
        }
    }
}

/// How host objects created for a mapped model are owned and protected, so that the user QEMU
/// runs as can reach them (QEMU's own `fmode=`/`dmode=` defaults are 0600/0700).
public struct HostPlacement: Sendable {
    public var fileMode: UInt32
    public var directoryMode: UInt32
    /// Host owner to give created objects; nil leaves them owned by the invoking user.
    public var owner: (uid: UInt32, gid: UInt32)?
    /// The tree's multiply-linked names, when the writer took them: a metadata file shared by
    /// hard links is then replaced under every name it has in the tree (and none outside).
    public var links: LinkCensus?
    /// Flush each metadata file to disk (fsync) before it is renamed into place. A writer that
    /// makes its work durable in batches (virtfs-convert: syncfs at checkpoints) turns it off;
    /// the order of the steps, which is what an interrupted run relies on, is the same.
    public var syncEachFile = true
    /// A missing metadata file is written under its own name, as QEMU writes it, not whole
    /// aside first: for a writer to whom an empty one counts for nothing (virtfs-convert).
    public var metadataFileInPlace = false
    /// No directory of the tree has a default ACL, so an object made in it inherits no ACL: a
    /// writer that knows it (an import that saw none) removes none from what it creates.
    public var inheritsNoACL = false
    /// Creation gives every new object exactly the mode asked for (the placement's, a metadata
    /// file's 0600) and the placement's owner: no default ACL, umask bit or set-group-ID
    /// directory changes them. A writer that has shown it (an import, `Importer.run`) sets it;
    /// what it creates is then not stat'ed to find out what it got.
    public var creationIsExact = false

    public init(fileMode: UInt32 = 0o600, directoryMode: UInt32 = 0o700, owner: (uid: UInt32, gid: UInt32)? = nil,
                links: LinkCensus? = nil) {
        self.fileMode = fileMode
        self.directoryMode = directoryMode
        self.owner = owner
        self.links = links
    }
}

/// What a codec found odd in how an entry is stored: facts about the host, which the Checker
/// alone turns into checks, severities and repairs.
public enum StorageFinding: Sendable, Equatable {
    /// A metadata value QEMU ignores: the guest sees the host's value instead.
    case valueIgnored
    /// A metadata value QEMU reads with undefined bytes: no one can say what the guest sees.
    case valueUndefined
    /// A stored mode without a valid file type.
    case modeWithoutType
    /// A stored file type the host object cannot serve.
    case typeContradictsHost
    /// A metadata file QEMU reads other than it was written (unparsable lines, oversized).
    case metadataUnparsable
    /// Something other than a regular file where the metadata file belongs.
    case metadataNotAFile
    /// An ACL the guest kernel rejects.
    case aclRejected
    /// Metadata kept for a name that does not exist.
    case metadataOrphaned
    /// Metadata kept for a name the model reserves, which the guest can never use.
    case metadataForReservedName
    /// Metadata of this model where a guest of another could have written it.
    case metadataForgeable
}

/// What is left of a creation once the host object exists (`ModelCodec.begin`).
public typealias CreateCompletion = () throws(VirtFSError) -> Void

/// One codec per model: decode host facts into the guest view, and write a guest view back the
/// way QEMU itself would have stored it.
public protocol ModelCodec: Sendable {
    var model: SecurityModel { get }

    /// What the guest sees for this entry. Throws when the guest's view cannot be known
    /// (unreadable or undecodable metadata); tolerated oddities go to `GuestView.diagnostics`.
    func decode(_ entry: HostEntry) throws(VirtFSError) -> GuestView

    /// Makes the host object of `name` in `directory` the way QEMU would store an object with
    /// these attributes, with `content` as its data (regular files; symlink targets come from
    /// `attributes`), and returns the rest of the creation: what touches only the new object
    /// (its metadata). Until that has run the object shows its host values, as after a crash
    /// inside QEMU's create; it may run on another thread, before anything else uses `name`.
    func begin(_ attributes: GuestAttributes, named name: [UInt8], in directory: DirectoryContext,
               content: Content, placement: HostPlacement) throws(VirtFSError) -> CreateCompletion

    /// Rewrites the guest-owned metadata of an existing entry (chown, chmod, ACLs, rdev), leaving
    /// its data alone. Used for the export root, which always exists.
    func update(_ attributes: GuestAttributes, of entry: HostEntry, placement: HostPlacement) throws(VirtFSError)

    /// Makes `newName` in `newDirectory` a hard link of `entry`, metadata included.
    func link(_ entry: HostEntry, as newName: [UInt8], in newDirectory: DirectoryContext, placement: HostPlacement) throws(VirtFSError)

    /// Removes `entry` as QEMU's `unlinkat` does for this model (a directory must be empty as
    /// the guest sees it), its metadata with it.
    func remove(_ entry: HostEntry) throws(VirtFSError)

    /// Renames `entry` to `newName` in `newDirectory` as QEMU's `renameat` does for this model,
    /// its metadata with it; `mode` is renameat2(2)'s NOREPLACE or EXCHANGE, refused with
    /// EINVAL where the model cannot do it in one step.
    func rename(_ entry: HostEntry, to newName: [UInt8], in newDirectory: DirectoryContext, mode: RenameMode,
                placement: HostPlacement) throws(VirtFSError)

    /// Why an object with these attributes, named `name` (nil for the export root), could not
    /// be stored so that a guest sees it as it is: each reason one sentence; empty when it can.
    func cannotHold(_ attributes: GuestAttributes, name: [UInt8]?) -> [String]

    /// Whether `update(attributes)` on an entry whose host inode is `host` reads back as these
    /// same owner, type, permissions and device number. A safe (`-p`) repair writes only what
    /// passes: some views cannot be stored as they are read.
    func keeps(_ attributes: GuestAttributes, host: HostStat) -> Bool

    /// Whether the metadata is kept for each name apart from the host object (rather than in
    /// the inode, shared by all its names): a name's metadata is its own to remove.
    var keepsMetadataByName: Bool { get }

    /// Whether `name` in a directory is this model's own storage rather than an entry: hidden
    /// from the guest, refused as a guest's name.
    func holdsMetadata(_ name: [UInt8]) -> Bool

    /// Whether an xattr named `name` is this model's own storage, which a guest of the model
    /// can neither see nor set.
    func holdsMetadata(xattr name: [UInt8]) -> Bool

    /// Whether the entry carries (some of) this model's metadata: what a census counts, where
    /// `hasMetadata` asks for all of it.
    func carriesMetadata(_ entry: HostEntry) -> Bool

    /// How a user recognises this model's storage on the host ("user.virtfs.* xattrs").
    var storageDescription: String { get }

    /// Whether host fields show through a view stored as `attributes` on the host object
    /// `host` even when the metadata is complete, so that a host chown or chmod changes it.
    func hostShowsThrough(_ attributes: GuestAttributes, host: HostStat) -> Bool

    /// Whether the entry carries this model's metadata, complete (what an interrupted
    /// conversion reads as "already in this model").
    func hasMetadata(_ entry: HostEntry) -> Bool

    /// Whether a guest served in another model can write this model's metadata (it is made of
    /// `user.*` xattrs every guest may set): found outside this model, it is not to be trusted.
    var metadataForgeable: Bool { get }

    /// The inode's own part of entering this model, once every name of it is stored in it
    /// (`names`: its xattr names): drops what the inode holds that the model keeps elsewhere,
    /// and with `placement` (the inode comes from a model that stores the guest's owner and mode
    /// in it) gives it the host owner and mode QEMU's user needs.
    func settle(_ entry: HostEntry, names: [[UInt8]], placement: HostPlacement?) throws(VirtFSError)

    /// Removes the entry's metadata of this model, if any; the host object stays.
    func removeMetadata(of entry: HostEntry) throws(VirtFSError)

    /// Puts `temporary`, built complete in `directory` (by `create` or `link`), in place of
    /// `name`, metadata and data, in the order that leaves the name the old object or the new
    /// one at every step. `dataFirst` moves the data before the metadata, for a caller whose
    /// new data reads right under the old metadata. A temporary without metadata takes the
    /// name's away.
    func commitTemporary(_ temporary: [UInt8], as name: [UInt8], in directory: DirectoryContext, dataFirst: Bool) throws(VirtFSError)

    /// Removes what an interrupted run left of this model's storage under temporary names.
    func discardTemporaries(in directory: DirectoryContext)

    /// Removes the file `temporary` in `directory`, with its metadata, before it is built anew.
    func discardTemporary(_ temporary: [UInt8], in directory: DirectoryContext)

    /// Where the entry's metadata is kept apart from it, as components below the entry's
    /// directory; nil when it is in the host inode.
    func metadataFile(of entry: HostEntry) -> [[UInt8]]?

    /// The host object holding the entry's metadata apart from it, if there is one.
    func metadataStat(of entry: HostEntry) -> HostStat?

    /// The object a directory entry holds for its children's metadata (its name inside the
    /// directory, and what it is), which QEMU must be able to write.
    func storageStat(inside directory: HostEntry) -> (name: [UInt8], stat: HostStat)?

    /// Gives `name` in `directory` the very metadata of `sourceName` in `sourceDirectory`
    /// (one more link of it, as QEMU's link leaves two names), replacing what it had. False
    /// when the source keeps no metadata apart (nothing to share, or it is in the inode).
    func shareMetadata(of sourceName: [UInt8], in sourceDirectory: DirectoryContext, with name: [UInt8],
                       in directory: DirectoryContext, placement: HostPlacement) throws(VirtFSError) -> Bool

    /// Removes this model's storage kept for `directory`'s entries, when it holds nothing
    /// more (the directory is about to go, or to leave this model).
    func removeStorage(of directory: DirectoryContext)

    /// Reports this model's storage in `directory` that belongs to no entry, as findings.
    func audit(_ directory: DirectoryContext, report: (VirtFSError) -> Void)
}

extension ModelCodec {
    /// Creates `name` in `directory` whole: `begin` and its completion at once.
    public func create(_ attributes: GuestAttributes, named name: [UInt8], in directory: DirectoryContext,
                       content: Content, placement: HostPlacement) throws(VirtFSError) {
        try begin(attributes, named: name, in: directory, content: content, placement: placement)()
    }

    public func cannotHold(_ attributes: GuestAttributes, name: [UInt8]?) -> [String] { [] }
    public func keeps(_ attributes: GuestAttributes, host: HostStat) -> Bool { true }
    public var keepsMetadataByName: Bool { false }
    public func holdsMetadata(_ name: [UInt8]) -> Bool { false }
    public func holdsMetadata(xattr name: [UInt8]) -> Bool { false }
    public func hasMetadata(_ entry: HostEntry) -> Bool { false }
    public func carriesMetadata(_ entry: HostEntry) -> Bool { hasMetadata(entry) }
    public var storageDescription: String { "VirtFS metadata" }
    public func hostShowsThrough(_ attributes: GuestAttributes, host: HostStat) -> Bool { false }
    public var metadataForgeable: Bool { false }
    public func settle(_ entry: HostEntry, names: [[UInt8]], placement: HostPlacement?) throws(VirtFSError) {}
    public func removeMetadata(of entry: HostEntry) throws(VirtFSError) {}
    public func discardTemporaries(in directory: DirectoryContext) {}
    public func removeStorage(of directory: DirectoryContext) {}
    public func metadataFile(of entry: HostEntry) -> [[UInt8]]? { nil }
    public func metadataStat(of entry: HostEntry) -> HostStat? { nil }
    public func storageStat(inside directory: HostEntry) -> (name: [UInt8], stat: HostStat)? { nil }
    public func shareMetadata(of sourceName: [UInt8], in sourceDirectory: DirectoryContext, with name: [UInt8],
                              in directory: DirectoryContext, placement: HostPlacement) throws(VirtFSError) -> Bool { false }
    public func audit(_ directory: DirectoryContext, report: (VirtFSError) -> Void) {}

    /// A new name of the inode, which carries the metadata.
    public func link(_ entry: HostEntry, as newName: [UInt8], in newDirectory: DirectoryContext, placement: HostPlacement) throws(VirtFSError) {
        do {
            try Sys.link(entry.directory.fd, entry.name, newDirectory.fd, newName)
        } catch let error {
            throw error.at(Bytes.join(newDirectory.path, newName))
        }
    }

    public func commitTemporary(_ temporary: [UInt8], as name: [UInt8], in directory: DirectoryContext, dataFirst: Bool = false) throws(VirtFSError) {
        try Sys.rename(directory.fd, temporary, directory.fd, name)
    }

    public func discardTemporary(_ temporary: [UInt8], in directory: DirectoryContext) {
        try? Sys.unlink(directory.fd, temporary)
    }

    /// Removes the metadata kept for this name alone: what would be left behind when the name
    /// goes or is replaced (metadata in the inode stays for its other names).
    public func removeNameMetadata(of entry: HostEntry) throws(VirtFSError) {
        if keepsMetadataByName { try removeMetadata(of: entry) }
    }

    /// Removes a temporary an interrupted run left, with its metadata.
    public func discardTemporary(_ entry: HostEntry) {
        try? removeNameMetadata(of: entry)
        try? Sys.unlink(entry.directory.fd, entry.name, directory: entry.stat.fileType == .directory)
    }
}
