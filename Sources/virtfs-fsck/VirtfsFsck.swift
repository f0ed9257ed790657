import ArgumentParser
import Glibc
import VirtFSCommand
import VirtFSCore

@main
struct VirtfsFsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-fsck",
        abstract: "Check a QEMU VirtFS export before boot, and repair what would break the guest.",
        discussion: """
            Exit status, as fsck(8): 0 no errors, 1 errors corrected, 4 errors left uncorrected, \
            8 operational error, 16 usage error (bits combine). Warnings do not change it.
            """,
        version: "0.1.0"
    )

    static func main() { main(usageStatus: 16) }

    @Flag(name: .customShort("n"), help: "Check only; open nothing for writing (the default).")
    var noChanges = false

    @Flag(name: .customShort("p"), help: "Repair automatically what is safe: repairs that never change the guest's view.")
    var preen = false

    @Flag(name: .customShort("y"), help: "Apply every repair.")
    var yes = false

    @Option(name: .long, help: ArgumentHelp("Security model of the tree (default: detected).", valueName: "model"))
    var model: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("Host user (and group) QEMU runs as, USER[:GROUP] or UID[:GID] (default: the export root's owner).", valueName: "user"))
    var qemuUser: String?

    @Option(name: .long, help: ArgumentHelp("Give entries without metadata this guest owner, UID:GID or names from the tree's etc/passwd.", valueName: "owner"))
    var adoptOwner: String?

    @Flag(name: .long, help: "Give entries without metadata the guest owner of their directory.")
    var adoptFromParent = false

    @Option(name: .long, help: ArgumentHelp("Host mode of files repairs create (octal, QEMU's fmode).", valueName: "mode"))
    var fmode = "0600"

    @Option(name: .long, help: ArgumentHelp("Host mode of directories repairs create (octal, QEMU's dmode).", valueName: "mode"))
    var dmode = "0700"

    @Flag(name: .long, help: "Also repair entries whose host inode has hard links outside the tree (left alone by default).")
    var allowOutsideLinks = false

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    var oneFileSystem = false

    @Flag(name: .long, help: "Print one JSON object per finding, then a summary object.")
    var json = false

    @Flag(name: [.customShort("v"), .long], help: "Print every finding on its own, also when many have one cause.")
    var verbose = false

    @Argument(help: ArgumentHelp("The export root.", valueName: "tree"))
    var tree: String

    func validate() throws {
        if [noChanges, preen, yes].filter({ $0 }).count > 1 { throw ValidationError("-n, -p and -y exclude each other.") }
        if adoptOwner != nil && adoptFromParent { throw ValidationError("--adopt-owner and --adopt-from-parent exclude each other.") }
        if UInt32(fmode, radix: 8) == nil || UInt32(dmode, radix: 8) == nil { throw ValidationError("--fmode and --dmode take octal modes.") }
        if let qemuUser { _ = try HostUser.parse(qemuUser) }
    }

    func run() throws {
        var run = FsckRun(tree: tree)
        run.mode = yes ? .all : preen ? .safe : .none
        run.model = model
        run.qemuUser = qemuUser
        run.adoptOwner = adoptOwner
        run.adoptFromParent = adoptFromParent
        run.fileMode = UInt32(fmode, radix: 8)!
        run.directoryMode = UInt32(dmode, radix: 8)!
        run.allowOutsideLinks = allowOutsideLinks
        run.oneFileSystem = oneFileSystem
        run.json = json
        run.verbose = verbose
        let status = run.run()
        if status != 0 { throw ExitCode(status) }
    }
}
