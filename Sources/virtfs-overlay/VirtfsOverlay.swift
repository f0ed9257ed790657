import ArgumentParser
import VirtFSCommand
import VirtFSCore

extension OverlayDialect: ExpressibleByArgument {}
extension WhiteoutForm: ExpressibleByArgument {}

@main
struct VirtfsOverlay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-overlay",
        abstract: "Convert overlayfs layers between xattr dialects and whiteout forms, for both sides of a 9p share.",
        discussion: """
            Each LAYER (a lower or an upper directory) is converted in place, crash-safe, or copied to \
            --output first. Converting to the user dialect also prepares the layer for a 9p guest \
            (user.overlay.impure on directories holding whiteouts). With --check, the layers are \
            only read and what would stop the described mount from using them is reported.
            """,
        version: "0.1.0"
    )

    static func main() { main(usageStatus: 1) }

    @Option(name: .long, help: ArgumentHelp("Overlay xattr dialect to convert to: trusted (trusted.overlay.*), user (user.overlay.*), virtiofs (user.virtiofs.trusted.overlay.*).", valueName: "dialect"))
    var xattrs: OverlayDialect?

    @Option(name: .long, help: ArgumentHelp("Whiteout form to convert to: char (device 0/0), mapped (char 0:0 in the tree's model), xattr (overlay.whiteout, Linux 6.7+), oci (.wh.NAME).", valueName: "form"))
    var whiteouts: WhiteoutForm?

    @Option(name: .long, help: ArgumentHelp("virtiofsd --xattrmap rules applied to the other xattr names (and to overlay names without --xattrs), as virtiofsd stores a guest's names.", valueName: "rules"))
    var xattrmap: String?

    @Flag(name: .long, help: "Apply --xattrmap the other way: host names back to the names the guest uses.")
    var reverseXattrmap = false

    @Option(name: .long, help: ArgumentHelp("Security model of the tree the layer is in: passthrough, none, mapped-xattr (or mapped), mapped-file (default: detected).", valueName: "model"))
    var model: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("Write a converted copy of the (single) layer into this empty or new directory; the layer is only read.", valueName: "dir"))
    var output: String?

    @Flag(name: [.customShort("n"), .long], help: "Print what would change; change nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Convert to the user dialect even when the layer uses redirect or metacopy (which userxattr disables).")
    var force = false

    @Option(name: .long, help: ArgumentHelp("Host owner of objects created in a mapped model, USER[:GROUP] or UID[:GID] (default: the owner of the directory they are made in).", valueName: "user"))
    var owner: String?

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    var oneFileSystem = false

    @Flag(name: .long, help: "Print one JSON object per change and per layer summary.")
    var json = false

    @Flag(name: .long, help: "Only read the layers and report their dialect, whiteout form, and what would stop the described mount.")
    var check = false

    @Option(name: .long, help: ArgumentHelp("With --check: this layer is the upper (writable) one; LAYERs are lower layers, top first.", valueName: "dir"))
    var upper: String?

    @Flag(name: .long, help: "With --check: the mount uses -o userxattr.")
    var userxattr = false

    @Option(name: .long, help: ArgumentHelp("With --check: kernel version of the mounting machine, MAJOR.MINOR (default: this machine's).", valueName: "version"))
    var kernel: String?

    @Flag(name: .customLong("over-9p"), help: "With --check: the layers reach the mounting guest over a 9p export (in --model, or the detected model).")
    var over9p = false

    @Flag(name: .customLong("over-virtiofs"), help: "With --check: the layers reach the mounting guest through virtiofsd with -o xattrmap=:map:trusted.:user.virtiofs.: (layers in the virtiofs dialect).")
    var overVirtiofs = false

    @Argument(help: ArgumentHelp("Layer directories.", valueName: "layer"))
    var layers: [String] = []

    func validate() throws {
        if check {
            if layers.isEmpty && upper == nil { throw ValidationError("--check needs at least one layer.") }
            if xattrs != nil || whiteouts != nil || output != nil || xattrmap != nil { throw ValidationError("--check only reads: it takes no --xattrs, --whiteouts, --xattrmap or --output.") }
            if let kernel, OverlayCheck.Target.kernelVersion(kernel) == nil { throw ValidationError("--kernel takes MAJOR.MINOR, e.g. 6.1.") }
            if over9p && overVirtiofs { throw ValidationError("--over-9p and --over-virtiofs describe different mounts: give one.") }
            return
        }
        if upper != nil || userxattr || kernel != nil || over9p || overVirtiofs { throw ValidationError("--upper, --userxattr, --kernel, --over-9p and --over-virtiofs go with --check.") }
        if layers.isEmpty { throw ValidationError("Name at least one layer.") }
        if xattrs == nil && whiteouts == nil && xattrmap == nil { throw ValidationError("Say what to convert to: --xattrs, --whiteouts or --xattrmap (or use --check).") }
        if output != nil && layers.count != 1 { throw ValidationError("--output takes one layer.") }
        if reverseXattrmap && xattrmap == nil { throw ValidationError("--reverse-xattrmap goes with --xattrmap.") }
        if let xattrmap {
            do { _ = try XattrMap(xattrmap) } catch let e as VirtFSError { throw ValidationError("--xattrmap: \(e.detail)") }
        }
        if let owner { _ = try HostUser.parse(owner) }
    }

    func run() throws {
        var run = OverlayRun()
        run.model = model
        run.output = output
        run.dryRun = dryRun
        run.json = json
        if check {
            var target = OverlayCheck.Target()
            target.userxattr = userxattr
            target.overVirtiofs = overVirtiofs
            target.kernel = kernel.flatMap(OverlayCheck.Target.kernelVersion) ?? OverlayCheck.Target.runningKernel ?? (6, 1)
            let status = run.check(layers, upper: upper, target: target, over9p: over9p)
            if status != 0 { throw ExitCode(status) }
            return
        }
        var failed = false
        for layer in layers {
            let converted = run.convert(layer) { options in
                options.dialect = xattrs
                options.whiteouts = whiteouts
                options.xattrMap = xattrmap.flatMap { try? XattrMap($0) }
                options.xattrMapToServer = !reverseXattrmap
                options.force = force
                options.oneFileSystem = oneFileSystem
                if let owner, let host = try? HostUser.parse(owner) { options.placement.owner = host }
            }
            if !converted { failed = true }
        }
        run.console.flush()
        if failed || run.console.failures > 0 { throw ExitCode(1) }
    }
}
