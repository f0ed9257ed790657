import ArgumentParser
import VirtFSCommand

@main
struct VirtfsOverlay: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "virtfs-overlay", version: "0.1.0")
    func run() throws {}
}
