import ArgumentParser
import Glibc
import VirtFSArchive
import VirtFSCommand
import VirtFSCore

extension ArchiveWriter.Format: ExpressibleByArgument {}

/// virtfs-export's options, and the run they ask for: the tree's model found, every entry's
/// guest view written to the archive or manifest, then the summary.
public struct ExportOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The tree's security model (default: detected).", valueName: "model"))
    var model: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("tar (ustar, pax headers where needed), pax, cpio (POSIX odc) or mtree.", valueName: "format"))
    var format: ArchiveWriter.Format = .tar

    @Option(name: [.customShort("f"), .long], help: ArgumentHelp("Write to this file instead of standard output.", valueName: "file"))
    var file: String?

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    var oneFileSystem = false

    @Flag(name: [.customShort("v"), .long], help: "Name every entry on standard error as it is written.")
    var verbose = false

    @Flag(name: .long, help: "Write the summary to standard error as a JSON object.")
    var json = false

    @OptionGroup var progressOptions: ProgressOptions

    @Argument(help: ArgumentHelp("The export root to write.", valueName: "tree"))
    var tree: String

    public init() {}

    public func validate() throws {
        if file == nil && isatty(1) == 1 && format != .mtree {
            throw ValidationError("refusing to write an archive to a terminal: redirect standard output or use -f FILE.")
        }
    }

    /// Exports; returns the exit status.
    public func run() -> Int32 {
        let console = Console(tool: "virtfs-export")
        let started = Stopwatch()
        let root: Walker.Location
        let writer: ArchiveWriter
        var options: Exporter.Options
        do {
            root = try Walker.exportRoot(RawArguments.bytes(for: tree))
            options = Exporter.Options(model: try OperandResolver(root: nil).model(for: root, explicit: model).0)
            writer = try ArchiveWriter(path: file.map(RawArguments.bytes(for:)), format: format)
        } catch {
            console.error(error)
            return 1
        }
        options.oneFileSystem = oneFileSystem
        let progress = ProgressCounter(enabled: !verbose, forced: progressOptions.progress)
        let summary = Exporter(options: options).run(root, to: writer) { event in
            switch event {
            case .exported(let view):
                progress.tick()
                if verbose { console.writeError(view.path + [0x0a]) }
            case .warning(let error): console.warning(error.description)
            case .failed(let error): console.error(error)
            }
        }
        do {
            try writer.close()
        } catch {
            console.error(error)
        }
        progress.done()
        let types = summary.exported.sorted { $0.key.keyword < $1.key.keyword }.map { "\($0.value) \($0.key.keyword)" }.joined(separator: ", ")
        let seconds = started.seconds
        let text = "\(tree): exported \(summary.total) entries (\(types.isEmpty ? "none" : types)) of \(options.model.rawValue) as \(format.rawValue), \(summary.bytes) bytes of file data, \(summary.incomplete) without their xattrs or ACLs, \(summary.failures) failed, \(Decimal2.fixed(seconds)) s"
        if json {
            let object: [String: Any] = ["summary": text, "exported": summary.total, "bytes": summary.bytes,
                                         "incomplete": summary.incomplete, "failed": summary.failures, "seconds": seconds]
            // Data on standard output, as every tool's --json; unless the archive itself is there.
            if file == nil || file == "-" { console.writeError(JSONLine.encode(object)) } else { console.writeJSON(object) }
        } else {
            console.writeError(Array(("virtfs-export: " + text + "\n").utf8))
        }
        console.flush()
        return summary.failures > 0 || console.failures > 0 ? 1 : 0
    }
}
