/// A chmod(1) mode, octal or symbolic (`u+s`, `g-w,o=`, `a=rX`, `go=u`), applied with coreutils'
/// rules: without a `who` the umask limits the change; `X` adds execute for directories and
/// files that already have some; a numeric mode of fewer than five digits, and symbolic modes
/// that do not mention them, keep a directory's set-user-ID and set-group-ID bits.
public struct ModeChange: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case ordinary
        case executeIfAnyExecute
        case copyExisting
    }

    struct Operation: Sendable, Equatable {
        var op: Character
        var kind: Kind
        var affected: UInt32
        var value: UInt32
        var mentioned: UInt32
    }

    static let allBits: UInt32 = 0o7777
    static let setID: UInt32 = 0o6000
    /// The bits each `who` letter and each permission letter stands for.
    static let who: [Character: UInt32] = ["u": 0o4700, "g": 0o2070, "o": 0o1007, "a": allBits]
    static let permissions: [Character: UInt32] = ["r": 0o444, "w": 0o222, "x": 0o111, "s": setID, "t": 0o1000]
    var operations: [Operation]

    public init(_ text: String) throws(VirtFSError) {
        let chars = Array(text)
        func invalid() -> VirtFSError { .refused("chmod", "invalid mode: '\(text)'") }
        guard !chars.isEmpty else { throw invalid() }
        if chars.allSatisfy({ $0 >= "0" && $0 <= "7" }) {
            guard let mode = UInt32(text, radix: 8), mode <= Self.allBits else { throw invalid() }
            let mentioned = chars.count < 5 ? (mode & Self.setID) | 0o1777 : Self.allBits
            operations = [Operation(op: "=", kind: .ordinary, affected: Self.allBits, value: mode, mentioned: mentioned)]
            return
        }
        var ops: [Operation] = []
        var i = 0
        while true {
            var affected: UInt32 = 0
            while i < chars.count, let who = Self.who[chars[i]] {
                affected |= who
                i += 1
            }
            guard i < chars.count, "+-=".contains(chars[i]) else { throw invalid() }
            while i < chars.count, "+-=".contains(chars[i]) {
                let op = chars[i]
                i += 1
                var value: UInt32 = 0
                var kind = Kind.copyExisting
                var mentioned: UInt32 = 0
                if i < chars.count, chars[i] >= "0" && chars[i] <= "7" {
                    let digits = chars[i...].prefix { $0 >= "0" && $0 <= "7" }
                    i += digits.count
                    guard let octal = UInt32(String(digits), radix: 8), octal <= Self.allBits,
                          affected == 0, i == chars.count || chars[i] == "," else { throw invalid() }
                    affected = Self.allBits
                    mentioned = Self.allBits
                    value = octal
                    kind = .ordinary
                } else if i < chars.count, "ugo".contains(chars[i]) {
                    value = chars[i] == "u" ? 0o700 : chars[i] == "g" ? 0o070 : 0o007
                    i += 1
                } else {
                    kind = .ordinary
                    while i < chars.count, chars[i] == "X" || Self.permissions[chars[i]] != nil {
                        if chars[i] == "X" { kind = .executeIfAnyExecute } else { value |= Self.permissions[chars[i]]! }
                        i += 1
                    }
                }
                let m = mentioned != 0 ? mentioned : (affected != 0 ? affected & value : value)
                ops.append(Operation(op: op, kind: kind, affected: affected, value: value, mentioned: m))
            }
            if i == chars.count { break }
            guard chars[i] == "," else { throw invalid() }
            i += 1
        }
        operations = ops
    }

    /// A change that sets exactly these permission bits (`--reference`).
    public init(exactly permissions: UInt32) {
        operations = [Operation(op: "=", kind: .ordinary, affected: Self.allBits, value: permissions & Self.allBits, mentioned: Self.allBits)]
    }

    /// The permission bits after the change, for an entry with `permissions` (07777).
    public func apply(to permissions: UInt32, isDirectory: Bool, umask: UInt32) -> UInt32 {
        var mode = permissions & Self.allBits
        for o in operations {
            let omit = (isDirectory ? Self.setID : 0) & ~o.mentioned
            var value = o.value
            switch o.kind {
            case .ordinary: break
            case .copyExisting:
                value &= mode
                value |= (value & 0o444 != 0 ? 0o444 : 0) | (value & 0o222 != 0 ? 0o222 : 0) | (value & 0o111 != 0 ? 0o111 : 0)
            case .executeIfAnyExecute:
                if mode & 0o111 != 0 || isDirectory { value |= 0o111 }
            }
            value &= (o.affected != 0 ? o.affected : ~umask) & ~omit
            switch o.op {
            case "=":
                let preserved = (o.affected != 0 ? ~o.affected : 0) | omit
                mode = (mode & preserved) | value
            case "+": mode |= value
            default: mode &= ~value
            }
        }
        return mode & Self.allBits
    }

    /// What a chown's -c/-v line adds when it cleared set-id bits, as the guest's kernel does:
    /// `; cleared set-user-ID (04755 -> 0755)`, or nothing.
    public static func setidCleared(from before: UInt32, to after: UInt32) -> String {
        let cleared = before & ~after & 0o6000
        guard cleared != 0 else { return "" }
        let names = [(UInt32(0o4000), "set-user-ID"), (UInt32(0o2000), "set-group-ID")].filter { cleared & $0.0 != 0 }.map(\.1)
        func octal(_ p: UInt32) -> String { "0" + String(p & 0o7777, radix: 8).leftPadded(to: 3) }
        return "; cleared \(names.joined(separator: " and ")) (\(octal(before)) -> \(octal(after)))"
    }
}

extension GuestAttributes {
    /// The attributes after a chown, as the guest's own kernel would leave them: Linux clears
    /// set-user-ID, and set-group-ID when group-execute is set, on every non-directory it chowns.
    public func changingOwner(uid: UInt32?, gid: UInt32?) -> GuestAttributes {
        var a = self
        if let uid { a.uid = uid }
        if let gid { a.gid = gid }
        if type != .directory && type != .symlink {
            a.permissions &= ~UInt32(0o4000)
            if a.permissions & 0o2010 == 0o2010 { a.permissions &= ~UInt32(0o2000) }
        }
        return a
    }

    /// The attributes after a chmod: the access ACL follows the mode (owner, mask or group, and
    /// other entries), as the kernel's posix_acl_chmod does.
    public func changingPermissions(_ permissions: UInt32) -> GuestAttributes {
        var a = self
        a.permissions = permissions & 0o7777
        if var acl = a.accessACL {
            let hasMask = acl.entries.contains { $0.tag == .mask }
            for i in acl.entries.indices {
                switch acl.entries[i].tag {
                case .userObj: acl.entries[i].permissions = UInt16((permissions >> 6) & 7)
                case .mask: acl.entries[i].permissions = UInt16((permissions >> 3) & 7)
                case .groupObj where !hasMask: acl.entries[i].permissions = UInt16((permissions >> 3) & 7)
                case .other: acl.entries[i].permissions = UInt16(permissions & 7)
                default: break
                }
            }
            a.accessACL = acl
        }
        return a
    }
}
