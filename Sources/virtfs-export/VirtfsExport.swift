import ArgumentParser
import VirtFSArchiveCommand

@main
struct VirtfsExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-export",
        abstract: "Write the guest's view of a QEMU VirtFS tree as an archive or an mtree manifest.",
        discussion: """
            Every entry is decoded in the tree's security model and written as the guest sees it: \
            owners, modes, device numbers, symlinks and fifos as the guest knows them, with user \
            xattrs and POSIX ACLs in tar and pax. Owners are numeric (the names are the guest's). \
            --format mtree writes an mtree(5) manifest with type, mode, uid, gid, device, link \
            target, size, time and sha256 of every entry, which virtfs-import --metadata-only \
            restores onto a tree. Diagnostics and the summary go to standard error.
            """,
        version: "0.1.0"
    )

    static func main() { main(usageStatus: 1) }

    @OptionGroup var options: ExportOptions

    func run() throws {
        let status = options.run()
        if status != 0 { throw ExitCode(status) }
    }
}
