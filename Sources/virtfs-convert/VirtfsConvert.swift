import ArgumentParser
import Glibc
import VirtFSCommand
import VirtFSCore

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

    @Option(name: .long, help: ArgumentHelp("The model to convert to: passthrough, none, mapped-xattr (or mapped), mapped-file.", valueName: "model"))
    var to: SecurityModel

    @Option(name: .long, help: ArgumentHelp("The model the tree is in now (default: detected).", valueName: "model"))
    var from: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("Write a converted copy into this empty (or new) directory instead of converting in place.", valueName: "dir"))
    var output: String?

    @Flag(name: [.customShort("n"), .long], help: "Print the plan; change nothing.")
    var dryRun = false

    @OptionGroup var host: PlacementOptions

    @Flag(name: .long, help: "Create device nodes found in the tree (a guest wrote it) when converting to passthrough or none.")
    var allowDevices = false

    @Flag(name: .long, help: "Create set-user-ID/set-group-ID root files found in the tree when converting to passthrough or none.")
    var allowSetuid = false

    @Flag(name: .long, help: "Keep user.virtfs.* xattrs found outside mapped-xattr as the entries' metadata instead of dropping them.")
    var trustExistingXattrs = false

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    var oneFileSystem = false

    @Flag(name: [.customShort("v"), .long], help: "Name every entry a refusal concerns, also when many have one cause.")
    var verbose = false

    @Flag(name: .long, help: "Print one JSON object per entry and a summary object.")
    var json = false

    @OptionGroup var progressOptions: ProgressOptions

    @Argument(help: ArgumentHelp("The export root to convert.", valueName: "tree"))
    var tree: String

    func run() throws {
        let console = Console(tool: "virtfs-convert")
        let started = Stopwatch()
        let root: Walker.Location
        var options: Converter.Options
        var lock: TreeLock?
        defer { withExtendedLifetime(lock) {} }
        do {
            root = try Walker.exportRoot(RawArguments.bytes(for: tree))
            // One writer at a time; a copy is taken from a tree no one is changing.
            if !dryRun { lock = try TreeLock(root) }
            if let record = ConversionRecord.read(in: root.directory), record.to != to {
                // Named before any other refusal: it is what the user has to deal with first.
                throw VirtFSError.interruptedConversion(record, path: root.path)
            }
            let model = try from ?? ConversionRecord.read(in: root.directory)?.from ?? OperandResolver(root: nil).model(for: root, explicit: nil).0
            options = Converter.Options(from: model, to: to)
        } catch {
            console.error(error)
            throw ExitCode(1)
        }
        options.placement = try host.placement
        options.allowDevices = allowDevices
        options.allowSetuid = allowSetuid
        options.trustExistingXattrs = trustExistingXattrs
        options.oneFileSystem = oneFileSystem
        let converter = Converter(options: options)
        var entries = 0
        // Refusals of one cause (thousands of "needs root" on a root filesystem) fold into one line.
        var refusals = ErrorDigest(limit: verbose ? Int.max : 3)
        guard converter.preflight(root, inPlace: output == nil, report: { refusals.add($0, report: console.error) }, entries: &entries) else {
            for line in refusals.folded(path: { Bytes.shellEscaped($0) }) { console.writeError(Array("virtfs-convert: \(line)\n".utf8)) }
            console.flush()
            throw ExitCode(1)
        }
        let progress = ProgressCounter(enabled: !json, forced: progressOptions.progress)
        progress.total = entries
        func event(_ e: Converter.Event) {
            switch e {
            case .converted(let view), .planned(let view):
                progress.tick()
                if json { console.writeJSON(["type": view.type.keyword, "from": options.from.rawValue, "to": options.to.rawValue, "path": view.path]) }
            case .dropped(let error): console.warning(error.description)
            case .failed(let error): console.error(error)
            }
        }
        let summary: Converter.Summary
        if dryRun {
            summary = converter.plan(root) { view in
                if json { event(.planned(view)) } else {
                    console.write("\(Bytes.shellEscaped(view.path)): \(view.type.keyword): \(options.from.rawValue) -> \(options.to.rawValue)\n")
                }
            }
        } else if let output {
            do {
                let out = try OutputDirectory.prepare(RawArguments.bytes(for: output), copying: root)
                summary = converter.copy(root, into: out, event: event)
            } catch {
                console.error(error)
                throw ExitCode(1)
            }
        } else {
            do {
                summary = try converter.inPlace(root, event: event)
            } catch {
                console.error(error)
                throw ExitCode(1)
            }
        }
        progress.done()
        let seconds = started.seconds
        let types = summary.converted.sorted { $0.key.keyword < $1.key.keyword }.map { "\($0.value) \($0.key.keyword)" }.joined(separator: ", ")
        let verb = dryRun ? "would convert" : "converted"
        let text = "\(tree): \(verb) \(summary.total) entries (\(types.isEmpty ? "none" : types)), \(summary.bytes) bytes of file data, \(summary.alreadyDone) already \(options.to.rawValue), \(summary.dropped) untrusted xattrs dropped, \(summary.failures) failed, \(Decimal2.fixed(seconds)) s"
        if json {
            // A dry run says what it would convert, under a key that says so.
            let object: [String: Any] = ["summary": text, dryRun ? "would_convert" : "converted": summary.total, "bytes": summary.bytes,
                                         "failed": summary.failures, "already": summary.alreadyDone, "dropped": summary.dropped,
                                         "seconds": seconds, "dry_run": dryRun]
            console.writeJSON(object)
        } else {
            console.write(text + "\n")
        }
        console.flush()
        if summary.failures > 0 || console.failures > 0 { throw ExitCode(1) }
    }
}
