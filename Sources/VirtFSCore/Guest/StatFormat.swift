import Glibc

/// Renders a guest view the way coreutils stat(1) renders an inode: `-c/--format`, `--printf`
/// directives with printf-style flags, width and precision, and stat's default layout.
///
/// Extensions (letters stat(1) leaves unused): `%M` security model, `%P` provenance of uid,
/// gid, mode and rdev (`uid=xattr,gid=xattr,mode=xattr,rdev=host`), `%L` raw symlink target.
public struct StatFormatter: Sendable {
    public var accounts: GuestAccounts

    public init(accounts: GuestAccounts = GuestAccounts()) {
        self.accounts = accounts
    }

    /// stat(1)'s default layout (coreutils 9.1), for the guest's view, plus a line naming the
    /// model and where each field came from.
    public static func defaultFormat(for view: GuestView) -> [UInt8] {
        var format = "  File: %N\n  Size: %-10s\tBlocks: %-10b IO Block: %-6o %F\n"
        format += "Device: %Hd,%Ld\tInode: %-11i Links: " + (view.type.hasDeviceNumber ? "%-5h Device type: %Hr,%Lr\n" : "%h\n")
        format += "Access: (%04a/%10.10A)  Uid: (%5u/%8U)   Gid: (%5g/%8G)\n"
        format += "Access: %x\nModify: %y\nChange: %z\n Birth: %w\n Model: %M (%P)\n"
        return Array(format.utf8)
    }

    /// Expands `format` for `view`. With `escapes`, backslash escapes are interpreted first
    /// (`--printf`). `literalNames` prints `%N` unquoted, as stat's default layout does.
    public func render(_ format: [UInt8], _ view: GuestView, escapes: Bool = false, literalNames: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < format.count {
            let c = format[i]
            if c == UInt8(ascii: "\\") && escapes {
                i = Self.escape(format, at: i, into: &out)
                continue
            }
            guard c == UInt8(ascii: "%") else {
                out.append(c)
                i += 1
                continue
            }
            // %[flags][width][.precision][H|L]conversion
            var j = i + 1
            var spec = Spec()
            while j < format.count, let flag = "-#0+ '".utf8.first(where: { $0 == format[j] }) {
                spec.flags.append(flag)
                j += 1
            }
            (spec.width, j) = Self.number(in: format, at: j, radix: 10)
            if j < format.count, format[j] == UInt8(ascii: ".") {
                (spec.precision, j) = Self.number(in: format, at: j + 1, radix: 10)
            }
            if j < format.count, format[j] == UInt8(ascii: "H") || format[j] == UInt8(ascii: "L"),
               j + 1 < format.count, format[j + 1] == UInt8(ascii: "d") || format[j + 1] == UInt8(ascii: "r") {
                spec.modifier = format[j]
                j += 1
            }
            guard j < format.count else {
                // A lone trailing % is printed as is, like stat.
                out.append(contentsOf: format[i...])
                break
            }
            let conversion = format[j]
            if conversion == UInt8(ascii: "%") && j == i + 1 {
                out.append(UInt8(ascii: "%"))
            } else {
                out.append(contentsOf: directive(conversion, spec, view, literalNames: literalNames))
            }
            i = j + 1
        }
        return out
    }

    struct Spec {
        var flags: [UInt8] = []
        var width = 0
        var precision: Int?
        var modifier: UInt8?
        func has(_ flag: Character) -> Bool { flags.contains(UInt8(ascii: flag.unicodeScalars.first!)) }
    }

