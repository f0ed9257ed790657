import ArgumentParser
import VirtFSArchive
import VirtFSCommand
import VirtFSCore

/// virtfs-import's options, and the run they ask for: an archive written into a new tree in
/// the chosen model (undone when it fails), or with --metadata-only a manifest's or archive's
/// guest view restored onto an existing tree; members reported, then the summary.
public struct ImportOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The model to write: passthrough (root only), none, mapped-xattr (or mapped), mapped-file.", valueName: "model"))
    public var model: SecurityModel

    @OptionGroup public var host: PlacementOptions

    @Flag(name: .long, help: "Restore the guest view an mtree manifest or the tree's archive records onto an existing tree; change no content.")
    public var metadataOnly = false

    @Flag(name: [.customShort("n"), .long], help: "With --metadata-only: report what would be restored; change nothing.")
    public var dryRun = false

    @Flag(name: .long, help: "Keep what a failed import wrote (an incomplete tree, for inspection) instead of removing it.")
    public var keepFailed = false

    @Option(name: [.customShort("j"), .long], help: ArgumentHelp("With 2 or more (the default on more than one CPU), write each object's metadata on a second thread while the next objects are made; the tree, the output and the counts do not change.", valueName: "n"))
    public var jobs = min(Walker.onlineCPUs, 2)

    @Flag(name: [.customShort("v"), .long], help: "Name every member as it is written.")
    public var verbose = false

    @Flag(name: .long, help: "Print one JSON object per member and a summary object.")
    public var json = false

    @OptionGroup public var progressOptions: ProgressOptions

    @Argument(help: ArgumentHelp("The archive (or manifest) to read; - for standard input.", valueName: "archive"))
    public var archive: String

    @Argument(help: ArgumentHelp("The directory to write: new or empty (an existing tree with --metadata-only).", valueName: "dir"))
    public var dir: String

    public init() {}

    public func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1.") }
        if dryRun && !metadataOnly { throw ValidationError("--dry-run goes with --metadata-only.") }
        if keepFailed && metadataOnly { throw ValidationError("--keep-failed goes with an import, not --metadata-only.") }
    }

    /// Imports (or, with --metadata-only, restores); returns the exit status.
    public func run() throws -> Int32 {
        let console = Console(tool: "virtfs-import")
        let started = Stopwatch()
        let placement = try host.placement
        let progress = ProgressCounter(enabled: !json && !verbose, forced: progressOptions.progress)
        if metadataOnly { return restore(console: console, placement: placement, progress: progress, started: started) }
        let target: Importer.Target
        let reader: ArchiveReader
        var lock: TreeLock?
        defer { withExtendedLifetime(lock) {} }
        var options = Importer.Options(model: model)
        options.placement = placement
        options.jobs = jobs
        let importer = Importer(options: options)
        do {
            if let refusal = importer.refusal() { throw refusal }
            // The archive first: one that cannot be read leaves no DIR behind.
            reader = try ArchiveReader(path: RawArguments.bytes(for: archive))
            target = try importer.prepare(RawArguments.bytes(for: dir))
            lock = try TreeLock(target.root)
        } catch {
            console.error(error)
            return 1
        }
        progress.unit = .bytes
        progress.total = reader.inputSize
        let summary = importer.run(reader, into: target.root) { event in
            if case .imported = event {
                progress.tick()
                progress.advance(to: reader.bytesRead)
                // Said only when asked for: most members are not described at all.
                if !json && !verbose { return }
            }
            tell(event.report, console)
        }
        progress.done()
        var undone = false
        if summary.failures > 0 && !keepFailed {
            // A tree with holes a guest would boot is worse than none: what this import wrote goes.
            do {
                try importer.undo(target)
                undone = true
                console.error(VirtFSError.refused("import", path: RawArguments.bytes(for: dir), "the import failed: " + (target.created
                    ? "removed the directory it created" : "emptied it and gave it back its owner, mode and xattrs")))
            } catch {
                console.error(error)
            }
        }
        let seconds = started.seconds
        console.writeSummary(summary.line(archive: archive, format: reader.formatName, model: options.model, undone: undone, seconds: Decimal2.fixed(seconds)),
                             json: json, summary.fields(undone: undone, seconds: seconds))
        console.flush()
        return summary.failures + summary.refused > 0 || console.failures > 0 ? 1 : 0
    }

    func restore(console: Console, placement: HostPlacement, progress: ProgressCounter, started: Stopwatch) -> Int32 {
        var options = ManifestRestorer.Options(model: model)
        options.placement = placement
        options.dryRun = dryRun
        let reader: ArchiveReader
        let summary: ManifestRestorer.Summary
        var lock: TreeLock?
        defer { withExtendedLifetime(lock) {} }
        do {
            let root = try Walker.exportRoot(RawArguments.bytes(for: dir))
            if !dryRun { lock = try TreeLock(root) }
            reader = try ArchiveReader(path: RawArguments.bytes(for: archive), manifests: true)
            summary = try ManifestRestorer(options: options).runIsolated(reader, onto: root) { event in
                progress.tick()
                tell(event.report(dryRun: dryRun), console)
            }
        } catch {
            console.error(error)
            return 1
        }
        progress.done()
        let seconds = started.seconds
        // A manifest cannot say which entries had xattrs or ACLs: say that it does not carry them.
        let source = reader.isManifest ? "an mtree manifest, which records no xattrs or ACLs" : reader.formatName
        console.writeSummary(summary.line(archive: archive, dryRun: dryRun, model: options.model, source: source, seconds: Decimal2.fixed(seconds)),
                             json: json, summary.fields(manifest: reader.isManifest, seconds: seconds))
        console.flush()
        return summary.fallsShort || console.failures > 0 ? 1 : 0
    }

    func tell(_ report: EventReport, _ console: Console) {
        if json {
            console.writeJSON(report.json)
        } else if verbose || dryRun, let line = report.line {
            console.write(line)
        }
        if let warning = report.warning { console.warning(warning.description) }
        if let error = report.error { console.error(error) }
    }
}
