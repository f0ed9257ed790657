/// Helpers for names and values as raw bytes: file names on Linux are bytes, not strings.
public enum Bytes {
    /// Lower-case hex without prefix.
    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        let digits: [Character] = Array("0123456789abcdef")
        var out = ""
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return out
    }

    /// Parses hex digits (optionally `0x`-prefixed); nil on any other character.
    public static func fromHex(_ text: some StringProtocol) -> [UInt8]? {
        var s = Substring(text)
        if s.hasPrefix("0x") || s.hasPrefix("0X") { s = s.dropFirst(2) }
        let chars = Array(s.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Joins a directory path and a name with one `/`.
    public static func join(_ dir: [UInt8], _ name: [UInt8]) -> [UInt8] {
        if dir.isEmpty { return name }
        if dir.last == UInt8(ascii: "/") { return dir + name }
        return dir + [UInt8(ascii: "/")] + name
    }

    /// A path's parent and last component, trailing slashes ignored: `a/b/` -> (`a`, `b`),
    /// `b` -> (`.`, `b`), `/b` -> (`/`, `b`).
    public static func splitParent(_ path: [UInt8]) -> (parent: [UInt8], name: [UInt8]) {
        var trimmed = path
        while trimmed.count > 1 && trimmed.last == UInt8(ascii: "/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: UInt8(ascii: "/")) else { return ([UInt8(ascii: ".")], trimmed) }
        return (slash == 0 ? [UInt8(ascii: "/")] : Array(trimmed[..<slash]), Array(trimmed[(slash + 1)...]))
    }

    /// Splits a path into its components, dropping empty ones and `.`.
    public static func components(_ path: [UInt8]) -> [[UInt8]] {
        path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
            .map(Array.init)
            .filter { $0 != [UInt8(ascii: ".")] }
    }

    public static func isUTF8(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }

    public static func little32(_ value: UInt32) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    public static func little64(_ value: UInt64) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    public static func readLittle<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>, as: T.Type) -> T {
        var value: T = 0
        for (i, b) in bytes.prefix(MemoryLayout<T>.size).enumerated() {
            value |= T(b) << (8 * i)
        }
        return value
    }
}
