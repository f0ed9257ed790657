import ArgumentParser
import Glibc
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
        let run = EditRun(tool: "virtfs-chmod", tree: tree, edit: edit)
        var files = operands
        let change: ModeChange
        do {
            if let reference {
                change = ModeChange(exactly: try run.reference(reference).0.attributes.permissions)
            } else {
                change = try ModeChange(files.removeFirst())
            }
        } catch {
            run.console.error(error)
            throw ExitCode(1)
        }
        let mask = umask(0)
        umask(mask)
        func shown(_ p: UInt32, _ type: FileType) -> String {
            "0\(String(p, radix: 8).leftPadded(to: 3)) (\(StatFormatter.modeString(type.rawValue | p).dropFirst()))"
        }
        try run.run(files, skipSymlinks: true, transform: { view in
            view.attributes.changingPermissions(change.apply(to: view.attributes.permissions, isDirectory: view.type == .directory, umask: UInt32(mask)))
        }, describe: { before, after, changed in
            let path = Bytes.shellEscaped(before.path, always: true)
            return changed
                ? "mode of \(path) changed from \(shown(before.attributes.permissions, before.type)) to \(shown(after.permissions, after.type))"
                : "mode of \(path) retained as \(shown(after.permissions, after.type))"
        })
    }
}
