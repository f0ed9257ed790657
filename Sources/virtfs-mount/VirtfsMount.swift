import ArgumentParser
import VirtFSCommand
import VirtFSCore
import VirtFSMount

@main
struct VirtfsMount: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-mount",
        abstract: "Mount the guest's view of a QEMU VirtFS (9p) tree on the host, read-write, without a VM.",
        discussion: """
            Every host tool then sees the owners, modes, devices, symlinks, ACLs and user xattrs \
            the guest sees, decoded through the tree's security model, and what it changes is \
            stored as QEMU stores the guest's own changes (-o ro: read-only). Unmount with \
            'virtfs-mount -u MOUNTPOINT' or 'fusermount3 -u MOUNTPOINT'.
            """,
        version: "0.1.0"
    )

    static func main() { main(usageStatus: 1) }

    @Option(name: .long, help: ArgumentHelp(
        "Security model the tree is served with: passthrough, none, mapped-xattr (or mapped), mapped-file. Default: detected from the tree.",
        valueName: "model"))
    var model: SecurityModel?

    @Option(name: .customShort("o"), help: ArgumentHelp("Mount options, comma-separated: ro (read-only; default rw), allow_other, default_permissions, and other fuse(8) options.", valueName: "options"))
    var options: [String] = []

    @Flag(name: .customShort("f"), help: "Stay in the foreground until unmounted.")
    var foreground = false

    @Flag(name: .customShort("u"), help: "Unmount MOUNTPOINT (runs fusermount3 -u).")
    var unmount = false

    @Argument(help: ArgumentHelp("The tree (QEMU's path=) and where to mount it; with -u, only the mount point.", valueName: "path"))
    var paths: [String] = []

    func validate() throws {
        if unmount {
            guard paths.count == 1 else { throw ValidationError(paths.isEmpty ? "missing operand" : "-u takes one mount point") }
            if model != nil || !options.isEmpty || foreground { throw ValidationError("-u cannot be combined with --model, -o or -f.") }
        } else if paths.count < 2 {
            throw ValidationError(paths.isEmpty ? "missing operand" : "missing mount point after '\(paths[0])'")
        } else if paths.count > 2 {
            throw ValidationError("extra operand '\(paths[2])'")
        }
    }

    func run() throws {
        if unmount {
            let status = FuseMount.unmount(RawArguments.bytes(for: paths[0]))
            if status != 0 { throw ExitCode(1) }
            return
        }
        let console = Console(tool: "virtfs-mount")
        let request = MountRequest(tree: RawArguments.bytes(for: paths[0]), mountpoint: RawArguments.bytes(for: paths[1]),
                                   model: model, options: options, foreground: foreground)
        do {
            if try FuseMount.run(request) != 0 { throw ExitCode(1) }
        } catch let error as VirtFSError {
            console.error(error)
            console.flush()
            throw ExitCode(1)
        }
    }
}
