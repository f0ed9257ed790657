/// getfacl(1)-style text of the guest's ACLs: exactly what `getfacl -n NAME` prints in the guest.
public enum GetfaclFormat {
    /// getfacl's `quote(path, "\n\r")`: backslash doubled, newline and return as `\ooo` (as
    /// getfattr quotes them).
    public static func quote(_ bytes: [UInt8]) -> [UInt8] {
        bytes.flatMap { $0 == UInt8(ascii: "\\") ? Array("\\\\".utf8) : GetfattrFormat.quote([$0], [0x0a, 0x0d]) }
    }

    /// getfacl drops a leading `/` (without -p) and one leading `./` with its slashes.
    public static func displayName(_ path: [UInt8]) -> [UInt8] {
        var p = path[...]
        if p.count > 2 && p.starts(with: Array("./".utf8)) { p = p.dropFirst(2) }
        while p.first == UInt8(ascii: "/") && p.count > 1 { p = p.dropFirst() }
        return Array(p)
    }

    public static func render(_ view: GuestView) throws(VirtFSError) -> [UInt8] {
        let a = view.attributes
        var out = Array("# file: ".utf8) + quote(displayName(view.path)) + [0x0a]
        out += Array("# owner: \(a.uid)\n# group: \(a.gid)\n".utf8)
        if a.permissions & 0o7000 != 0 {
            let flags = zip([0o4000, 0o2000, 0o1000] as [UInt32], ["s", "s", "t"]).map { a.permissions & $0 != 0 ? $1 : "-" }.joined()
            out += Array("# flags: \(flags)\n".utf8)
        }
        // Without an access ACL the guest's getfacl shows the one the mode implies.
        let access = a.accessACL ?? ACL(mode: a.permissions)
        out += Array((try access.text() + "\n").utf8)
        if a.type == .directory, let def = a.defaultACL {
            out += Array((try def.text(prefix: "default:") + "\n").utf8)
        }
        out.append(0x0a)
        return out
    }
}

/// getfattr(1)-style dump of the guest-visible user xattrs: what `getfattr -d -e hex NAME`
/// prints in the guest (nothing for an entry without any).
public enum GetfattrFormat {
    /// attr's `quote(s, chars)`, which getfattr calls with "\n\r" for the file name and "=\n\r"
    /// for an attribute name: the backslash and each of `chars` as `\ooo` (getfacl, from the acl
    /// package, doubles the backslash instead).
    public static func quote(_ bytes: [UInt8], _ chars: [UInt8]) -> [UInt8] {
        bytes.flatMap { $0 == UInt8(ascii: "\\") || chars.contains($0) ? Array(Bytes.octalEscape($0).utf8) : [$0] }
    }

    public static func render(_ view: GuestView) -> [UInt8] {
        guard !view.attributes.xattrs.isEmpty else { return [] }
        var out = Array("# file: ".utf8) + quote(GetfaclFormat.displayName(view.path), [0x0a, 0x0d]) + [0x0a]
        for x in view.attributes.xattrs.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
            out += quote(x.name, Array("=\n\r".utf8)) + Array("=0x\(Bytes.hex(x.value))\n".utf8)
        }
        out.append(0x0a)
        return out
    }
}
