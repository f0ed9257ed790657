import ArgumentParser
import VirtFSCore

/// virtfs-convert's options, and the run they ask for: the source model found, the preflight's
/// refusals folded, the plan, copy or in-place run with its events reported, and the summary.
public struct ConvertOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The model to convert to: passthrough, none, mapped-xattr (or mapped), mapped-file.", valueName: "model"))
    public var to: SecurityModel

    @Option(name: .long, help: ArgumentHelp("The model the tree is in now (default: detected).", valueName: "model"))
    public var from: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("Write a converted copy into this empty (or new) directory instead of converting in place.", valueName: "dir"))
    public var output: String?

    @Flag(name: [.customShort("n"), .long], help: "Print the plan; change nothing.")
    public var dryRun = false

    @OptionGroup var host: PlacementOptions

    @Flag(name: .long, help: "Create device nodes found in the tree (a guest wrote it) when converting to passthrough or none.")
    public var allowDevices = false

    @Flag(name: .long, help: "Create set-user-ID/set-group-ID root files found in the tree when converting to passthrough or none.")
    public var allowSetuid = false

    @Flag(name: .long, help: "Keep user.virtfs.* xattrs found outside mapped-xattr as the entries' metadata instead of dropping them.")
    public var trustExistingXattrs = false

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    public var oneFileSystem = false

    @Option(name: [.customShort("j"), .long], help: ArgumentHelp("Check and convert in place on N threads (default: the online CPUs); the result and the output do not change.", valueName: "n"))
    public var jobs = Walker.onlineCPUs

    @Flag(name: [.customShort("v"), .long], help: "Name every entry a refusal concerns, also when many have one cause.")
    public var verbose = false

    @Flag(name: .long, help: "Print one JSON object per entry and a summary object.")
    public var json = false

    @OptionGroup var progressOptions: ProgressOptions

    @Argument(help: ArgumentHelp("The export root to convert.", valueName: "tree"))
    public var tree: String

    public init() {}

    public func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1.") }
    }

    /// Converts; returns the exit status.
    public func run() throws -> Int32 {
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
            options = Converter.Options(from: try Converter.sourceModel(of: root, from: from, to: to), to: to)
        } catch {
            console.error(error)
            return 1
        }
        options.placement = try host.placement
        options.allowDevices = allowDevices
        options.allowSetuid = allowSetuid
        options.trustExistingXattrs = trustExistingXattrs
        options.oneFileSystem = oneFileSystem
        options.jobs = jobs
        let converter = Converter(options: options)
        // Refusals of one cause (thousands of "needs root" on a root filesystem) fold into one line.
        var refusals = ErrorDigest(limit: verbose ? Int.max : 3)
        guard let survey = converter.preflight(root, inPlace: output == nil, report: { refusals.add($0, report: console.error) }) else {
            for line in refusals.folded(path: { Bytes.shellEscaped($0) }) { console.writeError(Array("virtfs-convert: \(line)\n".utf8)) }
            console.flush()
            return 1
        }
        let progress = ProgressCounter(enabled: !json, forced: progressOptions.progress)
        progress.total = survey.entries
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
        } else {
            do {
                if let output {
                    let out = try OutputDirectory.prepare(RawArguments.bytes(for: output), copying: root)
                    summary = converter.copy(root, into: out, event: event)
                } else {
                    summary = try converter.inPlace(root, survey: survey, event: event)
                }
            } catch {
                console.error(error)
                return 1
            }
        }
        progress.done()
        let seconds = started.seconds
        let text = summary.line(tree: tree, from: options.from, to: options.to, dryRun: dryRun, seconds: Decimal2.fixed(seconds))
        // A dry run says what it would convert, under a key that says so.
        console.writeSummary(text, json: json, [dryRun ? "would_convert" : "converted": summary.total, "bytes": summary.bytes,
                                                "failed": summary.failures, "already": summary.alreadyDone, "dropped": summary.dropped,
                                                "seconds": seconds, "dry_run": dryRun])
        console.flush()
        return summary.failures > 0 || console.failures > 0 ? 1 : 0
    }
}
