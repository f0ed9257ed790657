import ArgumentParser
import Glibc
import VirtFSCommand
import VirtFSCore
import VirtFSTestSupport

/// Test support: materialises a tree spec (testdata/trees/*.tree) in a security model, through
/// the library's encoders. Used by the QEMU oracle suite and the benchmarks.
@main
struct MakeTree: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vt-mktree",
        abstract: "Write a guest tree described in a .tree spec into DIR, in a security model (test support)."
    )

    @Option(name: .long, help: "Security model to write.")
    var model: SecurityModel

    @Option(name: .long, help: "Host mode of files created for mapped models (octal).")
    var fmode = "0600"

    @Option(name: .long, help: "Host mode of directories created for mapped models (octal).")
    var dmode = "0700"

    @Option(name: .long, help: "Host owner UID:GID of created objects (mapped models).")
    var owner: String?

    @Argument(help: "The tree spec.")
    var spec: String

    @Argument(help: "An existing, empty directory: the export root.")
    var directory: String

    func run() throws {
        let console = Console(tool: "vt-mktree")
        do {
            var text = ""
            let fd = open(spec, O_RDONLY)
            guard fd >= 0 else { throw VirtFSError.system("open", path: Array(spec.utf8), errno: errno) }
            defer { close(fd) }
            text = String(decoding: try Sys.readAll(fd, name: Array(spec.utf8), limit: 64 << 20).bytes, as: UTF8.self)
            let tree = try TreeSpec(text: text)
            var placement = HostPlacement(fileMode: UInt32(fmode, radix: 8) ?? 0o600, directoryMode: UInt32(dmode, radix: 8) ?? 0o700)
            if let owner {
                let parts = owner.split(separator: ":")
                guard parts.count == 2, let uid = UInt32(parts[0]), let gid = UInt32(parts[1]) else {
                    throw ValidationError("--owner takes UID:GID")
                }
                placement.owner = (uid, gid)
            }
            try tree.materialize(at: RawArguments.bytes(for: directory), model: model, placement: placement)
        } catch let error as VirtFSError {
            console.error(error)
            throw ExitCode(1)
        }
    }
}
