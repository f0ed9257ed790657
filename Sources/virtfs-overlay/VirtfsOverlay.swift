import ArgumentParser
import VirtFSCommand

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

    @OptionGroup var options: OverlayOptions

    func run() throws {
        let status = options.run()
        if status != 0 { throw ExitCode(status) }
    }
}
