import ArgumentParser
import VirtFSCommand

@main
struct VirtfsFsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-fsck",
        abstract: "Check a QEMU VirtFS export before boot, and repair what would break the guest.",
        discussion: """
            Exit status, as fsck(8): 0 no errors, 1 errors corrected, 4 errors left uncorrected, \
            8 operational error, 16 usage error (bits combine). Warnings do not change it.
            """,
        version: "0.1.0"
    )

    static func main() { main(usageStatus: 16) }

    @OptionGroup var options: FsckOptions

    func run() throws {
        let status = options.run()
        if status != 0 { throw ExitCode(status) }
    }
}
