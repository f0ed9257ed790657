import ArgumentParser
import VirtFSCommand
import VirtFSCore

@main
struct VirtfsChmod: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-chmod",
        abstract: "Change the mode a QEMU VirtFS guest sees, offline, in any security model.",
        discussion: """
            MODE is chmod(1)'s: octal, or symbolic like u+s, g-w, a=rX, go=u. Symlinks are \
            skipped (their mode means nothing), and an access ACL follows the new mode as it \
            does in the guest.
            """,
        version: "0.1.0"
    )

    /// Usage errors exit 1, as in coreutils.
    static func main() { main(usageStatus: 1) }

    @OptionGroup var tree: TreeOptions

    @OptionGroup var edit: EditOptions

    @Option(name: .long, help: ArgumentHelp("Use the guest mode of this entry instead of a MODE operand.", valueName: "rfile"))
    var reference: String?

    @Argument(help: ArgumentHelp("MODE (unless --reference), then the files.", valueName: "mode file"))
    var operands: [String]

    func validate() throws {
        if operands.count < (reference == nil ? 2 : 1) { throw ValidationError("missing operand") }
    }

    func run() throws {
        try EditRun(tool: "virtfs-chmod", tree: tree, edit: edit).chmod(operands, reference: reference)
    }
}
