/// The guest's own user database: `etc/passwd` and `etc/group` inside the tree, read without
/// following symlinks. Names printed for guest ids come from here, never from the host's.
public struct GuestAccounts: Sendable {
    public var users: [UInt32: String] = [:]
    public var groups: [UInt32: String] = [:]
    /// Reverse maps, and each user's login group (passwd's fourth field).
    public var userIDs: [String: UInt32] = [:]
    public var groupIDs: [String: UInt32] = [:]
    public var loginGroups: [UInt32: UInt32] = [:]

    public init(users: [UInt32: String] = [:], groups: [UInt32: String] = [:]) {
        self.users = users
        self.groups = groups
        for (id, name) in users where userIDs[name] == nil || userIDs[name]! > id { userIDs[name] = id }
        for (id, name) in groups where groupIDs[name] == nil || groupIDs[name]! > id { groupIDs[name] = id }
    }

    /// Loads the database below `root`; missing or unreadable files leave it empty (numbers are
    /// printed then).
    public static func load(root: DirectoryContext) -> GuestAccounts {
        guard let etc = try? root.child(Array("etc".utf8), path: Bytes.join(root.path, Array("etc".utf8))) else {
            return GuestAccounts()
        }
        // A file that cannot be read names no one.
        func read(_ name: String) -> [UInt8] { (try? Sys.readFile(etc.fd, Array(name.utf8), limit: 16 << 20))?.0 ?? [] }
        let passwd = read("passwd")
        var accounts = GuestAccounts(users: parse(passwd), groups: parse(read("group")))
        for fields in records(passwd) where fields.count >= 4 {
            if let uid = UInt32(String(decoding: fields[2], as: UTF8.self)),
               let gid = UInt32(String(decoding: fields[3], as: UTF8.self)), accounts.loginGroups[uid] == nil {
                accounts.loginGroups[uid] = gid
            }
        }
        return accounts
    }

    /// `name:password:id:...` lines; the first line for an id wins, as with getpwuid(3).
    public static func parse(_ bytes: [UInt8]) -> [UInt32: String] {
        var map: [UInt32: String] = [:]
        for fields in records(bytes) {
            guard let id = UInt32(String(decoding: fields[2], as: UTF8.self)) else { continue }
            if map[id] == nil { map[id] = String(decoding: fields[0], as: UTF8.self) }
        }
        return map
    }

    static func records(_ bytes: [UInt8]) -> [[ArraySlice<UInt8>]] {
        bytes.split(separator: UInt8(ascii: "\n")).compactMap { line in
            let fields = line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard fields.count >= 3, !fields[0].isEmpty, fields[0].first != UInt8(ascii: "#") else { return nil }
            return fields
        }
    }

    /// coreutils chown's `OWNER[:[GROUP]]` (also `OWNER.GROUP`, `:GROUP`): names are the
    /// guest's, numbers are taken as ids; `OWNER:` means OWNER and OWNER's login group.
    public func parseOwner(_ spec: String) throws(VirtFSError) -> (uid: UInt32?, gid: UInt32?) {
        var separator = spec.firstIndex(of: ":")
        if separator == nil, userIDs[spec] == nil, let dot = spec.firstIndex(of: ".") {
            separator = dot
        }
        let user = separator.map { String(spec[..<$0]) } ?? spec
        let group = separator.map { String(spec[spec.index(after: $0)...]) }
        func id(_ text: String, _ ids: [String: UInt32], _ kind: String, _ file: String) throws(VirtFSError) -> UInt32? {
            guard !text.isEmpty else { return nil }
            guard let id = ids[text] ?? UInt32(text) else { throw VirtFSError.refused("chown", "invalid \(kind): '\(text)' (not in the tree's etc/\(file))") }
            return id
        }
        let uid = try id(user, userIDs, "user", "passwd")
        var gid = try id(group ?? "", groupIDs, "group", "group")
        if gid == nil, group != nil, let uid {
            guard let login = loginGroups[uid] else {
                throw VirtFSError.refused("chown", "'\(user):' needs \(user)'s login group, which the tree's etc/passwd does not give")
            }
            gid = login
        }
        if uid == nil && gid == nil && !spec.isEmpty && spec != ":" {
            throw VirtFSError.refused("chown", "invalid spec: '\(spec)'")
        }
        return (uid, gid)
    }
}
