/// QEMU's `security_model=` values for the 9p `local` backend, spelled as QEMU spells them.
public enum SecurityModel: String, Sendable, CaseIterable, Codable {
    case passthrough
    case none
    case mappedXattr = "mapped-xattr"
    case mappedFile = "mapped-file"

    /// Accepts QEMU's alias `mapped` for `mapped-xattr`.
    public init?(name: String) {
        if name == "mapped" {
            self = .mappedXattr
        } else {
            self.init(rawValue: name)
        }
    }

    /// Models that keep guest metadata beside the host object rather than in it.
    public var isMapped: Bool { self == .mappedXattr || self == .mappedFile }

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

/// Reserved names of the mapped-file model: hidden from the guest and refused for its operations.
public enum MappedFileNames {
    public static let metadataDirectory: [UInt8] = Array(".virtfs_metadata".utf8)
    public static let rootMetadata: [UInt8] = Array(".virtfs_metadata_root".utf8)

    public static func isReserved(_ name: [UInt8]) -> Bool {
        name == metadataDirectory || name == rootMetadata
    }
}

/// How host objects created for a mapped model are owned and protected, so that the user QEMU
/// runs as can reach them (QEMU's own `fmode=`/`dmode=` defaults are 0600/0700).
public struct HostPlacement: Sendable, Equatable {
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

    public init(fileMode: UInt32 = 0o600, directoryMode: UInt32 = 0o700, owner: (uid: UInt32, gid: UInt32)? = nil,
                links: LinkCensus? = nil) {
        self.fileMode = fileMode
        self.directoryMode = directoryMode
        self.owner = owner
        self.links = links
    }

    public static func == (a: HostPlacement, b: HostPlacement) -> Bool {
        a.fileMode == b.fileMode && a.directoryMode == b.directoryMode && a.owner?.uid == b.owner?.uid && a.owner?.gid == b.owner?.gid
    }
}

/// One codec per model: decode host facts into the guest view, and write a guest view back the
/// way QEMU itself would have stored it.
public protocol ModelCodec: Sendable {
    var model: SecurityModel { get }

    /// What the guest sees for this entry. Throws when the guest's view cannot be known
    /// (unreadable or undecodable metadata); tolerated oddities go to `GuestView.diagnostics`.
    func decode(_ entry: HostEntry) throws -> GuestView

    /// Creates `name` in `directory` the way QEMU would store an object with these attributes,
    /// with `content` as its data (regular files; symlink targets come from `attributes`).
    func create(_ attributes: GuestAttributes, named name: [UInt8], in directory: DirectoryContext,
                content: Content, placement: HostPlacement) throws

    /// Rewrites the guest-owned metadata of an existing entry (chown, chmod, ACLs, rdev), leaving
    /// its data alone. Used for the export root, which always exists.
    func update(_ attributes: GuestAttributes, of entry: HostEntry, placement: HostPlacement) throws

    /// Makes `newName` in `newDirectory` a hard link of `entry`, metadata included.
    func link(_ entry: HostEntry, as newName: [UInt8], in newDirectory: DirectoryContext, placement: HostPlacement) throws

    /// Why an object with these attributes, named `name` (nil for the export root), could not
    /// be stored so that a guest sees it as it is: each reason one sentence; empty when it can.
    func cannotHold(_ attributes: GuestAttributes, name: [UInt8]?) -> [String]
}

extension ModelCodec {
    public func cannotHold(_ attributes: GuestAttributes, name: [UInt8]?) -> [String] { [] }
}

extension ModelCodec {
    /// Whether `update(attributes)` on an entry whose host inode is `host` reads back as these
    /// same owner, type, permissions and device number. A safe (`-p`) repair writes only what
    /// passes: some views cannot be stored as they are read (mapped-file cannot write an id of
    /// -1, neither mapped model keeps a device number on a regular file).
    public func keeps(_ attributes: GuestAttributes, host: HostStat) -> Bool {
        switch model {
        case .passthrough, .none:
            return true
        case .mappedXattr:
            let rdev = attributes.type.isSpecial
                ? DeviceNumber(guestKernel: (attributes.type.hasDeviceNumber ? attributes.rdev : .zero).glibc) : host.rdev
            return rdev == attributes.rdev
        case .mappedFile:
            let m = MappedFileCodec.metadata(for: attributes)
            func read(_ v: Int32?, _ fallback: UInt32) -> UInt32 { v.flatMap { $0 == -1 ? nil : UInt32(bitPattern: $0) } ?? fallback }
            let rdev = m.rdev.flatMap { $0 == -1 ? nil : DeviceNumber(guestKernel: UInt64(UInt32(bitPattern: $0))) } ?? host.rdev
            return read(m.uid, host.uid) == attributes.uid && read(m.gid, host.gid) == attributes.gid
                && read(m.mode, host.mode) == attributes.mode && rdev == attributes.rdev
        }
    }
}
