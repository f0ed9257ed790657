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

/// A count on stderr, redrawn in place, when stderr is a terminal.
public final class ProgressCounter {
    let enabled: Bool
    public private(set) var count = 0

    public init(enabled: Bool) {
        self.enabled = enabled && isatty(2) == 1
    }

    public func tick() {
        count += 1
        if enabled && count % 1000 == 0 {
            let line = Array("\r\(count) entries".utf8)
            line.withUnsafeBytes { _ = write(2, $0.baseAddress!, $0.count) }
        }
    }

    public func done() {
        if enabled && count >= 1000 { _ = write(2, "\n", 1) }
    }
}
