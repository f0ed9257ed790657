/// Where a field of the guest view came from.
public enum Source: String, Sendable, Codable {
    /// A `user.virtfs.*` xattr (mapped-xattr), Linux layout.
    case xattr
    /// A `user.virtfs.*` xattr in the layout QEMU writes on macOS hosts (2-byte mode, 4-byte rdev).
    case xattrMacOS = "xattr-macos"
    /// A line of a `.virtfs_metadata` file (mapped-file).
    case metadataFile = "metadata-file"
    /// The host inode itself: the model passes it through, or no metadata overrides it.
    case host
}

public struct Provenance: Sendable, Equatable, Codable {
    public var uid: Source = .host
    public var gid: Source = .host
    public var mode: Source = .host
    public var rdev: Source = .host
    public var acl: Source = .host

    public init() {}

    /// `uid=xattr,gid=xattr,mode=xattr,rdev=host` — the `%P` directive.
    public var summary: String {
        "uid=\(uid.rawValue),gid=\(gid.rawValue),mode=\(mode.rawValue),rdev=\(rdev.rawValue)"
    }
}

/// A guest-visible extended attribute (not an ACL: those are decoded into `GuestView`).
public struct Xattr: Sendable, Equatable, Hashable, Codable {
    public var name: [UInt8]
    public var value: [UInt8]
    public init(name: [UInt8], value: [UInt8]) {
        self.name = name
        self.value = value
    }
    public init(_ name: String, _ value: [UInt8]) {
        self.init(name: Array(name.utf8), value: value)
    }
}

/// The guest-owned part of an entry: what a model stores and a conversion carries over.
public struct GuestAttributes: Sendable, Equatable {
    public var type: FileType
    /// Permission bits including suid/sgid/sticky (07777).
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: DeviceNumber
    public var symlinkTarget: [UInt8]?
    public var accessACL: ACL?
    public var defaultACL: ACL?
    public var xattrs: [Xattr]

    public init(type: FileType, permissions: UInt32, uid: UInt32, gid: UInt32, rdev: DeviceNumber = .zero,
                symlinkTarget: [UInt8]? = nil, accessACL: ACL? = nil, defaultACL: ACL? = nil, xattrs: [Xattr] = []) {
        self.type = type
        self.permissions = permissions & 0o7777
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.symlinkTarget = symlinkTarget
        self.accessACL = accessACL
        self.defaultACL = defaultACL
        self.xattrs = xattrs
    }

    /// The full st_mode: file type bits and permissions.
    public var mode: UInt32 { type.rawValue | permissions }
}

/// What the guest sees for one directory entry: the single value every tool consumes.
public struct GuestView: Sendable, Equatable {
    /// The entry's path as the user named it (raw bytes).
    public var path: [UInt8]
    public var model: SecurityModel
    public var attributes: GuestAttributes
    /// The host object's stat, whose size, blocks, times, link count and identity are the
    /// guest's too (its owner, mode and rdev are the model's business: `attributes`).
    public var host: HostStat
    /// False for a real host symlink in a mapped export: QEMU < 11 opens it with O_NOFOLLOW, so
    /// the guest's readlink fails with ELOOP.
    public var symlinkReadable: Bool = true
    /// True when nothing model-specific was found and the guest sees the host inode as is
    /// (in a mapped model: an entry added on the host).
    public var hostFallback: Bool = false
    public var provenance: Provenance
    /// Things QEMU reads without failing but that are not what was meant, or that a strict
    /// reader flags (macOS layouts, malformed metadata lines, type contradicting the host).
    public var diagnostics: [VirtFSError] = []

    public var type: FileType { attributes.type }
    public var mode: UInt32 { attributes.mode }
    public var uid: UInt32 { attributes.uid }
    public var gid: UInt32 { attributes.gid }

    /// Starts a view from the host inode as is, before a model overrides fields.
    init(path: [UInt8], model: SecurityModel, host: HostStat, type: FileType) {
        self.path = path
        self.model = model
        attributes = GuestAttributes(type: type, permissions: host.permissions, uid: host.uid, gid: host.gid,
                                     rdev: host.rdev)
        self.host = host
        provenance = Provenance()
    }
}
