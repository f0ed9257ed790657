import CVirtFS
import VirtFSCore

// Text forms the fixtures are written in (testdata/, tree specs, golden vectors), which the
// tools themselves never read: they live beside the tests, not in the library.

extension Bytes {
    /// Parses hex digits (optionally `0x`-prefixed); nil on any other character.
    public static func fromHex(_ text: some StringProtocol) -> [UInt8]? {
        var s = Substring(text)
        if s.hasPrefix("0x") || s.hasPrefix("0X") { s = s.dropFirst(2) }
        let chars = Array(s)
        guard chars.count % 2 == 0, chars.allSatisfy({ $0.isASCII && $0.isHexDigit }) else { return nil }
        return stride(from: 0, to: chars.count, by: 2).map { UInt8(String(chars[$0...$0 + 1]), radix: 16)! }
    }
}

extension FileType {
    /// The type named by its `keyword` (`file`, `dir`, `symlink`, ...).
    public init?(keyword: String) {
        guard let t = FileType.allCases.first(where: { $0.keyword == keyword }) else { return nil }
        self = t
    }
}

extension ACL {
    /// Parses setfacl(1)'s long or short text form (libacl's `acl_from_text`). Names are looked
    /// up in the host's user database by libacl, so callers use numeric ids for guest ACLs.
    public init(text: String) throws(VirtFSError) {
        guard let acl = acl_from_text(text) else {
            throw VirtFSError.corrupt("acl_from_text", "invalid ACL text \"\(text)\"")
        }
        defer { acl_free(UnsafeMutableRawPointer(acl)) }
        var result: [Entry] = []
        var entry: acl_entry_t?
        var which = ACL_FIRST_ENTRY
        while acl_get_entry(acl, which, &entry) == 1, let e = entry {
            which = ACL_NEXT_ENTRY
            var rawTag = acl_tag_t(0)
            acl_get_tag_type(e, &rawTag)
            guard let tag = Tag(rawValue: UInt16(truncatingIfNeeded: rawTag)) else { continue }
            var permset: acl_permset_t?
            acl_get_permset(e, &permset)
            var perms: UInt16 = 0
            if let permset {
                for bit: UInt16 in [4, 2, 1] where acl_get_perm(permset, acl_perm_t(bit)) == 1 { perms |= bit }
            }
            var qualifier: UInt32?
            if tag == .user || tag == .group, let q = acl_get_qualifier(e) {
                qualifier = q.load(as: UInt32.self)
                acl_free(q)
            }
            result.append(Entry(tag: tag, permissions: perms, qualifier: qualifier))
        }
        // libacl keeps entries sorted the way the kernel wants them; keep that order.
        self.init(entries: result.sorted { ($0.tag.rawValue, $0.qualifier ?? 0) < ($1.tag.rawValue, $1.qualifier ?? 0) })
    }
}
