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
        let run = EditRun(tool: "virtfs-chown", tree: tree, edit: edit)
        var files = operands
        let accounts = run.accounts(for: reference == nil ? Array(operands.dropFirst()) : operands)
        let target: (uid: UInt32?, gid: UInt32?)
        let required: (uid: UInt32?, gid: UInt32?)
        do {
            if let reference {
                let (view, _) = try run.reference(reference)
                target = (view.uid, view.gid)
            } else {
                target = try accounts.parseOwner(files.removeFirst())
            }
            required = try from.map(accounts.parseOwner) ?? (nil, nil)
        } catch {
            run.console.error(error)
            throw ExitCode(1)
        }
        func name(_ a: GuestAttributes) -> String {
            "\(accounts.users[a.uid] ?? String(a.uid)):\(accounts.groups[a.gid] ?? String(a.gid))"
        }
        try run.run(files, skipSymlinks: false, transform: { view in
            if let uid = required.uid, view.uid != uid { return nil }
            if let gid = required.gid, view.gid != gid { return nil }
            var after = view.attributes.changingOwner(uid: target.uid, gid: target.gid)
            if preserveSetid { after.permissions = view.attributes.permissions }
            return after
        }, describe: { before, after, _ in
            let path = Bytes.shellEscaped(before.path, always: true)
            let owner = before.uid != after.uid || before.gid != after.gid
                ? "changed ownership of \(path) from \(name(before.attributes)) to \(name(after))"
                : "ownership of \(path) retained as \(name(after))"
            return owner + ModeChange.setidCleared(from: before.attributes.permissions, to: after.permissions)
        })
    }
}
