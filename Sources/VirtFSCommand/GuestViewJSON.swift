import Glibc
import VirtFSCore

/// One JSON Lines record per entry: the guest view with the provenance of each field.
/// Byte strings that are not UTF-8 (names, targets) are given as `*_hex` instead.
public struct GuestViewRecord {
    public let fields: [String: Any]

    public init(_ view: GuestView) throws {
        let a = view.attributes
        func time(_ t: Timestamp) -> String { "\(t.seconds)." + String(t.nanoseconds).leftPadded(to: 9) }
        func device(_ major: UInt32, _ minor: UInt32) -> [String: Any] { ["major": major, "minor": minor] }
        let p = view.provenance
        var f: [String: Any] = [
            "path": view.path,
            "model": view.model.rawValue,
            "type": a.type.keyword,
            "mode": "0" + String(a.mode, radix: 8),
            "permissions": String(a.permissions, radix: 8).leftPadded(to: 4),
            "uid": a.uid,
            "gid": a.gid,
            "rdev": device(a.rdev.major, a.rdev.minor),
            "size": view.host.size,
            "blocks": view.host.blocks,
            "nlink": view.host.nlink,
            "inode": view.host.identity.inode,
            "device": device(view.host.identity.device.major, view.host.identity.device.minor),
            "atime": time(view.host.atime),
            "mtime": time(view.host.mtime),
            "ctime": time(view.host.ctime),
            "provenance": ["uid": p.uid.rawValue, "gid": p.gid.rawValue, "mode": p.mode.rawValue,
                           "rdev": p.rdev.rawValue, "acl": p.acl.rawValue] as [String: Any],
            "host_fallback": view.hostFallback,
            "diagnostics": view.diagnostics.map(\.description) as [Any],
        ]
        if let btime = view.host.btime { f["btime"] = time(btime) }
        if a.type == .symlink, let target = a.symlinkTarget {
            f["symlink_target"] = target
            f["symlink_readable"] = view.symlinkReadable
        }
        if a.accessACL != nil || a.defaultACL != nil {
            f["acl"] = ["access": try a.accessACL?.text().commaJoined(), "default": try a.defaultACL?.text().commaJoined()]
                .compactMapValues { $0 } as [String: Any]
        }
        f["xattrs"] = Dictionary(a.xattrs.map { (String(decoding: $0.name, as: UTF8.self), "0x" + Bytes.hex($0.value)) }, uniquingKeysWith: { $1 }) as [String: Any]
        fields = f
    }

    /// The record as one line of JSON, newline included.
    public func line() -> [UInt8] {
        JSONLine.encode(fields)
    }
}

extension String {
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
        // A byte string is written as text when it is UTF-8, else in hex (`value`) under `KEY_hex`.
        let pairs = fields.map { key, value in (byteString(value).map(Bytes.isUTF8) == false ? key + "_hex" : key, value) }
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
        case let v as any BinaryInteger: out += Array("\(v)".utf8)
        case let v as Double: out += Array((v.isFinite ? Decimal2.shortest(v) : "null").utf8)
        case let v where byteString(v) != nil:
            let v = byteString(v)!
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

    /// A value that is a byte string by type: an empty `[Any]` would cast to `[UInt8]` too.
    static func byteString(_ value: Any) -> [UInt8]? {
        type(of: value) == [UInt8].self ? value as? [UInt8] : nil
    }

    /// RFC 8259 string escaping: quote, backslash and control characters only.
    static func string(_ text: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
            case 0x0a, 0x0d, 0x09: out += [UInt8(ascii: "\\"), byte == 0x0a ? UInt8(ascii: "n") : byte == 0x0d ? UInt8(ascii: "r") : UInt8(ascii: "t")]
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

    /// Writes a run's summary line: as text, or with `json` as one record of `fields` with the
    /// text under "summary".
    public func writeSummary(_ text: String, json: Bool, _ fields: [String: Any]) {
        if json {
            writeJSON(fields.merging(["summary": text]) { _, text in text })
        } else {
            write(text + "\n")
        }
    }
}