    func directive(_ conversion: UInt8, _ spec: Spec, _ view: GuestView, literalNames: Bool) -> [UInt8] {
        let a = view.attributes
        // Matched as bytes: a Character per directive and entry is a string comparison each.
        switch Unicode.Scalar(conversion) {
        case "n": return pad(view.path, spec)
        case "N":
            var text = literalNames ? view.path : Self.shellQuote(view.path)
            if a.type == .symlink, let target = a.symlinkTarget, view.symlinkReadable {
                text += Array(" -> ".utf8) + (literalNames ? target : Self.shellQuote(target))
            }
            return pad(text, spec)
        case "a": return number(UInt64(a.permissions), radix: 8, spec)
        case "A": return pad(Array(Self.modeString(a.mode).utf8), spec)
        case "f": return number(UInt64(a.mode), radix: 16, spec)
        case "F": return pad(Array(Self.typeName(view).utf8), spec)
        case "s": return number(view.host.size, radix: 10, spec)
        case "b": return number(view.host.blocks, radix: 10, spec)
        case "B": return number(512, radix: 10, spec)
        case "o": return number(UInt64(view.host.blockSize), radix: 10, spec)
        case "u": return number(UInt64(a.uid), radix: 10, spec)
        case "g": return number(UInt64(a.gid), radix: 10, spec)
        case "U": return pad(Array((accounts.users[a.uid] ?? String(a.uid)).utf8), spec)
        case "G": return pad(Array((accounts.groups[a.gid] ?? String(a.gid)).utf8), spec)
        case "h": return number(view.host.nlink, radix: 10, spec)
        case "i": return number(view.host.identity.inode, radix: 10, spec)
        case "d": return device(view.host.identity.device, spec)
        case "D": return number(view.host.identity.device.glibc, radix: 16, spec)
        case "r": return device(a.rdev, spec)
        case "R": return number(a.rdev.glibc, radix: 16, spec)
        case "t": return number(UInt64(a.rdev.major), radix: 16, spec)
        case "T": return number(UInt64(a.rdev.minor), radix: 16, spec)
        case "x": return pad(Array(Self.humanTime(view.host.atime).utf8), spec)
        case "y": return pad(Array(Self.humanTime(view.host.mtime).utf8), spec)
        case "z": return pad(Array(Self.humanTime(view.host.ctime).utf8), spec)
        case "w": return pad(Array((view.host.btime.map(Self.humanTime) ?? "-").utf8), spec)
        case "X": return seconds(view.host.atime, spec)
        case "Y": return seconds(view.host.mtime, spec)
        case "Z": return seconds(view.host.ctime, spec)
        case "W": return seconds(view.host.btime ?? Timestamp(seconds: 0, nanoseconds: 0), spec)
        case "M": return pad(Array(view.model.rawValue.utf8), spec)
        case "P": return pad(Array(view.provenance.summary.utf8), spec)
        case "L": return pad(a.type == .symlink ? (a.symlinkTarget ?? []) : [], spec)
        default: return Array("?".utf8)
        }
    }

    func device(_ dev: DeviceNumber, _ spec: Spec) -> [UInt8] {
        switch spec.modifier {
        case UInt8(ascii: "H"): return number(UInt64(dev.major), radix: 10, spec)
        case UInt8(ascii: "L"): return number(UInt64(dev.minor), radix: 10, spec)
        default: return number(dev.glibc, radix: 10, spec)
        }
    }

    /// An unsigned number with printf's `-`, `0`, `#` flags and width.
    func number(_ value: UInt64, radix: Int, _ spec: Spec) -> [UInt8] {
        var digits = Self.digits(value, radix: UInt64(radix))
        if spec.flags.isEmpty && spec.width == 0 && spec.precision == nil { return digits }
        let zero = UInt8(ascii: "0")
        if let p = spec.precision, digits.count < p {
            digits = [UInt8](repeating: zero, count: p - digits.count) + digits
        }
        if spec.has("#") && value != 0 {
            if radix == 8 { digits = [zero] + digits } else if radix == 16 { digits = [zero, UInt8(ascii: "x")] + digits }
        }
        if spec.has("0") && !spec.has("-") && spec.precision == nil && digits.count < spec.width {
            digits = [UInt8](repeating: zero, count: spec.width - digits.count) + digits
        }
        return pad(digits, Spec(flags: spec.flags, width: spec.width, precision: nil))
    }

