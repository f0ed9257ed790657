import FoundationEssentials
import Glibc
import VirtFSCore

/// One JSON Lines record per entry: the guest view with the provenance of each field.
/// Byte strings that are not UTF-8 (names, targets) are given as `*_hex` instead.
public struct GuestViewRecord: Encodable {
    struct Device: Encodable {
        var major: UInt32
        var minor: UInt32
    }
    struct ACLs: Encodable {
        var access: String?
        var `default`: String?
    }

    var path: String?
    var path_hex: String?
    var model: String
    var type: String
    var mode: String
    var permissions: String
    var uid: UInt32
    var gid: UInt32
    var rdev: Device
    var size: UInt64
    var blocks: UInt64
    var nlink: UInt64
    var inode: UInt64
    var device: Device
    var atime: String
    var mtime: String
    var ctime: String
    var btime: String?
    var symlink_target: String?
    var symlink_target_hex: String?
    var symlink_readable: Bool?
    var acl: ACLs?
    var xattrs: [String: String]
    var provenance: Provenance
    var host_fallback: Bool
    var diagnostics: [String]

    public init(_ view: GuestView) throws {
        let a = view.attributes
        if Bytes.isUTF8(view.path) { path = String(decoding: view.path, as: UTF8.self) } else { path_hex = Bytes.hex(view.path) }
        model = view.model.rawValue
        type = a.type.keyword
        mode = "0" + String(a.mode, radix: 8)
        permissions = String(a.permissions, radix: 8).leftPad(4)
        uid = a.uid
        gid = a.gid
        rdev = Device(major: a.rdev.major, minor: a.rdev.minor)
        size = view.size
        blocks = view.blocks
        nlink = view.nlink
        inode = view.identity.inode
        device = Device(major: view.identity.device.major, minor: view.identity.device.minor)
        func time(_ t: Timestamp) -> String { "\(t.seconds)." + String(t.nanoseconds).leftPad(9) }
        atime = time(view.atime)
        mtime = time(view.mtime)
        ctime = time(view.ctime)
        btime = view.btime.map(time)
        if a.type == .symlink, let target = a.symlinkTarget {
            if Bytes.isUTF8(target) { symlink_target = String(decoding: target, as: UTF8.self) } else { symlink_target_hex = Bytes.hex(target) }
            symlink_readable = view.symlinkReadable
        }
        if a.accessACL != nil || a.defaultACL != nil {
            acl = ACLs(access: try a.accessACL.map { try $0.text().commaJoined() },
                       default: try a.defaultACL.map { try $0.text().commaJoined() })
        }
        var x: [String: String] = [:]
        for attribute in a.xattrs { x[String(decoding: attribute.name, as: UTF8.self)] = "0x" + Bytes.hex(attribute.value) }
        xattrs = x
        provenance = view.provenance
        host_fallback = view.hostFallback
        diagnostics = view.diagnostics.map(\.description)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// The record as one line of JSON, newline included.
    public func line() throws -> [UInt8] {
        Array(try Self.encoder.encode(self)) + [0x0a]
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }

    /// libacl's one-entry-per-line text as a comma-separated list, effective-rights comments dropped.
    func commaJoined() -> String {
        split(separator: "\n").map { line in
            String(line.split(separator: "\t").first ?? line[...])
        }.joined(separator: ",")
    }
}

/// One JSON Lines record, keys sorted, slashes not escaped: the one writer every tool's --json
/// goes through. Values are strings, integers, booleans, doubles, nested objects and arrays of
/// them; byte strings (`[UInt8]`: names need not be UTF-8) are written as text when they are
/// UTF-8, else under `KEY_hex`.
public enum JSONLine {
    public static func encode(_ fields: [String: Any]) -> [UInt8] {
        var out: [UInt8] = []
        object(fields, into: &out)
        out.append(0x0a)
        return out
    }

    static func object(_ fields: [String: Any], into out: inout [UInt8]) {
        var pairs: [(String, Any)] = []
        for (key, value) in fields {
            if let bytes = value as? [UInt8] {
                if Bytes.isUTF8(bytes) { pairs.append((key, String(decoding: bytes, as: UTF8.self))) } else { pairs.append((key + "_hex", Bytes.hex(bytes))) }
            } else {
                pairs.append((key, value))
            }
        }
        out.append(UInt8(ascii: "{"))
        for (i, (key, value)) in pairs.sorted(by: { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            string(key, into: &out)
            out.append(UInt8(ascii: ":"))
            self.value(value, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    static func value(_ value: Any, into out: inout [UInt8]) {
        switch value {
        case let v as String: string(v, into: &out)
        case let v as Bool: out += Array((v ? "true" : "false").utf8)
        case let v as Int: out += Array(String(v).utf8)
        case let v as Int32: out += Array(String(v).utf8)
        case let v as Int64: out += Array(String(v).utf8)
        case let v as UInt: out += Array(String(v).utf8)
        case let v as UInt32: out += Array(String(v).utf8)
        case let v as UInt64: out += Array(String(v).utf8)
        case let v as Double: out += Array((v.isFinite ? Decimal2.shortest(v) : "null").utf8)
        case let v as [UInt8]:
            // A bare byte string inside an array has no key to carry `_hex`: text, lossless when UTF-8.
            string(Bytes.isUTF8(v) ? String(decoding: v, as: UTF8.self) : Bytes.hex(v), into: &out)
        case let v as [String: Any]: object(v, into: &out)
        case let v as [Any]:
            out.append(UInt8(ascii: "["))
            for (i, element) in v.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                self.value(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case Optional<Any>.none: out += Array("null".utf8)
        default: string(String(describing: value), into: &out)
        }
    }

    /// RFC 8259 string escaping: quote, backslash and control characters only.
    static func string(_ text: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0a: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0d: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20, 0x7f:
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Numbers for summaries without Foundation's String(format:).
public enum Decimal2 {
    /// `value` with two decimals: C's own `%.2f`.
    public static func fixed(_ value: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.2f", $0) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The shortest decimal that reads back as `value` (Swift's own description).
    public static func shortest(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }
}

/// Wall-clock time since a start, for the "N s" at the end of a summary.
public struct Stopwatch {
    let started = ContinuousClock.now

    public init() {}

    public var seconds: Double {
        let d = ContinuousClock.now - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// `12.34`, as the summaries print it.
    public var text: String { Decimal2.fixed(seconds) }
}

extension Console {
    /// Writes one JSON Lines record to standard output.
    public func writeJSON(_ fields: [String: Any]) {
        write(JSONLine.encode(fields))
    }
}
