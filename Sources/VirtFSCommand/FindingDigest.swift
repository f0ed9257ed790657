import VirtFSCore

/// Folds many findings with one cause into one block: the first `limit` findings of a check
/// (with the same outcome) are printed one by one; from the next one on, the check becomes one
/// block with the count and the first paths. Holds at most `limit` findings per group, so
/// memory does not grow with the number of entries.
public struct FindingDigest {
    public struct Group {
        public var check: Check
        public var state: String
        public var count = 0
        public var first: [(finding: Finding, state: String)] = []
    }

    public let limit: Int
    public private(set) var groups: [Group] = []
    private var index = GroupIndex()

    /// `limit`: how many findings of a group are kept whole (`Int.max`: never fold).
    public init(limit: Int = 3) {
        self.limit = limit
    }

    public mutating func add(_ finding: Finding, state: String) {
        // Repairs name owners and bits; fold by what was done, not by its detail.
        let outcome = String(state.prefix { $0 != ":" })
        let i = index.slot(finding.check.rawValue + "\u{0}" + outcome, in: &groups) { Group(check: finding.check, state: outcome) }
        groups[i].count += 1
        if groups[i].first.count < max(limit, 1) { groups[i].first.append((finding, state)) }
    }

    /// The text blocks, in the order the groups first appeared.
    public func text(path render: ([UInt8]) -> String) -> String {
        var out = ""
        for g in groups {
            if g.count <= limit {
                for (f, state) in g.first {
                    out += "\(render(f.path)): \(f.severity.rawValue) \(f.check.rawValue): \(f.problem)\n    guest: \(f.guestSees)\n    \(state)\n"
                }
                continue
            }
            let (f, state) = g.first[0]
            let paths = g.first.map { render($0.finding.path) }.joined(separator: ", ")
            out += "\(f.severity.rawValue) \(f.check.rawValue): \(TreeVerdict.number(g.count)) entries (\(paths), …; -v lists every one)\n"
            out += "    e.g. \(render(f.path)): \(f.problem)\n    guest: \(f.guestSees)\n    \(state)\n"
        }
        return out
    }
}

/// Folds many per-entry errors with one cause (the same step and reason) into one line with the
/// count and the first paths: `needs root: 8,475 entries (etc, etc/passwd, …)`. The first
/// `limit` errors of a cause are reported whole as they come; later ones are only counted.
public struct ErrorDigest {
    struct Group {
        var detail: String
        var count = 0
        var first: [[UInt8]] = []
    }

    public let limit: Int
    private var groups: [Group] = []
    private var index = GroupIndex()

    /// `limit`: how many errors of one cause are reported whole (`Int.max`: never fold).
    public init(limit: Int = 3) {
        self.limit = limit
    }

    /// Counts `error`; reports it whole through `report` while its cause has not reached `limit`.
    public mutating func add(_ error: VirtFSError, report: (VirtFSError) -> Void) {
        let i = index.slot(error.detail, in: &groups) { Group(detail: error.detail) }
        groups[i].count += 1
        if groups[i].first.count < max(limit, 1) { groups[i].first.append(error.path) }
        if groups[i].count <= limit { report(error) }
    }

    /// One line per cause that went past `limit`: its count and first paths.
    public func folded(path render: ([UInt8]) -> String) -> [String] {
        groups.filter { $0.count > limit }.map { g in
            "\(g.detail): \(TreeVerdict.number(g.count)) entries in all (\(g.first.map(render).joined(separator: ", ")), …; -v lists every one)"
        }
    }
}

/// Where each group of a digest is, by its key, in the order groups first appeared.
struct GroupIndex {
    private var positions: [String: Int] = [:]

    /// The index of `key`'s group in `groups`, appending `make()` for a new key.
    mutating func slot<G>(_ key: String, in groups: inout [G], make: () -> G) -> Int {
        if let known = positions[key] { return known }
        positions[key] = groups.count
        groups.append(make())
        return groups.count - 1
    }
}
