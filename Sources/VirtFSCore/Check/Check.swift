/// The consistency checks virtfs-fsck runs, with stable names for scripts.
public enum Check: String, Sendable, CaseIterable, Codable {
    /// A `user.virtfs.*` value of a length QEMU ignores or misreads.
    case xattrLength = "xattr-length"
    /// Values in the layout QEMU writes on macOS hosts, which QEMU on Linux misreads.
    case macosLayout = "macos-layout"
    /// A mode without a valid file type, or one contradicting the host object.
    case modeType = "mode-type"
    /// A `.virtfs_metadata` file QEMU reads other than it was meant (malformed, duplicated,
    /// overlong, unknown lines, atoi garbage).
    case metadataSyntax = "metadata-syntax"
    /// Something other than a regular file where a metadata file belongs.
    case metadataObject = "metadata-object"
    /// An ACL value the guest kernel rejects.
    case badACL = "bad-acl"
    /// A mapped-tree entry with no metadata: the guest sees the host owner and mode.
    case noMetadata = "no-metadata"
    /// A mapped-tree entry with no metadata that did not come from the host: shaped like a
    /// stored symlink or device, or owned and protected like the tree's own entries.
    case metadataLost = "metadata-lost"
    /// A host symlink, fifo, socket or device node inside a mapped export.
    case hostSpecial = "host-special"
    /// `.virtfs_metadata/NAME` for a NAME that does not exist.
    case orphanMetadata = "orphan-metadata"
    /// Metadata for `.virtfs_metadata` or `.virtfs_metadata_root` themselves.
    case reservedMetadata = "reserved-metadata"
    /// Hard-linked data whose metadata files are not hard-linked the same way.
    case metadataLinks = "metadata-links"
    /// An object the user QEMU runs as cannot read, write or traverse.
    case qemuAccess = "qemu-access"
    /// Metadata of both mapped models in one tree.
    case mixedModels = "mixed-models"
    /// `user.virtfs.*` where a guest could have written it.
    case untrustedXattr = "untrusted-xattr"
    /// set-user-ID/set-group-ID root files or device nodes in a tree served as passthrough or none.
    case privileged = "privileged-entry"
    /// A temporary file a virtfs-tools run left behind when it was interrupted.
    case strayTemporary = "stray-temporary"
    /// A host inode that also has hard links outside the tree: left alone by every repair.
    case outsideLink = "outside-link"
    /// Metadata that cannot be read at all.
    case unreadable = "unreadable"

    public enum Severity: String, Sendable, Codable {
        case error
        case warning
    }

    /// What the guest experiences when this check fails.
    public var guestSees: String {
        switch self {
        case .xattrLength: return "QEMU ignores the value or reads undefined bytes"
        case .macosLayout: return "QEMU on Linux reads undefined high bytes of the mode or a wrong device"
        case .modeType: return "an entry of a type its host object cannot serve"
        case .metadataSyntax: return "QEMU reads values other than the ones written"
        case .metadataObject: return "QEMU ignores the metadata: the host owner and mode show through"
        case .badACL: return "getfacl and permission checks fail on the entry"
        case .noMetadata: return "the host owner and mode"
        case .metadataLost: return "the host owner and mode; a stored symlink or device shows as a regular file"
        case .hostSpecial: return "a symlink it cannot read (ELOOP on QEMU < 11), or a host device or fifo"
        case .orphanMetadata: return "a directory it cannot remove (ENOTEMPTY)"
        case .reservedMetadata: return "nothing; the file is dead weight"
        case .metadataLinks: return "hard links that disagree about owner and mode"
        case .qemuAccess: return "EACCES whatever the mode it sees"
        case .mixedModels: return "metadata of the other model as plain files and xattrs"
        case .untrustedXattr: return "its own forgery become authoritative if the tree is served as mapped-xattr"
        case .privileged: return "real set-id root files and devices on the host"
        case .strayTemporary: return "a stray file"
        case .outsideLink: return "a file the host also has outside the export: what the guest writes to it reaches that file"
        case .unreadable: return "nothing the tool can tell"
        }
    }

    public var severity: Severity {
        switch self {
        case .noMetadata, .untrustedXattr, .privileged: return .warning
        default: return .error
        }
    }
}

extension Check {
    /// The check a codec's finding fails.
    init(_ finding: StorageFinding) {
        switch finding {
        case .valueIgnored, .valueUndefined: self = .xattrLength
        case .modeWithoutType, .typeContradictsHost: self = .modeType
        case .metadataUnparsable: self = .metadataSyntax
        case .metadataNotAFile: self = .metadataObject
        case .aclRejected: self = .badACL
        case .metadataOrphaned: self = .orphanMetadata
        case .metadataForReservedName: self = .reservedMetadata
        case .metadataForgeable: self = .untrustedXattr
        }
    }

    /// The check an error fails: a codec's finding, else metadata that cannot be read.
    init(_ error: VirtFSError) {
        self = error.finding.map(Check.init) ?? .unreadable
    }
}
