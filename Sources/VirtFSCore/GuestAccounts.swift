/// The guest's own user database: `etc/passwd` and `etc/group` inside the tree, read without
/// following symlinks. Names printed for guest ids come from here, never from the host's.
public struct GuestAccounts: Sendable {
    public var users: [UInt32: String] = [:]
    public var groups: [UInt32: String] = [:]

    public init(users: [UInt32: String] = [:], groups: [UInt32: String] = [:]) {
        self.users = users
        self.groups = groups
    }

    /// Loads the database below `root`; missing or unreadable files leave it empty (numbers are
    /// printed then).
    public static func load(root: DirectoryContext) -> GuestAccounts {
        var accounts = GuestAccounts()
        guard let etc = try? root.child(Array("etc".utf8), path: Bytes.join(root.path, Array("etc".utf8))) else {
            return accounts
        }
        if let (bytes, _) = try? Sys.readFile(etc.fd, Array("passwd".utf8), limit: 16 << 20) {
            accounts.users = parse(bytes)
        }
        if let (bytes, _) = try? Sys.readFile(etc.fd, Array("group".utf8), limit: 16 << 20) {
            accounts.groups = parse(bytes)
        }
        return accounts
    }

    /// `name:password:id:...` lines; the first line for an id wins, as with getpwuid(3).
    public static func parse(_ bytes: [UInt8]) -> [UInt32: String] {
        var map: [UInt32: String] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard fields.count >= 3, !fields[0].isEmpty, fields[0].first != UInt8(ascii: "#"),
                  let id = UInt32(String(decoding: fields[2], as: UTF8.self)) else { continue }
            if map[id] == nil { map[id] = String(decoding: fields[0], as: UTF8.self) }
        }
        return map
    }
}
