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

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `\ooo`: a byte as a three-digit octal escape, as getfattr, ls and stat write one.
    public static func octalEscape(_ byte: UInt8) -> String {
        "\\" + String(byte, radix: 8).leftPadded(to: 3)
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

    /// The components of `path` below the path `root` it starts with.
    public static func components(_ path: [UInt8], below root: [UInt8]) -> [[UInt8]] {
        components(Array(path.dropFirst(root.count)))
    }

    public static func isUTF8(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }

    /// The value's bytes, least significant first (the kernel's and QEMU's xattr layouts).
    public static func little<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    public static func readLittle<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>, as: T.Type) -> T {
        var value: T = 0
        for (i, b) in bytes.prefix(MemoryLayout<T>.size).enumerated() {
            value |= T(b) << (8 * i)
        }
        return value
    }

    /// An xattr name for a message, as getfattr(1) escapes it: bytes outside printable ASCII
    /// (a guest can set any) and the backslash as `\ooo` octal escapes, so that the name reads
    /// back exactly. Every tool's messages name xattrs through this.
    public static func xattrName(_ name: [UInt8]) -> String {
        name.map { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\\") ? String(Unicode.Scalar($0)) : octalEscape($0) }.joined()
    }

    /// The printable characters that mean something to a shell: a name with one is quoted.
    static let shellSpecial = Set(" \t!\"#$&'()*;<=>?[\\]^`{|}~".unicodeScalars)

    /// A name as every tool shows it in text (messages, fsck findings, -v lines): the way
    /// ls(1) and stat(1) quote with `--quoting-style=shell-escape`, so that a name a guest
    /// chose can neither forge a line nor reach the terminal as a control sequence. A name of
    /// printable characters that mean nothing to a shell is shown as is (unless `always`);
    /// otherwise it is single-quoted, and control characters, invalid UTF-8 and invisible
    /// format characters (which ls(1) may show as they are) go in `$'...'` escapes: `'new'$'\n''line'`, `'bad'$'\377'`.
    /// JSON output keeps the raw bytes instead (`path`, or `path_hex`).
    public static func shellEscaped(_ bytes: [UInt8], always: Bool = false) -> String {
        // Runs of shown characters and of `$'...'` escapes, each quoted as a whole.
        var runs: [(escaped: Bool, text: String)] = []
        var needsQuotes = always || bytes.isEmpty
        func add(_ text: String, escaped: Bool) {
            if runs.last?.escaped == escaped { runs[runs.count - 1].text += text } else { runs.append((escaped, text)) }
        }
        var i = 0
        while i < bytes.count {
            let (scalar, length) = decodeScalar(bytes, at: i)
            if let scalar, isPrintable(scalar) {
                if shellSpecial.contains(scalar) { needsQuotes = true }
                add(String(Character(scalar)), escaped: false)
            } else {
                needsQuotes = true
                // C's named escapes for BEL through CR, octal for the rest.
                for b in bytes[i..<(i + length)] { add((7...13).contains(b) ? "\\" + String(Array("abtnvfr")[Int(b) - 7]) : octalEscape(b), escaped: true) }
            }
            i += length
        }
        // Without quotes there is no escape: the name is one run of shown characters.
        guard needsQuotes else { return runs.map(\.text).joined() }
        // As coreutils: a name whose only trouble is a single quote reads best double-quoted.
        if runs.count == 1, !runs[0].escaped, runs[0].text.contains("'"),
           !runs[0].text.contains(where: { "\"$`\\!".contains($0) }) {
            return "\"" + runs[0].text + "\""
        }
        return runs.map { run in
            run.escaped ? "$'" + run.text + "'" : "'" + run.text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
        }.joined()
    }

    /// One UTF-8 scalar at `i`, or nil and the length of the invalid sequence (1 byte).
    static func decodeScalar(_ bytes: [UInt8], at i: Int) -> (Unicode.Scalar?, Int) {
        let lead = bytes[i]
        let length: Int
        switch lead {
        case 0x00...0x7f: return (Unicode.Scalar(lead), 1)
        case 0xc2...0xdf: length = 2
        case 0xe0...0xef: length = 3
        case 0xf0...0xf4: length = 4
        default: return (nil, 1)
        }
        guard i + length <= bytes.count,
              let s = String(validating: bytes[i..<(i + length)], as: UTF8.self), let scalar = s.unicodeScalars.first,
              s.unicodeScalars.count == 1 else { return (nil, 1) }
        return (scalar, length)
    }

    /// Shown as is: not a control character, not an invisible format or separator character
    /// (a bidirectional override could reorder what the user reads), not unassigned.
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .unassigned, .surrogate, .privateUse: return false
        default: return true
        }
    }
}
