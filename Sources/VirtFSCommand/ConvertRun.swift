import VirtFSCore

/// virtfs-convert after its arguments are parsed: the source model found, the preflight's
/// refusals folded, the plan, copy or in-place run with its events reported, and the summary.
public struct ConvertRun {
    public var tree: String
    public var to: SecurityModel
    public var from: SecurityModel?
    public var output: String?
    public var dryRun = false
    public var verbose = false
    public var json = false
    public var progress = false
    let console = Console(tool: "virtfs-convert")

    public init(tree: String, to: SecurityModel) {
        self.tree = tree
        self.to = to
    }

    /// Converts; `configure` sets the options beyond the two models. Returns the exit status.
    public func run(configure: (inout Converter.Options) throws -> Void) throws -> Int32 {
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
        try configure(&options)
        let converter = Converter(options: options)
        var entries = 0
        // Refusals of one cause (thousands of "needs root" on a root filesystem) fold into one line.
        var refusals = ErrorDigest(limit: verbose ? Int.max : 3)
        guard converter.preflight(root, inPlace: output == nil, report: { refusals.add($0, report: console.error) }, entries: &entries) else {
            for line in refusals.folded(path: { Bytes.shellEscaped($0) }) { console.writeError(Array("virtfs-convert: \(line)\n".utf8)) }
            console.flush()
            return 1
        }
        let progress = ProgressCounter(enabled: !json, forced: progress)
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
        } else {
            do {
                if let output {
                    let out = try OutputDirectory.prepare(RawArguments.bytes(for: output), copying: root)
                    summary = converter.copy(root, into: out, event: event)
                } else {
                    summary = try converter.inPlace(root, event: event)
                }
            } catch {
                console.error(error)
                return 1
            }
        }
        progress.done()
        let seconds = started.seconds
        let text = summary.line(tree: tree, from: options.from, to: options.to, dryRun: dryRun, seconds: Decimal2.fixed(seconds))
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
        return summary.failures > 0 || console.failures > 0 ? 1 : 0
    }
}
