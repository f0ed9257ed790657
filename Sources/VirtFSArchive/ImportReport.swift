import VirtFSCore

/// How one event of an import or a restore is told: a JSON object (--json), a line (-v, and a
/// dry run), and a warning or an error said in any case.
public struct EventReport {
    public var json: [String: Any]
    public var line: [UInt8]?
    public var warning: VirtFSError?
    public var error: VirtFSError?
}

extension Importer.Event {
    public var report: EventReport {
        switch self {
        case .imported(let path, let attributes):
            return EventReport(json: ["path": path, "type": attributes.type.keyword, "result": "imported",
                                      "mode": String(attributes.permissions, radix: 8), "uid": attributes.uid, "gid": attributes.gid],
                               line: path + [0x0a])
        case .warning(let error):
            return EventReport(json: ["path": error.path, "result": "warning", "error": error.detail], warning: error)
        case .refused(let error), .failed(let error):
            let refused = if case .refused = error.reason { true } else { false }
            return EventReport(json: ["path": error.path, "result": refused ? "refused" : "error", "error": error.detail], error: error)
        }
    }
}

extension Importer.Summary {
    /// The closing line of an import of `archive`; `undone` when the failed import was removed.
    public func line(archive: String, format: String, model: SecurityModel, undone: Bool, seconds: String) -> String {
        let types = imported.sorted { $0.key.keyword < $1.key.keyword }.map { "\($0.value) \($0.key.keyword)" }.joined(separator: ", ")
        return "\(archive): imported \(total) members (\(types.isEmpty ? "none" : types)) from \(format) as \(model.rawValue), \(bytes) bytes of file data, \(incomplete) not kept whole, \(refused) refused, \(failures) failed\(undone ? ", all removed again" : ""), \(seconds) s"
    }

    public func fields(undone: Bool, seconds: Double) -> [String: Any] {
        ["imported": total, "bytes": bytes, "incomplete": incomplete, "refused": refused, "failed": failures, "removed": undone, "seconds": seconds]
    }
}

extension ManifestRestorer.Event {
    public func report(dryRun: Bool) -> EventReport {
        switch self {
        case .restored(let path, let before, let after):
            return EventReport(json: ["path": path, "type": after.type.keyword, "result": dryRun ? "would restore" : "restored",
                                      "mode": String(after.permissions, radix: 8), "uid": after.uid, "gid": after.gid,
                                      "was": "\(before.type.keyword) \(String(before.permissions, radix: 8)) \(before.uid):\(before.gid)"],
                               line: path + Array(": \(before.type.keyword) 0\(String(before.permissions, radix: 8)) \(before.uid):\(before.gid) -> \(after.type.keyword) 0\(String(after.permissions, radix: 8)) \(after.uid):\(after.gid)\n".utf8))
        case .unchanged(let path):
            return EventReport(json: ["path": path, "result": "unchanged"])
        case .relinked(let path, let target):
            return EventReport(json: ["path": path, "type": "file", "result": dryRun ? "would link again" : "linked again", "target": target],
                               line: path + Array(": hard link of ".utf8) + target + Array(" \(dryRun ? "to be made" : "made") again\n".utf8))
        case .incomplete(let error), .note(let error):
            return EventReport(json: ["path": error.path, "result": "warning", "error": error.detail], warning: error)
        case .differs(let error), .missing(let error), .failed(let error):
            return EventReport(json: ["path": error.path, "result": "error", "error": error.detail], error: error)
        }
    }
}


extension ManifestRestorer.Summary {
    /// The closing line of a restore from `archive` (`source` says what it was).
    public func line(archive: String, dryRun: Bool, model: SecurityModel, source: String, seconds: String) -> String {
        "\(archive): \(dryRun ? "would restore" : "restored") \(restored) entries, \(unchanged) unchanged, \(differing) differ, \(missing) missing, \(linkedOutside) linked from outside the tree, \(relinked) hard links \(dryRun ? "to be made" : "made") again, \(incomplete) not kept whole, \(failures) failed (\(model.rawValue), from \(source)), \(seconds) s"
    }

    public func fields(manifest: Bool, seconds: Double) -> [String: Any] {
        ["restored": restored, "unchanged": unchanged, "differ": differing, "missing": missing, "relinked": relinked,
         "outside": linkedOutside, "incomplete": incomplete, "failed": failures, "manifest": manifest, "seconds": seconds]
    }

    /// Whether the tree is left other than the archive records it.
    public var fallsShort: Bool { differing + missing + linkedOutside + failures > 0 }
}
