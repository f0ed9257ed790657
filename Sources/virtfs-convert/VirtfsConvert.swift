import ArgumentParser
import VirtFSCommand
import VirtFSCore

@main
struct VirtfsConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-convert",
        abstract: "Move a QEMU VirtFS tree between security models, keeping the guest's view.",
        discussion: """
            In place by default, crash-safe: every entry changes form in one atomic step, and a run \
            interrupted anywhere (kill -9, power loss) is finished by running the same command again. \
            With --output, a converted copy is written and the tree is only read.
            """,
        version: "0.1.0"
    )

    /// Usage errors exit 1, as in coreutils.
    static func main() { main(usageStatus: 1) }

    @Option(name: .long, help: ArgumentHelp("The model to convert to: passthrough, none, mapped-xattr (or mapped), mapped-file.", valueName: "model"))
    var to: SecurityModel

    @Option(name: .long, help: ArgumentHelp("The model the tree is in now (default: detected).", valueName: "model"))
    var from: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("Write a converted copy into this empty (or new) directory instead of converting in place.", valueName: "dir"))
    var output: String?

    @Flag(name: [.customShort("n"), .long], help: "Print the plan; change nothing.")
    var dryRun = false

    @OptionGroup var host: PlacementOptions

    @Flag(name: .long, help: "Create device nodes found in the tree (a guest wrote it) when converting to passthrough or none.")
    var allowDevices = false

    @Flag(name: .long, help: "Create set-user-ID/set-group-ID root files found in the tree when converting to passthrough or none.")
    var allowSetuid = false

    @Flag(name: .long, help: "Keep user.virtfs.* xattrs found outside mapped-xattr as the entries' metadata instead of dropping them.")
    var trustExistingXattrs = false

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    var oneFileSystem = false

    @Flag(name: [.customShort("v"), .long], help: "Name every entry a refusal concerns, also when many have one cause.")
    var verbose = false

    @Flag(name: .long, help: "Print one JSON object per entry and a summary object.")
    var json = false

    @OptionGroup var progressOptions: ProgressOptions

    @Argument(help: ArgumentHelp("The export root to convert.", valueName: "tree"))
    var tree: String

    func run() throws {
        var run = ConvertRun(tree: tree, to: to)
        run.from = from
        run.output = output
        run.dryRun = dryRun
        run.verbose = verbose
        run.json = json
        run.progress = progressOptions.progress
        let status = try run.run { options in
            options.placement = try host.placement
            options.allowDevices = allowDevices
            options.allowSetuid = allowSetuid
            options.trustExistingXattrs = trustExistingXattrs
            options.oneFileSystem = oneFileSystem
        }
        if status != 0 { throw ExitCode(status) }
    }
}
