import Foundation
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

/// One JSON Lines record, keys sorted. Byte-string values (`[UInt8]`, names need not be UTF-8)
/// are written as text when they are UTF-8, else under `KEY_hex`.
public enum JSONLine {
    public static func encode(_ fields: [String: Any]) -> [UInt8] {
        var object: [String: Any] = [:]
        for (key, value) in fields {
            if let bytes = value as? [UInt8] {
                if Bytes.isUTF8(bytes) { object[key] = String(decoding: bytes, as: UTF8.self) } else { object[key + "_hex"] = Bytes.hex(bytes) }
            } else {
                object[key] = value
            }
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Array(data) + [0x0a]
    }
}

extension Console {
    /// Writes one JSON Lines record to standard output.
    public func writeJSON(_ fields: [String: Any]) {
        write(JSONLine.encode(fields))
    }
}
