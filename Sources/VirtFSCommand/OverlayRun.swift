import ArgumentParser
import VirtFSCore

extension OverlayDialect: ExpressibleByArgument {}
extension WhiteoutForm: ExpressibleByArgument {}

/// virtfs-overlay's options, and the run they ask for: each layer's model found, the layer
/// converted (or copied, then converted) with every change reported, or the layers checked
/// against a mount.
public struct OverlayOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Overlay xattr dialect to convert to: trusted (trusted.overlay.*), user (user.overlay.*), virtiofs (user.virtiofs.trusted.overlay.*).", valueName: "dialect"))
    public var xattrs: OverlayDialect?

    @Option(name: .long, help: ArgumentHelp("Whiteout form to convert to: char (device 0/0), mapped (char 0:0 in the tree's model), xattr (overlay.whiteout, Linux 6.7+), oci (.wh.NAME).", valueName: "form"))
    public var whiteouts: WhiteoutForm?

    @Option(name: .long, help: ArgumentHelp("virtiofsd --xattrmap rules applied to the other xattr names (and to overlay names without --xattrs), as virtiofsd stores a guest's names.", valueName: "rules"))
    public var xattrmap: String?

    @Flag(name: .long, help: "Apply --xattrmap the other way: host names back to the names the guest uses.")
    public var reverseXattrmap = false

    @Option(name: .long, help: ArgumentHelp("Security model of the tree the layer is in: passthrough, none, mapped-xattr (or mapped), mapped-file (default: detected).", valueName: "model"))
    public var model: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("Write a converted copy of the (single) layer into this empty or new directory; the layer is only read.", valueName: "dir"))
    public var output: String?

    @Flag(name: [.customShort("n"), .long], help: "Print what would change; change nothing.")
    public var dryRun = false

    @Flag(name: .long, help: "Convert to the user dialect even when the layer uses redirect or metacopy (which userxattr disables).")
    public var force = false

    @Option(name: .long, help: ArgumentHelp("Host owner of objects created in a mapped model, USER[:GROUP] or UID[:GID] (default: the owner of the directory they are made in).", valueName: "user"))
    public var owner: String?

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    public var oneFileSystem = false

    @Flag(name: .long, help: "Print one JSON object per change and per layer summary.")
    public var json = false

    @Flag(name: .long, help: "Only read the layers and report their dialect, whiteout form, and what would stop the described mount.")
    public var check = false

    @Option(name: .long, help: ArgumentHelp("With --check: this layer is the upper (writable) one; LAYERs are lower layers, top first.", valueName: "dir"))
    public var upper: String?

    @Flag(name: .long, help: "With --check: the mount uses -o userxattr.")
    public var userxattr = false

    @Option(name: .long, help: ArgumentHelp("With --check: kernel version of the mounting machine, MAJOR.MINOR (default: this machine's).", valueName: "version"))
    public var kernel: String?

    @Flag(name: .customLong("over-9p"), help: "With --check: the layers reach the mounting guest over a 9p export (in --model, or the detected model).")
    public var over9p = false

    @Flag(name: .customLong("over-virtiofs"), help: "With --check: the layers reach the mounting guest through virtiofsd with -o xattrmap=:map:trusted.:user.virtiofs.: (layers in the virtiofs dialect).")
    public var overVirtiofs = false

    @Argument(help: ArgumentHelp("Layer directories.", valueName: "layer"))
    public var layers: [String] = []

    public func validate() throws {
        if check {
            if layers.isEmpty && upper == nil { throw ValidationError("--check needs at least one layer.") }
            if xattrs != nil || whiteouts != nil || output != nil || xattrmap != nil { throw ValidationError("--check only reads: it takes no --xattrs, --whiteouts, --xattrmap or --output.") }
            if let kernel, OverlayCheck.Target.kernelVersion(kernel) == nil { throw ValidationError("--kernel takes MAJOR.MINOR, e.g. 6.1.") }
            if over9p && overVirtiofs { throw ValidationError("--over-9p and --over-virtiofs describe different mounts: give one.") }
            return
        }
        if upper != nil || userxattr || kernel != nil || over9p || overVirtiofs { throw ValidationError("--upper, --userxattr, --kernel, --over-9p and --over-virtiofs go with --check.") }
        if layers.isEmpty { throw ValidationError("Name at least one layer.") }
        if xattrs == nil && whiteouts == nil && xattrmap == nil { throw ValidationError("Say what to convert to: --xattrs, --whiteouts or --xattrmap (or use --check).") }
        if output != nil && layers.count != 1 { throw ValidationError("--output takes one layer.") }
        if reverseXattrmap && xattrmap == nil { throw ValidationError("--reverse-xattrmap goes with --xattrmap.") }
        if let xattrmap {
            do { _ = try XattrMap(xattrmap) } catch { throw ValidationError("--xattrmap: \(error.detail)") }
        }
        if let owner { _ = try HostUser.parse(owner) }
    }

    public init() {}

    /// Converts or checks the layers; returns the exit status.
    public func run() -> Int32 {
        let console = Console(tool: "virtfs-overlay")
        if check { return self.check(console) }
        let failed = layers.map { convert($0, console) }.contains(false)
        console.flush()
        return failed || console.failures > 0 ? 1 : 0
    }

    /// The layer's model; a half-converted layer is refused as every tool refuses it.
    func modelOf(_ location: Walker.Location) throws -> SecurityModel {
        if let record = ConversionRecord.read(in: location.directory) {
            throw VirtFSError.interruptedConversion(record, path: location.path)
        }
        return model ?? ModelDetection.detect(in: location.directory).model ?? .passthrough
    }

    // MARK: converting

    /// Converts one layer (in place, or into `output`); false when anything failed.
    func convert(_ layer: String, _ console: Console) -> Bool {
        let started = Stopwatch()
        func event(_ e: OverlayConverter.Event) {
            switch e {
            case .change(let c):
                console.write(json: json, ["kind": c.kind.rawValue, "from": c.from, "to": c.to, "dry_run": dryRun, "path": c.path],
                              or: "\(Bytes.shellEscaped(c.path)): \(dryRun ? "would change" : "changed") \(c.kind.rawValue): \(c.from) -> \(c.to)\n")
            case .stale(let path, let attribute):
                if json {
                    console.writeJSON(["kind": "stale", "attribute": attribute, "path": path])
                } else {
                    console.warning("\(Bytes.shellEscaped(path)): \(attribute) is a file handle for the filesystem the layer was made on: stale after this conversion")
                }
            case .warning(let error): console.warning(error.description)
            case .failed(let error): console.error(error)
            }
        }
        var lock: TreeLock?
        defer { withExtendedLifetime(lock) {} }
        let model: SecurityModel
        let summary: OverlayConverter.Summary
        do {
            var root = try Walker.exportRoot(RawArguments.bytes(for: layer))
            model = try modelOf(root)
            if !dryRun { lock = try TreeLock(root) }
            var options = OverlayConverter.Options(model: model)
            options.dialect = xattrs
            options.whiteouts = whiteouts
            options.xattrMap = xattrmap.flatMap { try? XattrMap($0) }
            options.xattrMapToServer = !reverseXattrmap
            options.force = force
            options.oneFileSystem = oneFileSystem
            if let owner, let host = try? HostUser.parse(owner) { options.placement.owner = host }
            if whiteouts == .mapped && !model.isMapped {
                console.warning("\(layer): in a \(model.rawValue) tree the mapped form is a real char device 0/0; virtfs-convert to a mapped model turns it into the mapped form")
            }
            if let output, !dryRun {
                guard let copy = try OverlayConverter(options: options).copy(root, intoNew: RawArguments.bytes(for: output), failure: console.error) else { return false }
                root = copy
            }
            options.copied = output != nil
            summary = try OverlayConverter(options: options).run(root, dryRun: dryRun, event: event)
        } catch {
            console.error(error)
            return false
        }
        let kinds = summary.changes.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")
        let text = "\(output ?? layer): \(dryRun ? "would make" : "made") \(summary.total) changes (\(kinds.isEmpty ? "none" : kinds)) in \(summary.entries) entries (\(model.rawValue)), \(summary.stale) stale handles, \(summary.warnings) warnings, \(summary.failures) failed, \(started.text) s"
        var fields: [String: Any] = ["changes": summary.total, "entries": summary.entries, "stale": summary.stale,
                                     "failed": summary.failures, "model": model.rawValue, "dry_run": dryRun]
        for (k, v) in summary.changes { fields["changes_" + k.rawValue] = v }
        console.writeSummary(text, json: json, fields)
        return summary.failures == 0
    }

    // MARK: checking

    /// Reads the layers (`upper` first) and reports what would stop the mount the options
    /// describe. Returns the exit status.
    func check(_ console: Console) -> Int32 {
        var target = OverlayCheck.Target()
        target.userxattr = userxattr
        target.overVirtiofs = overVirtiofs
        target.kernel = kernel.flatMap(OverlayCheck.Target.kernelVersion) ?? OverlayCheck.Target.runningKernel ?? (6, 1)
        var layerList: [OverlayCheck.Layer] = []
        let operands = (upper.map { [($0, true)] } ?? []) + layers.map { ($0, false) }
        for (path, isUpper) in operands {
            guard let root = console.attempt({ try Walker.exportRoot(RawArguments.bytes(for: path)) }),
                  let model = console.attempt({ try modelOf(root) }) else { continue }
            if over9p && target.over9p == nil { target.over9p = model }
            let scan = OverlayScan.scan(root, model: model)
            for f in scan.failures { console.error(f) }
            layerList.append(OverlayCheck.Layer(path: RawArguments.bytes(for: path), scan: scan, isUpper: isUpper))
        }
        let findings = OverlayCheck.findings(layerList, target: target)
        let mount = target.summary
        for layer in layerList {
            console.write(json: json, ["layer_summary": OverlayCheck.describe(layer), "upper": layer.isUpper, "entries": layer.scan.entries,
                                       "dialects": Dictionary(uniqueKeysWithValues: layer.scan.dialects.map { ($0.key.rawValue, $0.value) }),
                                       "whiteouts": Dictionary(uniqueKeysWithValues: layer.scan.whiteouts.map { ($0.key.rawValue, $0.value) }),
                                       "opaque_xattr": layer.scan.opaqueXattr, "opaque_markers": layer.scan.opaqueMarkers, "keys": layer.scan.keys,
                                       "path": layer.path],
                          or: "\(Bytes.shellEscaped(layer.path)): \(OverlayCheck.describe(layer))\n")
        }
        for f in findings {
            var object: [String: Any] = ["severity": f.severity.rawValue, "finding": f.text, "mount": mount, "path": f.layer]
            object["xattrmap"] = f.xattrmap
            console.write(json: json, object, or: "\(Bytes.shellEscaped(f.layer)): \(f.severity.rawValue): \(f.text)\n")
        }
        let blockers = findings.filter { $0.severity == .blocker }.count
        let limits = findings.filter { $0.severity == .limit }.count
        let verdict = "\(blockers == 0 ? "usable" : "not usable") for a mount with \(mount): \(blockers) blockers, \(limits) limits"
        console.writeSummary(verdict, json: json, ["blockers": blockers, "limits": limits])
        console.flush()
        return blockers > 0 || console.failures > 0 ? 1 : 0
    }
}