    /// `value` in lower-case digits of `radix` (2...16), as `String(value, radix:)` spells it,
    /// without making a String per number and entry.
    static func digits(_ value: UInt64, radix: UInt64) -> [UInt8] {
        var reversed: [UInt8] = []
        reversed.reserveCapacity(20)
        var v = value
        repeat {
            let d = UInt8(v % radix)
            reversed.append(d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "a") + d - 10)
            v /= radix
        } while v > 0
        return reversed.reversed()
    }

    /// A string with printf's width, `-` and precision (truncation).
    func pad(_ bytes: [UInt8], _ spec: Spec) -> [UInt8] {
        var text = bytes
        if let p = spec.precision, text.count > p { text = Array(text.prefix(p)) }
        guard text.count < spec.width else { return text }
        let fill = [UInt8](repeating: UInt8(ascii: " "), count: spec.width - text.count)
        return spec.has("-") ? text + fill : fill + text
    }

    /// Seconds since the epoch; a precision adds that many fractional digits, as stat does.
    func seconds(_ t: Timestamp, _ spec: Spec) -> [UInt8] {
        var text = String(t.seconds)
        if let p = spec.precision, p > 0 {
            let frac = String(t.nanoseconds).leftPadded(to: 9)
            text += "." + String(frac.prefix(min(p, 9))) + String(repeating: "0", count: max(0, p - 9))
        }
        return pad(Array(text.utf8), Spec(flags: spec.flags, width: spec.width, precision: nil))
    }

    /// `2026-11-25 01:23:32.300336947 +0000`, in the local time zone like stat.
    public static func humanTime(_ t: Timestamp) -> String {
        var seconds = time_t(t.seconds)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buf = [CChar](repeating: 0, count: 80)
        // The nanoseconds go into the format itself: digits are no strftime directive.
        strftime(&buf, buf.count, "%Y-%m-%d %H:%M:%S.\(String(t.nanoseconds).leftPadded(to: 9)) %z", &parts)
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// ls-style mode string: `-rwsr-xr-t` and friends.
    public static func modeString(_ mode: UInt32) -> String {
        var s = String(FileType(mode: mode)?.letter ?? "?")
        // Owner, group, other: each class's set-id or sticky bit shows in its x column.
        for (shift, special, mark) in [(6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")] as [(UInt32, UInt32, String)] {
            let bits = mode >> shift
            let x = mode & special == 0 ? (bits & 1 != 0 ? "x" : "-") : (bits & 1 != 0 ? mark : mark.uppercased())
            s += (bits & 4 != 0 ? "r" : "-") + (bits & 2 != 0 ? "w" : "-") + x
        }
        return s
    }

    public static func typeName(_ view: GuestView) -> String {
        switch view.type {
        case .regular: return view.host.size == 0 ? "regular empty file" : "regular file"
        case .directory: return "directory"
        case .symlink: return "symbolic link"
        case .characterDevice: return "character special file"
        case .blockDevice: return "block special file"
        case .fifo: return "fifo"
        case .socket: return "socket"
        }
    }

    /// coreutils' shell-escape-always quoting, as `stat -c %N` prints: `'a b'`, `'n'$'\n''l'`,
    /// `"it's"` — the toolkit's one display quoting (`Bytes.shellEscaped`), always quoted.
    public static func shellQuote(_ bytes: [UInt8]) -> [UInt8] {
        Array(Bytes.shellEscaped(bytes, always: true).utf8)
    }

    /// The number in digits of `radix` (at most 16) at `start`, at most `limit` of them, and
    /// the index after it.
    static func number(in bytes: [UInt8], at start: Int, radix: Int, limit: Int = .max) -> (value: Int, end: Int) {
        var value = 0
        var j = start
        while j < bytes.count, j - start < limit, let digit = Bytes.nibble(bytes[j]), Int(digit) < radix {
            value = value * radix + Int(digit)
            j += 1
        }
        return (value, j)
    }

    /// `--printf` escapes: \n \t \\ \" \a \b \f \r \v, \ooo octal, \xHH hex.
    static func escape(_ format: [UInt8], at i: Int, into out: inout [UInt8]) -> Int {
        guard i + 1 < format.count else {
            out.append(UInt8(ascii: "\\"))
            return i + 1
        }
        let c = format[i + 1]
        let simple: [UInt8: UInt8] = [UInt8(ascii: "n"): 0x0a, UInt8(ascii: "t"): 0x09, UInt8(ascii: "\\"): 0x5c,
                                      UInt8(ascii: "\""): 0x22, UInt8(ascii: "a"): 0x07, UInt8(ascii: "b"): 0x08,
                                      UInt8(ascii: "f"): 0x0c, UInt8(ascii: "r"): 0x0d, UInt8(ascii: "v"): 0x0b,
                                      UInt8(ascii: "e"): 0x1b]
        if let s = simple[c] {
            out.append(s)
            return i + 2
        }
        // \ooo (one to three octal digits) and \xHH (one or two hex digits); a bare \x is itself.
        let hex = c == UInt8(ascii: "x")
        let (value, end) = number(in: format, at: hex ? i + 2 : i + 1, radix: hex ? 16 : 8, limit: hex ? 2 : 3)
        if end > (hex ? i + 2 : i + 1) {
            out.append(UInt8(truncatingIfNeeded: value))
            return end
        }
        out.append(contentsOf: [UInt8(ascii: "\\"), c])
        return i + 2
    }
}

extension String {
    /// The text with zeros in front up to `width` characters (octal modes, nanoseconds).
    public func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
