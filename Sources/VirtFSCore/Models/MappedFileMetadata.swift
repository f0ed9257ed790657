/// The text of a `.virtfs_metadata/NAME` or `.virtfs_metadata_root` file.
///
/// `parse` reads it exactly as QEMU's `local_mapped_file_attr` does — `fgets` into a 100-byte
/// buffer (lines of at most 99 bytes), key matched by prefix (`strncmp`), one character skipped
/// after the key, then `atoi`; unknown lines ignored, later duplicates win — and records every
/// way the text deviates from what QEMU writes, which QEMU itself would silently misread.
public struct MappedFileMetadata: Sendable, Equatable {
    public enum Key: String, CaseIterable, Sendable {
        case uid = "virtfs.uid"
        case gid = "virtfs.gid"
        case mode = "virtfs.mode"
        case rdev = "virtfs.rdev"
    }

    /// A way the text differs from QEMU's own output, at a byte offset.
    public struct Deviation: Sendable, Equatable, CustomStringConvertible {
        public var offset: Int
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Values as QEMU holds them: C ints, as `atoi` produced them.
    public var uid: Int32?
    public var gid: Int32?
    public var mode: Int32?
    public var rdev: Int32?
    public var deviations: [Deviation] = []

    mutating func deviate(_ offset: Int, _ line: Int, _ message: String) {
        deviations.append(Deviation(offset: offset, line: line, message: message))
    }

    /// QEMU's `ATTR_MAX`: fgets reads at most 99 bytes per call.
    static let fgetsLimit = 99

    public static func parse(_ bytes: [UInt8]) -> MappedFileMetadata {
        var result = MappedFileMetadata()
        var seen: [Key] = []
        var offset = 0
        var line = 1
        while offset < bytes.count {
            // One fgets call: up to and including a newline, at most 99 bytes.
            var end = offset
            while end < bytes.count && end - offset < fgetsLimit {
                end += 1
                if bytes[end - 1] == UInt8(ascii: "\n") { break }
            }
            let chunk = Array(bytes[offset..<end])
            result.scan(chunk, offset: offset, line: line, seen: &seen)
            if chunk.last == UInt8(ascii: "\n") {
                line += 1
            } else if end < bytes.count {
                result.deviate(end, line, "line longer than \(fgetsLimit) bytes; QEMU reads the rest as a new line")
            } else {
                result.deviate(end, line, "no newline at end of file")
            }
            offset = end
        }
        let order = seen.map { Key.allCases.firstIndex(of: $0)! }
        if order != order.sorted() {
            result.deviate(0, 1, "keys are not in QEMU's order (uid, gid, mode, rdev)")
        }
        return result
    }

    /// Applies one fgets chunk the way QEMU does, and notes what is not canonical.
    mutating func scan(_ chunk: [UInt8], offset: Int, line: Int, seen: inout [Key]) {
        // fgets stops at a NUL for strncmp and atoi: the C string is the chunk up to it.
        if let nul = chunk.firstIndex(of: 0) {
            deviate(offset + nul, line, "NUL byte; QEMU stops reading the line there")
        }
        // QEMU checks uid and gid with 10-byte prefixes, mode and rdev with 11.
        guard let key = Key.allCases.first(where: { chunk.starts(with: $0.rawValue.utf8) }) else {
            let shown = String(decoding: chunk.prefix(40), as: UTF8.self).replacingNewlines()
            deviate(offset, line, "unknown line \"\(shown)\" ignored by QEMU")
            return
        }
        let keyLength = key.rawValue.utf8.count
        let value = Self.atoi(chunk, from: keyLength + 1)
        switch key {
        case .uid: uid = value
        case .gid: gid = value
        case .mode: mode = value
        case .rdev: rdev = value
        }
        if seen.contains(key) {
            deviate(offset, line, "duplicate \(key.rawValue); QEMU uses the last one")
        }
        seen.append(key)
        let separator = chunk.count > keyLength ? chunk[keyLength] : 0
        if separator != UInt8(ascii: "=") {
            deviate(offset + keyLength, line, "\(key.rawValue) is not followed by '='; QEMU skips one character regardless")
        }
        var text = chunk.count > keyLength + 1 ? Array(chunk[(keyLength + 1)...]) : []
        if text.last == UInt8(ascii: "\n") { text.removeLast() }
        if !Self.isCanonicalInt(text) {
            let shown = String(decoding: text.prefix(24), as: UTF8.self)
            deviate(offset + keyLength + 1, line, "\(key.rawValue) value \"\(shown)\" is not a plain decimal int; QEMU reads \(value)")
        } else if value == -1 {
            deviate(offset + keyLength + 1, line, "\(key.rawValue)=-1 means 'unset' to QEMU, which drops it on its next rewrite")
        }
    }

    /// glibc `atoi`: `(int)strtol(s, NULL, 10)` — leading white space, a sign, digits; stops at
    /// the first other byte; saturates at the range of long and then truncates to int.
    public static func atoi(_ bytes: [UInt8], from start: Int) -> Int32 {
        var i = start
        func at(_ k: Int) -> UInt8 { k < bytes.count ? bytes[k] : 0 }
        while [0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d].contains(at(i)) { i += 1 }
        let negative = at(i) == UInt8(ascii: "-")
        if negative || at(i) == UInt8(ascii: "+") { i += 1 }
        // Saturates: once past UInt64, the value clamps to strtol's LONG_MIN or LONG_MAX below.
        var magnitude: UInt64 = 0
        while at(i) >= UInt8(ascii: "0") && at(i) <= UInt8(ascii: "9") {
            let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(at(i) - UInt8(ascii: "0")))
            magnitude = o1 || o2 ? .max : m2
            i += 1
        }
        let long = negative ? (magnitude > 1 << 63 ? Int64.min : Int64(bitPattern: 0 &- magnitude)) : Int64(clamping: magnitude)
        return Int32(truncatingIfNeeded: long)
    }

    /// `-?[1-9][0-9]*|0` within the range of int: what QEMU's `%d` writes, so the text is the
    /// one the value prints as.
    static func isCanonicalInt(_ text: [UInt8]) -> Bool {
        Int32(String(decoding: text, as: UTF8.self)).map { Array(String($0).utf8) == text } ?? false
    }

    /// The bytes QEMU's `local_set_mapped_file_attrat` writes: `virtfs.KEY=%d\n` for each set
    /// field in uid, gid, mode, rdev order; -1 means unset and is never written.
    public func serialized() -> [UInt8] {
        var text = ""
        for (key, value) in [(Key.uid, uid), (.gid, gid), (.mode, mode), (.rdev, rdev)] {
            if let value, value != -1 { text += "\(key.rawValue)=\(value)\n" }
        }
        return Array(text.utf8)
    }
}

extension String {
    func replacingNewlines() -> String {
        var out = ""
        for c in unicodeScalars {
            if c == "\n" { out += "\\n" } else if c.value < 0x20 || c == "\u{7f}" { out += "\\x" + String(c.value, radix: 16) } else { out.unicodeScalars.append(c) }
        }
        return out
    }
}
