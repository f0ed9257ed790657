import ArgumentParser
import Glibc
import VirtFSCore

extension SecurityModel: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(name: argument)
    }

    public static var allValueStrings: [String] { allCases.map(\.rawValue) + ["mapped"] }
}

/// Options every tool that reads a tree takes.
public struct TreeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Security model the tree is served with: passthrough, none, mapped-xattr (or mapped), mapped-file. Default: detected from the tree.",
        valueName: "model"))
    public var model: SecurityModel?

    @Option(name: .long, help: ArgumentHelp(
        "The export root (QEMU's path=). Operands are resolved inside it without following symlinks, and guest user names come from its etc/passwd and etc/group.",
        valueName: "dir"))
    public var root: String?

    public init() {}

    public var rootBytes: [UInt8]? { root.map(RawArguments.bytes(for:)) }
}

/// Command-line arguments as the raw bytes the kernel passed: file names need not be UTF-8,
/// and Swift's `CommandLine.arguments` repairs invalid sequences.
public enum RawArguments {
    public static func bytes(for parsed: String) -> [UInt8] {
        for index in 0..<Int(CommandLine.argc) {
            guard let arg = CommandLine.unsafeArgv[index] else { continue }
            let raw = Array(UnsafeBufferPointer(start: UnsafeRawPointer(arg).assumingMemoryBound(to: UInt8.self), count: strlen(arg)))
            if raw == Array(parsed.utf8) { return raw }
            if String(decoding: raw, as: UTF8.self) == parsed && !Bytes.isUTF8(raw) { return raw }
        }
        return Array(parsed.utf8)
    }
}
