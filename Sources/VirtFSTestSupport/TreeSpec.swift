import Glibc
import VirtFSCore

/// A guest tree written as text (`testdata/trees/*.tree`), materialised in any security model
/// through the model's codec. One entry per line:
///
///     TYPE PATH PERMS UID:GID [rdev=MAJ:MIN] [target=STR] [content=STR] [mtime=SECS]
///                             [acl=TEXT] [default-acl=TEXT] [xattr.NAME=STR]...
///     link PATH EXISTING-PATH
///     host TYPE PATH PERMS UID:GID [...]
///
/// TYPE is file, dir, symlink, char, block, fifo or socket; PATH is relative to the export root
/// (`.` is the root itself); STR is a bare word or a double-quoted string with C escapes
/// (`\n`, `\t`, `\\`, `\"`, `\xHH`, `\ooo`), so names may hold any byte but NUL and `/`.
/// `host` entries are made as plain host objects with no VirtFS metadata, the way a file copied
/// in on the host appears (in a mapped export: owned by the host user, symlinks real).
public struct TreeSpec: Sendable {
    public struct Entry: Sendable {
        public var path: [UInt8]
        public var attributes: GuestAttributes
        public var content: [UInt8] = []
        public var mtime: Int64?
        /// Made as a plain host object, without metadata.
        public var hostOnly = false
        /// A hard link to this earlier path.
        public var linkTo: [UInt8]?
    }

