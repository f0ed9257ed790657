import ArgumentParser
import VirtFSCommand
import VirtFSCore

@main
struct VirtfsChown: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-chown",
        abstract: "Change the owner and group a QEMU VirtFS guest sees, offline, in any security model.",
        discussion: """
            Like chown -h run inside the guest: symlinks are changed themselves, never followed, \
            and non-directories lose set-user-ID (and set-group-ID with group execute) as the \
            guest's kernel would (-c/-v say so; --preserve-setid keeps them). Names are looked up in the tree's own etc/passwd and etc/group.
            """,
        version: "0.1.0"
    )

    /// Usage errors exit 1, as in coreutils.
    static func main() { main(usageStatus: 1) }

    @OptionGroup var tree: TreeOptions

    @OptionGroup var edit: EditOptions

    @Option(name: .long, help: ArgumentHelp("Change only entries whose guest owner and/or group are these (OWNER:GROUP, either may be omitted).", valueName: "current-owner:current-group"))
    var from: String?

    @Option(name: .long, help: ArgumentHelp("Use the guest owner and group of this entry instead of an OWNER operand.", valueName: "rfile"))
    var reference: String?

    @Flag(name: .long, help: "Keep set-user-ID and set-group-ID bits, which a chown in the guest would clear.")
    var preserveSetid = false

    @Flag(name: [.customShort("h"), .customLong("no-dereference")], help: "Accepted for chown compatibility: symlinks are never followed.")
    var noDereference = false

    @Argument(help: ArgumentHelp("OWNER[:GROUP] (unless --reference), then the files.", valueName: "owner[:group] file"))
    var operands: [String]

    func validate() throws {
        if operands.count < (reference == nil ? 2 : 1) { throw ValidationError("missing operand") }
    }

    func run() throws {
        try EditRun(tool: "virtfs-chown", tree: tree, edit: edit).chown(operands, reference: reference, from: from, preserveSetid: preserveSetid)
    }
}
