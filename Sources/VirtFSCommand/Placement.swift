import ArgumentParser
import Glibc
import VirtFSCore

/// How host objects made for a mapped model are owned and protected: QEMU's `fmode=`/`dmode=`
/// and the host user QEMU runs as. Shared by every tool that creates entries.
public struct PlacementOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Host mode of files for mapped models (octal; QEMU's default 0600).", valueName: "mode"))
    public var fmode = "0600"

    @Option(name: .long, help: ArgumentHelp("Host mode of directories for mapped models (octal; QEMU's default 0700).", valueName: "mode"))
    public var dmode = "0700"

    @Option(name: .long, help: ArgumentHelp("Host owner for mapped models, USER[:GROUP] or UID[:GID]: the user QEMU runs as (default: the invoking user).", valueName: "user"))
    public var owner: String?

    public init() {}

    public func validate() throws {
        guard UInt32(fmode, radix: 8) != nil, UInt32(dmode, radix: 8) != nil else { throw ValidationError("--fmode and --dmode take octal modes.") }
        if let owner { _ = try HostUser.parse(owner) }
    }

    public var placement: HostPlacement {
        get throws {
            let host = try owner.map(HostUser.parse) ?? (geteuid(), getegid())
            return HostPlacement(fileMode: UInt32(fmode, radix: 8)!, directoryMode: UInt32(dmode, radix: 8)!, owner: host)
        }
    }
}

/// --progress, for the tools whose runs take minutes.
public struct ProgressOptions: ParsableArguments {
    @Flag(name: .long, help: "Show progress on standard error also when it is not a terminal.")
    public var progress = false

    public init() {}
}

/// Progress on stderr, redrawn in place at most four times a second: what is done, of how much
/// when the total is known, the rate and the time left. Shown when stderr is a terminal (or
/// when asked for with --progress), never into a pipe or file by default.
public final class ProgressCounter {
    public enum Unit: Sendable {
        case entries
        /// Bytes of an input read front to back (an archive): the total is its size.
        case bytes
    }

    let enabled: Bool
    public private(set) var count = 0
    /// Entries done, or bytes read, as the caller counts them (see `advance(to:)`).
    public private(set) var position = 0
    public var total: Int?
    public var unit: Unit = .entries
    private let clock = Stopwatch()
    private var lastDraw = 0.0
    private var drawn = false

    /// `enabled`: the tool's own output does not use the terminal (no --json, no -v); `forced`:
    /// --progress, shown even when stderr is not a terminal.
    public init(enabled: Bool, forced: Bool = false) {
        self.enabled = forced || (enabled && isatty(2) == 1)
    }

    /// One more entry.
    public func tick() {
        count += 1
        if unit == .entries { position = count }
        draw()
    }

    /// The position reached in a byte count (an archive's bytes read so far).
    public func advance(to position: Int) {
        self.position = position
        draw()
    }

    private func draw(final: Bool = false) {
        guard enabled else { return }
        let now = clock.seconds
        guard final || now - lastDraw >= 0.25 else { return }
        lastDraw = now
        drawn = true
        let line = Array(("\r\u{1b}[K" + Self.line(done: position, count: count, total: total, unit: unit, seconds: now)).utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress!, $0.count) }
    }

    public func done() {
        guard enabled, drawn else { return }
        draw(final: true)
        _ = write(2, "\n", 1)
    }

    /// `12,345/100,000 entries (12%), 3,456/s, 0:26 left` — or without a total,
    /// `12,345 entries, 3,456/s`.
    public static func line(done: Int, count: Int, total: Int?, unit: Unit, seconds: Double) -> String {
        let rate = seconds > 0 ? Double(done) / seconds : 0
        func amount(_ n: Int) -> String { unit == .bytes ? Self.bytes(n) : TreeVerdict.number(n) }
        let noun = unit == .bytes ? "" : " entries"
        guard let total, total > 0 else { return "\(amount(done))\(noun), \(amount(Int(rate)))/s" }
        let shown = min(done, total)
        var text = "\(amount(shown))/\(amount(total))\(noun) (\(shown * 100 / total)%)"
        if unit == .bytes { text += ", \(TreeVerdict.number(count)) entries" }
        text += ", \(amount(Int(rate)))/s"
        if rate > 0 { text += ", \(Self.clock(Double(total - shown) / rate)) left" }
        return text
    }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var u = 0
        while value >= 1024 && u < units.count - 1 {
            value /= 1024
            u += 1
        }
        return u == 0 ? "\(n) B" : Decimal2.fixed(value).dropLast() + " " + units[u]
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        let (h, m, r) = (s / 3600, (s % 3600) / 60, s % 60)
        let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
        return h > 0 ? "\(h):\(two(m)):\(two(r))" : "\(m):\(two(r))"
    }
}
