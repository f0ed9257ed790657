import ArgumentParser
import Glibc
import VirtFSCommand
import VirtFSCore
import VirtFSQemu

@main
struct VirtfsQemu: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-qemu",
        abstract: "Print the QEMU or libvirt options that serve a VirtFS tree, or check given ones against it.",
        discussion: """
            Exit status, as fsck(8): 0 the options match the tree, 4 they do not, 8 operational \
            error, 16 usage error.
            """,
        version: "0.1.0",
        subcommands: [PrintOptions.self, Check.self]
    )

    static func main() { main(usageStatus: 16) }

    func run() throws { throw ValidationError("Name a subcommand: options or check.") }
}

/// The tree both subcommands serve or check, and its model.
struct ExportOperand: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Security model of the tree (default: detected).", valueName: "model"))
    var model: SecurityModel?

    @Argument(help: ArgumentHelp("The export root.", valueName: "tree"))
    var tree: String

    /// The export as the tools read it; a tree that cannot be read is an operational error (8).
    func inspect(_ console: Console) throws -> QemuExport {
        guard let export = console.attempt({ try QemuExport.inspect(RawArguments.bytes(for: tree), model: model) }) else { throw ExitCode(8) }
        return export
    }
}

struct PrintOptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "options",
        abstract: "Print the -fsdev and -device options (or the libvirt <filesystem> element) that serve TREE in its model, and the user QEMU must run as."
    )

    @Option(name: .long, help: ArgumentHelp("Mount tag the guest mounts (default: the tree's base name, or 'share').", valueName: "tag"))
    var tag: String?

    @Option(name: .long, help: ArgumentHelp("Id of the -fsdev (default: fs0).", valueName: "id"))
    var id = "fs0"

    @Flag(name: .long, help: "Print the libvirt <filesystem> element and <seclabel> instead.")
    var libvirt = false

    @OptionGroup var operand: ExportOperand

    func validate() throws {
        if let tag, tag.isEmpty { throw ValidationError("--tag must not be empty.") }
        if id.isEmpty || id.contains(",") { throw ValidationError("--id must be a non-empty name without commas.") }
    }

    func run() throws {
        let console = Console(tool: "virtfs-qemu")
        console.write(QemuGlue.options(try operand.inspect(console), tag: tag, id: id, libvirt: libvirt))
        console.flush()
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the 9p shares of a QEMU command line (after --) or a libvirt domain XML against TREE."
    )

    @Option(name: .long, help: ArgumentHelp("Check this libvirt domain XML instead of a command line.", valueName: "file"))
    var libvirt: String?

    @Option(name: .long, help: ArgumentHelp("Host user QEMU runs as, USER[:GROUP] or UID[:GID] (default: the domain's <seclabel model='dac'>, else the user running this).", valueName: "user"))
    var qemuUser: String?

    @OptionGroup var operand: ExportOperand

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The QEMU command line, after --.", valueName: "qemu-args"))
    var qemuArgs: [String] = []

    func validate() throws {
        if libvirt != nil && !qemuArgs.isEmpty { throw ValidationError("Give a QEMU command line after -- or --libvirt FILE, not both.") }
        if libvirt == nil && qemuArgs.isEmpty { throw ValidationError("Give the QEMU command line after -- (or --libvirt FILE).") }
        if let qemuUser { _ = try HostUser.parse(qemuUser) }
    }

    func run() throws {
        let console = Console(tool: "virtfs-qemu")
        let export = try operand.inspect(console)
        // The shares of the command line after --, or of the domain (which also says QEMU's user).
        var (shares, domainUser) = (QemuGlue.shares(commandLine: qemuArgs.map(RawArguments.bytes(for:))), HostID?.none)
        if let libvirt {
            guard let xml = console.attempt({ try Sys.readFile(AT_FDCWD, RawArguments.bytes(for: libvirt), limit: 16 << 20).bytes }) else {
                console.flush()
                throw ExitCode(8)
            }
            (shares, domainUser) = QemuGlue.shares(libvirt: xml)
        }
        let user = try qemuUser.map { let u = try HostUser.parse($0); return HostID(uid: u.uid, gid: u.gid) }
            ?? domainUser ?? HostID(uid: geteuid(), gid: getegid())
        let (report, matches) = QemuGlue.report(export, shares: shares, qemuUser: user,
                                                name: String(decoding: RawArguments.bytes(for: operand.tree), as: UTF8.self))
        console.write(report)
        console.flush()
        if !matches { throw ExitCode(4) }
    }
}
