import ArgumentParser
import VirtFSCommand
import VirtFSCore

@main
struct VirtfsStat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-stat",
        abstract: "Display what a QEMU VirtFS (9p) guest will see for files of a host tree.",
        discussion: """
            Like stat(1), but each entry is decoded through the tree's security model: the owner, \
            mode, type and device number the guest sees, and where each came from (a user.virtfs.* \
            xattr, a .virtfs_metadata file, or the host inode).

            Format directives are stat(1)'s (%n %N %s %b %B %o %f %F %a %A %u %g %U %G %t %T %r %R \
            %h %i %d %D %x %X %y %Y %z %Z %w %W), plus %M (security model), %P (provenance of uid, \
            gid, mode and rdev) and %L (raw symlink target).
            """,
        version: "0.1.0"
    )

    /// Usage errors exit 1, as in coreutils.
    static func main() { main(usageStatus: 1) }

    @OptionGroup var tree: TreeOptions

    @Option(name: [.customShort("c"), .long], help: ArgumentHelp("Use the stat(1) FORMAT instead of the default, with a newline after each use.", valueName: "format"))
    var format: String?

    @Option(name: .long, help: ArgumentHelp("Like --format, but interpret backslash escapes and print no trailing newline.", valueName: "format"))
    var printf: String?

    @Flag(name: [.customShort("R"), .long], help: "Visit every entry below each directory operand (each operand is an export root unless --root is given).")
    var recursive = false

    @Flag(name: [.customShort("x"), .long], help: "With -R, do not descend into directories on other filesystems.")
    var oneFileSystem = false

    @Option(name: [.customShort("j"), .long], help: ArgumentHelp("With -R, stat and decode entries on N threads (default: the online CPUs); the output order does not change.", valueName: "n"))
    var jobs = Walker.onlineCPUs

    @Flag(name: .long, help: "Print the guest's ACLs as getfacl -n would in the guest (after the --format line, if any).")
    var acl = false

    @Flag(name: .long, help: "Print the guest-visible user xattrs as getfattr -d -e hex would in the guest.")
    var xattrs = false

    @Flag(name: .long, help: "Print one JSON object per entry (JSON Lines), with the provenance of each field.")
    var json = false

    @Argument(help: ArgumentHelp("Files to display.", valueName: "file"))
    var files: [String]

    func validate() throws {
        if format != nil && printf != nil { throw ValidationError("--format and --printf cannot be used together.") }
        if json && (format != nil || printf != nil || acl || xattrs) {
            throw ValidationError("--json cannot be combined with --format, --printf, --acl or --xattrs.")
        }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1.") }
        if files.isEmpty { throw ValidationError("missing operand") }
    }

    func run() throws {
        let console = Console(tool: "virtfs-stat")
        guard let resolver = console.attempt({ try OperandResolver(root: tree.rootBytes) }) else { throw ExitCode(1) }
        for file in files {
            show(RawArguments.bytes(for: file), resolver: resolver, console: console)
        }
        console.flush()
        if console.failures > 0 { throw ExitCode(1) }
    }

    func show(_ operand: [UInt8], resolver: OperandResolver, console: Console) {
        guard let (location, model) = console.attempt({ try resolver.resolve(operand, recursive: recursive, explicit: tree.model) }) else { return }
        let formatter = StatFormatter(accounts: resolver.accounts(for: location))
        let codec = model.codec
        let walker = Walker(options: .init(recursive: recursive, oneFileSystem: oneFileSystem, model: model))
        let showsTargets = showsSymlinkTargets
        walker.walk(location, jobs: jobs, transform: { entry in
            var entry = entry
            entry.readsStoredSymlinkTarget = showsTargets
            return Result { try codec.decode(entry) }
        }, visit: { decoded in
            do {
                let view = try decoded.get()
                view.diagnostics.forEach(console.error)
                if view.type == .symlink && !view.symlinkReadable {
                    console.warning("\(Bytes.shellEscaped(view.path)): host symlink in a \(model.rawValue) export: the guest's readlink fails (ELOOP) on QEMU < 11")
                }
                try render(view, formatter: formatter, console: console)
            } catch {
                console.error(error)
            }
        }, failure: console.error)
    }

    /// Whether the output shows symlink targets: JSON, the default layout (%N), or a format
    /// that may name %N or %L (any N or L in it, to be safe).
    var showsSymlinkTargets: Bool {
        if json { return true }
        guard let given = format ?? printf else { return !acl && !xattrs }
        return given.contains("N") || given.contains("L")
    }

    func render(_ view: GuestView, formatter: StatFormatter, console: Console) throws {
        if json {
            return console.write(try GuestViewRecord(view).line())
        }
        if let format {
            console.write(formatter.render(Array(format.utf8), view) + [0x0a])
        } else if let printf {
            console.write(formatter.render(Array(printf.utf8), view, escapes: true))
        } else if !acl && !xattrs {
            console.write(formatter.render(StatFormatter.defaultFormat(for: view), view, literalNames: true))
        }
        if acl { console.write(try GetfaclFormat.render(view)) }
        if xattrs { console.write(GetfattrFormat.render(view)) }
    }
}
