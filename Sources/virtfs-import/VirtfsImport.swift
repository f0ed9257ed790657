import ArgumentParser
import VirtFSArchiveCommand

@main
struct VirtfsImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-import",
        abstract: "Turn a root filesystem archive into a QEMU VirtFS tree in any security model, without root.",
        discussion: """
            Reads tar (ustar, pax, GNU) and cpio, compressed with gzip, xz, zstd or bzip2 or not, \
            through libarchive, and writes every member as QEMU stores what a guest creates: owners, \
            modes with set-id bits, device nodes, fifos, symlinks, hard links, user xattrs and POSIX \
            ACLs, where the model can keep them (what it cannot is reported per member). The mapped \
            models need no privileges. Members that would land outside DIR are refused as bsdtar \
            refuses them; a leading '/' is removed.

            With --metadata-only, MANIFEST is an mtree(5) manifest (virtfs-export --format mtree) \
            or the archive the tree came from (a rootfs tarball, a virtfs-export --format pax), and \
            DIR an existing tree: the guest view it records (from an archive, with xattrs and ACLs) \
            is put back on every entry whose content still matches (an archive's data is compared \
            byte for byte, hard links a copy broke are made again), and entries that differ or are \
            missing are reported.

            A failed import removes what it wrote (DIR itself if it made it).
            """,
        version: "0.1.0"
    )

    static func main() { main(usageStatus: 1) }

    @OptionGroup var options: ImportOptions

    func run() throws {
        let status = try options.run()
        if status != 0 { throw ExitCode(status) }
    }
}
