/// What happened to a tree as a whole, said once before any per-entry finding: the damage a
/// common accident leaves (a copy that dropped the metadata, a host-side `chown -R`, an
/// interrupted conversion, the wrong `--model`), each an error a pre-boot gate must fail on.
public enum TreeVerdict: Sendable, Equatable {
    /// `.virtfs-convert-state` at the root: half the entries are in each model.
    case interrupted(ConversionRecord)
    /// The declared model contradicts the metadata most entries carry.
    case contradicts(declared: SecurityModel, carried: SecurityModel, count: Int, of: Int)
    /// Entries of a mapped tree whose metadata a copy or an interrupted write stripped.
    case metadataLost(count: Int, of: Int, example: String?, paths: [[UInt8]])
    /// A mapped tree owned by root: a QEMU not running as root cannot open it.
    case rootOwned(count: Int, of: Int, paths: [[UInt8]])

    /// A stable name for scripts (`--json`).
    public var name: String {
        switch self {
        case .interrupted: return "interrupted-conversion"
        case .contradicts: return "model-contradiction"
        case .metadataLost: return "metadata-lost"
        case .rootOwned: return "root-owned"
        }
    }

    /// The verdicts a census supports, most serious first. `declared` is the model the user
    /// named, if any; `model` the one the tree is read in; `qemuUserGiven` whether the user said
    /// which user QEMU runs as.
    public static func judge(_ census: TreeCensus, model: SecurityModel, declared: SecurityModel?,
                             rootOwner: UInt32, qemuUserGiven: Bool) -> [TreeVerdict] {
        var verdicts: [TreeVerdict] = []
        let m = census.entries
        let covered = { (n: Int) in n >= 2 && ModelDetection.covers(n, of: m) }
        if let declared {
            if let (carried, count) = SecurityModel.mappedCodecs.lazy.map({ ($0.model, census.carried[$0.model] ?? 0) })
                .first(where: { $0.0 != declared && covered($0.1) }) {
                verdicts.append(.contradicts(declared: declared, carried: carried, count: count, of: m))
            } else if declared.isMapped, census.carriers == 0, census.hostSpecial >= 2, census.shaped < census.hostSpecial {
                // Real symlinks and devices and no metadata anywhere: a passthrough tree.
                verdicts.append(.contradicts(declared: declared, carried: .passthrough, count: census.hostSpecial, of: m))
            }
            if !verdicts.isEmpty { return verdicts }
        }
        // Outside the mapped models a metadata-less entry is normal: only a stripped tree is damage.
        if let lost = stripped(census) ? census.withoutMetadata : model.isMapped && census.lost.count > 0 ? census.lost : nil {
            verdicts.append(.metadataLost(count: lost.count, of: m, example: census.example, paths: lost.paths))
        }
        if model.isMapped || stripped(census), !qemuUserGiven, rootOwner == 0 {
            verdicts.append(.rootOwned(count: census.rootOwned.count, of: m, paths: census.rootOwned.paths))
        }
        return verdicts
    }

    /// Whether, by itself, the census says every entry without metadata lost it: none carries
    /// any, and more entries look like a stored symlink or device than are real ones.
    public static func stripped(_ census: TreeCensus) -> Bool {
        census.carriers == 0 && census.shaped >= 2 && census.shaped > census.hostSpecial
    }

    /// One line: what happened, with counts.
    public var summary: String {
        switch self {
        case .interrupted(let record):
            return VirtFSError.interruptedConversion(record, path: []).detail
        case .contradicts(let declared, let carried, let count, let of):
            if carried == .passthrough {
                return "--model \(declared.rawValue) contradicts the tree: no entry carries VirtFS metadata and \(Self.number(count)) of \(Self.number(of)) entries are host symlinks, devices or fifos (a passthrough tree)"
            }
            return "--model \(declared.rawValue) contradicts the tree: \(Self.number(count)) of \(Self.number(of)) entries carry \(carried.codec.storageDescription) (a \(carried.rawValue) tree)"
        case .metadataLost(let count, let of, let example, _):
            return "metadata lost on \(Self.number(count)) of \(Self.number(of)) entries" + (example.map { "; the guest would see \($0)" } ?? "")
        case .rootOwned(let count, let of, _):
            return "owned by root on the host (\(Self.number(count)) of \(Self.number(of)) entries): a QEMU not running as root cannot open a mapped tree owned by root"
        }
    }

    /// What to do about it, as commands for the tree at `tree` read in `model`.
    public func advice(tree: String, model: SecurityModel?) -> [String] {
        let m = model.map(\.rawValue) ?? "MODEL"
        let served = model == nil ? " (MODEL: the one QEMU serves it with)" : ""
        switch self {
        case .interrupted(let record):
            return ["finish it: virtfs-convert --from \(record.from.rawValue) --to \(record.to.rawValue) \(tree)"]
        case .contradicts(_, let carried, _, _):
            return ["check it in the model it carries: virtfs-fsck --model \(carried.rawValue) \(tree)",
                    "or, to serve it as another model, convert it: virtfs-convert --from \(carried.rawValue) --to MODEL \(tree)"]
        case .metadataLost:
            return ["restore it from a manifest of the guest view made before the damage (virtfs-export --format mtree): virtfs-import --model \(m) --metadata-only MANIFEST \(tree)\(served)",
                    "or from the rootfs tarball the tree was imported from: virtfs-import --model \(m) --metadata-only ROOTFS.tar \(tree)",
                    "copy trees with their xattrs next time: cp -a, rsync -aX, tar --xattrs --xattrs-include='*'"]
        case .rootOwned:
            return ["give it back to the user QEMU runs as, keeping the guest view: virtfs-fsck -y --qemu-user USER \(tree)",
                    "if QEMU does run as root, say so: virtfs-fsck --qemu-user root \(tree)"]
        }
    }

    /// `8,475`: counts as people read them.
    public static func number(_ n: Int) -> String {
        let digits = String(n)
        return digits.enumerated().map { i, d in (i > 0 && (digits.count - i) % 3 == 0 ? "," : "") + String(d) }.joined()
    }
}
