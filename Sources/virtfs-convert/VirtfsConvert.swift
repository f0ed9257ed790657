import ArgumentParser
import VirtFSCommand

@main
struct VirtfsConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-convert",
        abstract: "Move a QEMU VirtFS tree between security models, keeping the guest's view.",
        discussion: """
            In place by default, crash-safe: every entry changes form in one atomic step, and a run \
            interrupted anywhere (kill -9, power loss) is finished by running the same command again. \
            With --output, a converted copy is written and the tree is only read.
            """,
        version: "0.1.0"
    )

    /// Usage errors exit 1, as in coreutils.
    static func main() { main(usageStatus: 1) }

    @OptionGroup var options: ConvertOptions

    func run() throws {
        let status = try options.run()
        if status != 0 { throw ExitCode(status) }
    }
}
