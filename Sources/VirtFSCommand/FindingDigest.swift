import VirtFSCore

/// Folds many findings with one cause into one block: the first `limit` findings of a check
/// (with the same outcome) are printed one by one; from the next one on, the check becomes one
/// block with the count and the first paths. Holds at most `limit` findings per group, so
/// memory does not grow with the number of entries.
public struct FindingDigest {
    public let limit: Int
    private var folding: Folding<String, (finding: Finding, state: String)>

    /// `limit`: how many findings of a group are kept whole (`Int.max`: never fold).
    public init(limit: Int = 3) {
        self.limit = limit
        folding = Folding(keep: limit)
    }

    public mutating func add(_ finding: Finding, state: String) {
        // Repairs name owners and bits; fold by what was done, not by its detail.
        folding.add((finding, state), key: finding.check.rawValue + "\u{0}" + state.prefix { $0 != ":" })
    }

    /// One finding as the text output prints it.
    public static func block(_ f: Finding, state: String, path render: ([UInt8]) -> String) -> String {
        "\(render(f.path)): \(f.severity.rawValue) \(f.check.rawValue): \(f.problem)\n    guest: \(f.guestSees)\n    \(state)\n"
    }

    /// The text blocks, in the order the groups first appeared.
    public func text(path render: ([UInt8]) -> String) -> String {
        var out = ""
        for g in folding.groups {
            if g.count <= limit {
                out += g.first.map { Self.block($0.finding, state: $0.state, path: render) }.joined()
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
    public let limit: Int
    private var folding: Folding<String, [UInt8]>

    /// `limit`: how many errors of one cause are reported whole (`Int.max`: never fold).
    public init(limit: Int = 3) {
        self.limit = limit
        folding = Folding(keep: limit)
    }

    /// Counts `error`; reports it whole through `report` while its cause has not reached `limit`.
    public mutating func add(_ error: VirtFSError, report: (VirtFSError) -> Void) {
        if folding.add(error.path, key: error.detail) <= limit { report(error) }
    }

    /// One line per cause that went past `limit`: its count and first paths.
    public func folded(path render: ([UInt8]) -> String) -> [String] {
        folding.groups.filter { $0.count > limit }.map { g in
            "\(g.key): \(TreeVerdict.number(g.count)) entries in all (\(g.first.map(render).joined(separator: ", ")), …; -v lists every one)"
        }
    }
}

/// Items grouped by a key, in the order groups first appeared: each group's count and its
/// first `keep` items (at least one), so memory does not grow with the items.
struct Folding<Key: Hashable, Item> {
    struct Group {
        var key: Key
        var count = 0
        var first: [Item] = []
    }

    let keep: Int
    private(set) var groups: [Group] = []
    private var positions: [Key: Int] = [:]

    init(keep: Int) {
        self.keep = max(keep, 1)
    }

    /// Counts `item` in `key`'s group; returns how many the group holds now.
    @discardableResult
    mutating func add(_ item: Item, key: Key) -> Int {
        let i = positions[key] ?? groups.count
        if i == groups.count {
            positions[key] = i
            groups.append(Group(key: key))
        }
        groups[i].count += 1
        if groups[i].first.count < keep { groups[i].first.append(item) }
        return groups[i].count
    }
}
