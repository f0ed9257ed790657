/// Which repairs a run of virtfs-fsck applies: none (`-n`, the default), the safe ones (`-p`),
/// or all (`-y`).
public enum RepairMode: Sendable {
    case none, safe, all

    /// Whether this mode applies `repair`.
    public func applies(_ repair: Finding.Repair) -> Bool {
        switch self {
        case .none: false
        case .safe: repair.safe
        case .all: true
        }
    }

    /// What is said of a finding's repair once the run is past it.
    public func state(of repair: Finding.Repair?, fixed: Bool, failed: Bool) -> String {
        guard let repair else { return "not repaired (no repair)" }
        if fixed { return "repaired: \(repair.summary)" }
        if failed { return "repair failed: \(repair.summary)" }
        return "not repaired (\(repair.safe ? "-p or -y" : "-y")): \(repair.summary)"
    }
}

/// What a run of virtfs-fsck found and did, and the exit status fsck(8) gives it: bit 1 errors
/// corrected, 4 errors left uncorrected, 8 operational error.
public struct FsckTally: Sendable, Equatable {
    public var errors = 0
    public var repaired = 0
    public var left = 0
    public var warnings = 0
    public var failedRepairs = 0
    /// Like e2fsck, any change to the tree (a warning's repair too) counts as "corrected".
    public var changed = false

    public init() {}

    /// Counts one finding, repaired (`fixed`) or not; a failed repair leaves it uncorrected.
    public mutating func record(_ severity: Check.Severity, fixed: Bool, repairFailed: Bool = false) {
        if fixed { changed = true }
        if repairFailed { failedRepairs += 1 }
        if severity == .warning {
            warnings += 1
        } else {
            errors += 1
            if fixed { repaired += 1 } else { left += 1 }
        }
    }

    /// The exit status; a verdict on the whole tree (lost metadata, wrong model) is an error
    /// left uncorrected.
    public func exitStatus(verdicts: Int) -> Int32 {
        (changed ? 1 : 0) | (left > 0 || verdicts > 0 ? 4 : 0) | (failedRepairs > 0 ? 8 : 0)
    }

    /// The closing line, e.g. `tree: 2 errors (1 repaired, 1 left), 0 warnings; metadata-lost`.
    public func summary(tree: String, verdicts: [String]) -> String {
        var text = "\(tree): \(errors) error\(errors == 1 ? "" : "s") (\(repaired) repaired, \(left) left), \(warnings) warning\(warnings == 1 ? "" : "s")"
        if !verdicts.isEmpty { text += "; " + verdicts.joined(separator: ", ") }
        return text
    }
}
