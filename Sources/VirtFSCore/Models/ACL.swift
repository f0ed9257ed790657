import CVirtFS
import Glibc

/// A POSIX access or default ACL, as the kernel stores it in `system.posix_acl_*` xattrs
/// (and QEMU's mapped-xattr model, unchanged, in `user.virtfs.system.posix_acl_*`).
public struct ACL: Sendable, Equatable, Hashable, Codable {
    /// The kernel's tags, which are also libacl's `ACL_USER_OBJ` ... `ACL_OTHER` (sys/acl.h), as
    /// its `ACL_READ`/`ACL_WRITE`/`ACL_EXECUTE` are the 4/2/1 of `Entry.permissions`.
    public enum Tag: UInt16, Sendable, Codable {
        case userObj = 0x01
        case user = 0x02
        case groupObj = 0x04
        case group = 0x08
        case mask = 0x10
        case other = 0x20
    }

    public struct Entry: Sendable, Equatable, Hashable, Codable {
        public var tag: Tag
        /// rwx as 4/2/1.
        public var permissions: UInt16
        /// uid or gid for `user`/`group` entries.
        public var qualifier: UInt32?

        public init(tag: Tag, permissions: UInt16, qualifier: UInt32? = nil) {
            self.tag = tag
            self.permissions = permissions
            self.qualifier = qualifier
        }
    }

    public var entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// The blob's version word (`POSIX_ACL_XATTR_VERSION`).
    static let xattrVersion: UInt32 = 2
    static let undefinedID: UInt32 = 0xffff_ffff

    /// Decodes the kernel's xattr blob: le32 version, then 8-byte entries (le16 tag, le16 perm,
    /// le32 id).
    public init(xattr bytes: [UInt8], attribute: String = "system.posix_acl_access") throws(VirtFSError) {
        func corrupt(_ offset: Int?, _ text: String) -> VirtFSError { .corrupt("decode", attribute: Array(attribute.utf8), offset: offset, text) }
        guard bytes.count >= 4, (bytes.count - 4) % 8 == 0 else { throw corrupt(nil, "ACL value is \(bytes.count) bytes; expected 4 + 8n") }
        let version = Bytes.readLittle(bytes[0..<4], as: UInt32.self)
        guard version == ACL.xattrVersion else { throw corrupt(0, "ACL version \(version); expected 2") }
        entries = try stride(from: 4, to: bytes.count, by: 8).map { offset throws(VirtFSError) in
            let rawTag = Bytes.readLittle(bytes[offset..<offset + 2], as: UInt16.self)
            let perm = Bytes.readLittle(bytes[offset + 2..<offset + 4], as: UInt16.self)
            let id = Bytes.readLittle(bytes[offset + 4..<offset + 8], as: UInt32.self)
            guard let tag = Tag(rawValue: rawTag) else { throw corrupt(offset, "unknown ACL tag 0x\(String(rawTag, radix: 16))") }
            guard perm & ~7 == 0 else { throw corrupt(offset + 2, "ACL permission bits 0x\(String(perm, radix: 16))") }
            return Entry(tag: tag, permissions: perm, qualifier: tag == .user || tag == .group ? id : nil)
        }
    }

    /// The kernel's xattr blob, the exact inverse of `init(xattr:)` for canonical input.
    public var xattrValue: [UInt8] {
        var out = Bytes.little(ACL.xattrVersion)
        for e in entries {
            out += Bytes.little(e.tag.rawValue) + Bytes.little(e.permissions) + Bytes.little(e.qualifier ?? ACL.undefinedID)
        }
        return out
    }

    /// A minimal ACL (user::, group::, other::) carries nothing the mode does not.
    public var isMinimal: Bool {
        entries.allSatisfy { $0.tag == .userObj || $0.tag == .groupObj || $0.tag == .other }
    }

    /// The mask entry, or the group-owner entry when there is no mask: what a file's group
    /// permission bits mirror.
    public var groupClassPermissions: UInt16? {
        (entries.first { $0.tag == .mask } ?? entries.first { $0.tag == .groupObj })?.permissions
    }

    /// The permission bits a file with this ACL has: owner, mask (or group), other.
    public var modeBits: UInt32 {
        let user = entries.first { $0.tag == .userObj }?.permissions ?? 0
        let other = entries.first { $0.tag == .other }?.permissions ?? 0
        return UInt32(user) << 6 | UInt32(groupClassPermissions ?? 0) << 3 | UInt32(other)
    }

    /// The ACL equivalent to a permission mode (libacl's `acl_from_mode`).
    public init(mode: UInt32) {
        entries = [
            Entry(tag: .userObj, permissions: UInt16((mode >> 6) & 7)),
            Entry(tag: .groupObj, permissions: UInt16((mode >> 3) & 7)),
            Entry(tag: .other, permissions: UInt16(mode & 7)),
        ]
    }

    // MARK: libacl bridge

    /// Builds a libacl object; the caller frees it with acl_free.
    func withLibacl<T>(_ body: (acl_t) throws(VirtFSError) -> T) throws(VirtFSError) -> T {
        // acl_create_entry may move the object: free whatever `acl` points to at the end.
        var acl: acl_t? = acl_init(Int32(entries.count))
        guard acl != nil else {
            throw VirtFSError.system("acl_init", errno: virtfs_errno())
        }
        defer { acl_free(UnsafeMutableRawPointer(acl)) }
        for e in entries {
            var entry: acl_entry_t?
            guard acl_create_entry(&acl, &entry) == 0, let entry else {
                throw VirtFSError.system("acl_create_entry", errno: virtfs_errno())
            }
            acl_set_tag_type(entry, acl_tag_t(e.tag.rawValue))
            if var q = e.qualifier {
                acl_set_qualifier(entry, &q)
            }
            var permset: acl_permset_t?
            acl_get_permset(entry, &permset)
            if let permset {
                acl_clear_perms(permset)
                for bit: UInt16 in [4, 2, 1] where e.permissions & bit != 0 { acl_add_perm(permset, acl_perm_t(bit)) }
                acl_set_permset(entry, permset)
            }
        }
        return try body(acl!)
    }

    /// getfacl(1)'s text for this ACL (libacl's `acl_to_any_text`), with numeric ids: the ids
    /// are the guest's, which the host's user database cannot name.
    public func text(prefix: String? = nil) throws(VirtFSError) -> String {
        try withLibacl { acl throws(VirtFSError) in
            let options = Int32(TEXT_SOME_EFFECTIVE | TEXT_NUMERIC_IDS)
            guard let cText = acl_to_any_text(acl, prefix, CChar(UInt8(ascii: "\n")), options) else {
                throw VirtFSError.system("acl_to_any_text", errno: virtfs_errno())
            }
            defer { acl_free(UnsafeMutableRawPointer(cText)) }
            return String(cString: cText)
        }
    }

    /// Whether libacl accepts this as a valid ACL (`acl_valid`): one of each owner/other entry,
    /// a mask when there are named entries, no duplicate qualifiers.
    public var isValid: Bool {
        (try? withLibacl { acl_valid($0) == 0 }) ?? false
    }
}