    public var entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries
    }

    public init(text: String) throws {
        var entries: [Entry] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingSpaces()
            if line.isEmpty || line.hasPrefix("#") { continue }
            do {
                entries.append(try Self.parse(line))
            } catch let error as VirtFSError {
                throw VirtFSError.corrupt("parse", offset: nil, "line \(index + 1): \(error.description)")
            }
        }
        self.entries = entries
    }

    static func parse(_ line: Substring) throws -> Entry {
        var tokens = try tokenize(line)
        guard !tokens.isEmpty else { throw VirtFSError.corrupt("parse", "empty line") }
        var kind = String(decoding: tokens.removeFirst(), as: UTF8.self)
        if kind == "link" {
            guard tokens.count == 2 else { throw VirtFSError.corrupt("parse", "link takes PATH EXISTING") }
            var e = Entry(path: tokens[0], attributes: GuestAttributes(type: .regular, permissions: 0, uid: 0, gid: 0))
            e.linkTo = tokens[1]
            return e
        }
        var hostOnly = false
        if kind == "host" {
            hostOnly = true
            guard !tokens.isEmpty else { throw VirtFSError.corrupt("parse", "host needs a TYPE") }
            kind = String(decoding: tokens.removeFirst(), as: UTF8.self)
        }
        guard let type = FileType(keyword: kind) else { throw VirtFSError.corrupt("parse", "unknown type \(kind)") }
        guard tokens.count >= 3,
              let perms = UInt32(String(decoding: tokens[1], as: UTF8.self), radix: 8) else {
            throw VirtFSError.corrupt("parse", "expected TYPE PATH PERMS UID:GID")
        }
        let owner = String(decoding: tokens[2], as: UTF8.self).split(separator: ":")
        guard owner.count == 2, let uid = UInt32(owner[0]), let gid = UInt32(owner[1]) else {
            throw VirtFSError.corrupt("parse", "bad owner \(String(decoding: tokens[2], as: UTF8.self))")
        }
        var e = Entry(path: tokens[0], attributes: GuestAttributes(type: type, permissions: perms, uid: uid, gid: gid))
        e.hostOnly = hostOnly
        for option in tokens.dropFirst(3) {
            guard let eq = option.firstIndex(of: UInt8(ascii: "=")) else {
                throw VirtFSError.corrupt("parse", "expected KEY=VALUE, got \(String(decoding: option, as: UTF8.self))")
            }
            let key = String(decoding: option[..<eq], as: UTF8.self)
            let value = Array(option[(eq + 1)...])
            let text = String(decoding: value, as: UTF8.self)
            switch key {
            case "rdev":
                let parts = text.split(separator: ":")
                guard parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]) else {
                    throw VirtFSError.corrupt("parse", "bad rdev \(text)")
                }
                e.attributes.rdev = DeviceNumber(major: major, minor: minor)
            case "target": e.attributes.symlinkTarget = value
            case "content": e.content = value
            case "mtime":
                guard let t = Int64(text) else { throw VirtFSError.corrupt("parse", "bad mtime \(text)") }
                e.mtime = t
            case "acl": e.attributes.accessACL = try ACL(text: text)
            case "default-acl": e.attributes.defaultACL = try ACL(text: text)
            default:
                guard key.hasPrefix("xattr.") else { throw VirtFSError.corrupt("parse", "unknown key \(key)") }
                e.attributes.xattrs.append(Xattr(String(key.dropFirst(6)), value))
            }
        }
        if type == .symlink && e.attributes.symlinkTarget == nil {
            throw VirtFSError.corrupt("parse", "symlink needs target=")
        }
        return e
    }

    /// Splits on blanks; double-quoted parts (also inside KEY="VALUE") take C escapes.
    static func tokenize(_ line: Substring) throws -> [[UInt8]] {
        let bytes = Array(line.utf8)
        var tokens: [[UInt8]] = []
        var current: [UInt8] = []
        var inToken = false
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") {
                if inToken { tokens.append(current); current = []; inToken = false }
                i += 1
                continue
            }
            inToken = true
            if c != UInt8(ascii: "\"") {
                current.append(c)
                i += 1
                continue
            }
            i += 1
            while true {
                guard i < bytes.count else { throw VirtFSError.corrupt("parse", "unterminated string") }
                let q = bytes[i]
                if q == UInt8(ascii: "\"") { i += 1; break }
                if q != UInt8(ascii: "\\") { current.append(q); i += 1; continue }
                guard i + 1 < bytes.count else { throw VirtFSError.corrupt("parse", "dangling backslash") }
                let e = bytes[i + 1]
                switch e {
                case UInt8(ascii: "n"): current.append(0x0a); i += 2
                case UInt8(ascii: "t"): current.append(0x09); i += 2
                case UInt8(ascii: "r"): current.append(0x0d); i += 2
                case UInt8(ascii: "x"):
                    guard i + 3 < bytes.count, let v = Bytes.fromHex(String(decoding: bytes[(i + 2)...(i + 3)], as: UTF8.self)) else {
                        throw VirtFSError.corrupt("parse", "bad \\x escape")
                    }
                    current += v
                    i += 4
                case UInt8(ascii: "0")...UInt8(ascii: "7"):
                    var v = 0
                    var j = i + 1
                    while j < bytes.count && j < i + 4 && bytes[j] >= UInt8(ascii: "0") && bytes[j] <= UInt8(ascii: "7") {
                        v = v * 8 + Int(bytes[j] - UInt8(ascii: "0"))
                        j += 1
                    }
                    current.append(UInt8(truncatingIfNeeded: v))
                    i = j
                default: current.append(e); i += 2
                }
            }
        }
        if inToken { tokens.append(current) }
        return tokens
    }

    /// Writes the tree below `root` (an existing directory) in `model`.
    public func materialize(at root: [UInt8], model: SecurityModel, placement: HostPlacement) throws {
        let rootLocation = try Walker.exportRoot(root)
        let codec = model.codec
        let host = HostInodeCodec(model: .passthrough)
        for entry in entries {
            let components = Bytes.components(entry.path)
            if components.isEmpty {
                try codec.update(entry.attributes, of: rootLocation.entry(), placement: placement)
                continue
            }
            let location = try Walker.inside(rootLocation, relative: components, path: Bytes.join(root, entry.path))
            if let existing = entry.linkTo {
                let source = try Walker.inside(rootLocation, relative: Bytes.components(existing), path: existing)
                try codec.link(source.entry(), as: location.name, in: location.directory, placement: placement)
            } else if entry.hostOnly {
                try host.create(entry.attributes, named: location.name, in: location.directory, content: .bytes(entry.content), placement: placement)
            } else {
                try codec.create(entry.attributes, named: location.name, in: location.directory, content: .bytes(entry.content), placement: placement)
            }
        }
        // Times last, deepest first: creating children changes a directory's mtime.
        for entry in entries.reversed() {
            guard let mtime = entry.mtime else { continue }
            let components = Bytes.components(entry.path)
            let t = Timestamp(seconds: mtime, nanoseconds: 0)
            if components.isEmpty {
                try Sys.setTimes(rootLocation.directory.fd, [UInt8(ascii: ".")], atime: t, mtime: t)
            } else {
                let location = try Walker.inside(rootLocation, relative: components, path: entry.path)
                try Sys.setTimes(location.directory.fd, location.name, atime: t, mtime: t)
            }
        }
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}
