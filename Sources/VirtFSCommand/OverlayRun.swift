import VirtFSCore

/// virtfs-overlay after its arguments are parsed: each layer's model found, the layer converted
/// (or copied, then converted) with every change reported, or the layers checked against a mount.
public struct OverlayRun {
    public var model: SecurityModel?
    public var output: String?
    public var dryRun = false
    public var json = false
    public let console = Console(tool: "virtfs-overlay")

    public init() {}

    /// The layer's model; a half-converted layer is refused as every tool refuses it.
    func modelOf(_ location: Walker.Location) throws -> SecurityModel {
        if let record = ConversionRecord.read(in: location.directory) {
            throw VirtFSError.interruptedConversion(record, path: location.path)
        }
        return model ?? ModelDetection.detect(in: location.directory).model ?? .passthrough
    }

    // MARK: converting

    /// Converts one layer (in place, or into `output`); `configure` sets what to convert to.
    /// False when anything failed.
    public func convert(_ layer: String, configure: (inout OverlayConverter.Options) -> Void) -> Bool {
        let started = Stopwatch()
        var root: Walker.Location
        let layerModel: SecurityModel
        var lock: TreeLock?
        defer { withExtendedLifetime(lock) {} }
        do {
            root = try Walker.exportRoot(RawArguments.bytes(for: layer))
            layerModel = try modelOf(root)
            if !dryRun { lock = try TreeLock(root) }
        } catch {
            console.error(error)
            return false
        }
        var options = OverlayConverter.Options(model: layerModel)
        configure(&options)
        let shownLayer = output ?? layer
        if options.whiteouts == .mapped && !options.model.isMapped {
            console.warning("\(layer): in a \(options.model.rawValue) tree the mapped form is a real char device 0/0; virtfs-convert to a mapped model turns it into the mapped form")
        }
        if let output {
            if !dryRun {
                do {
                    guard let copy = try OverlayConverter(options: options).copy(root, intoNew: RawArguments.bytes(for: output), failure: console.error) else { return false }
                    root = copy
                } catch {
                    console.error(error)
                    return false
                }
            }
            options.copied = true
        }
        let converter = OverlayConverter(options: options)
        func event(_ e: OverlayConverter.Event) {
            switch e {
            case .change(let c):
                if json {
                    var object: [String: Any] = ["kind": c.kind.rawValue, "from": c.from, "to": c.to, "dry_run": dryRun]
                    object["path"] = c.path
                    console.writeJSON(object)
                } else {
                    console.write("\(Bytes.shellEscaped(c.path)): \(dryRun ? "would change" : "changed") \(c.kind.rawValue): \(c.from) -> \(c.to)\n")
                }
            case .stale(let path, let attribute):
                if json {
                    var object: [String: Any] = ["kind": "stale", "attribute": attribute]
                    object["path"] = path
                    console.writeJSON(object)
                } else {
                    console.warning("\(Bytes.shellEscaped(path)): \(attribute) is a file handle for the filesystem the layer was made on: stale after this conversion")
                }
            case .warning(let error): console.warning(error.description)
            case .failed(let error): console.error(error)
            }
        }
        let summary: OverlayConverter.Summary
        do {
            summary = try converter.run(root, dryRun: dryRun, event: event)
        } catch {
            console.error(error)
            return false
        }
        let seconds = started.seconds
        let kinds = summary.changes.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")
        let text = "\(shownLayer): \(dryRun ? "would make" : "made") \(summary.total) changes (\(kinds.isEmpty ? "none" : kinds)) in \(summary.entries) entries (\(options.model.rawValue)), \(summary.stale) stale handles, \(summary.warnings) warnings, \(summary.failures) failed, \(Decimal2.fixed(seconds)) s"
        if json {
            var object: [String: Any] = ["summary": text, "changes": summary.total, "entries": summary.entries, "stale": summary.stale,
                                         "failed": summary.failures, "model": options.model.rawValue, "dry_run": dryRun]
            for (k, v) in summary.changes { object["changes_" + k.rawValue] = v }
            console.writeJSON(object)
        } else {
            console.write(text + "\n")
        }
        return summary.failures == 0
    }

    // MARK: checking

    /// Reads the layers (`upper` first) and reports what would stop the mount `target`
    /// describes; with `over9p`, the layers reach it over a 9p export in their model. Returns the
    /// exit status.
    public func check(_ layers: [String], upper: String?, target: OverlayCheck.Target, over9p: Bool) -> Int32 {
        var target = target
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
            if json {
                var object: [String: Any] = ["layer_summary": OverlayCheck.describe(layer), "upper": layer.isUpper, "entries": layer.scan.entries,
                                             "dialects": Dictionary(uniqueKeysWithValues: layer.scan.dialects.map { ($0.key.rawValue, $0.value) }),
                                             "whiteouts": Dictionary(uniqueKeysWithValues: layer.scan.whiteouts.map { ($0.key.rawValue, $0.value) }),
                                             "opaque_xattr": layer.scan.opaqueXattr, "opaque_markers": layer.scan.opaqueMarkers, "keys": layer.scan.keys]
                object["path"] = layer.path
                console.writeJSON(object)
            } else {
                console.write("\(Bytes.shellEscaped(layer.path)): \(OverlayCheck.describe(layer))\n")
            }
        }
        for f in findings {
            if json {
                var object: [String: Any] = ["severity": f.severity.rawValue, "finding": f.text, "mount": mount]
                object["path"] = f.layer
                if let map = f.xattrmap { object["xattrmap"] = map }
                console.writeJSON(object)
            } else {
                console.write("\(Bytes.shellEscaped(f.layer)): \(f.severity.rawValue): \(f.text)\n")
            }
        }
        let blockers = findings.filter { $0.severity == .blocker }.count
        let limits = findings.filter { $0.severity == .limit }.count
        let verdict = "\(blockers == 0 ? "usable" : "not usable") for a mount with \(mount): \(blockers) blockers, \(limits) limits"
        if json { console.writeJSON(["summary": verdict, "blockers": blockers, "limits": limits]) } else { console.write(verdict + "\n") }
        console.flush()
        return blockers > 0 || console.failures > 0 ? 1 : 0
    }
}
