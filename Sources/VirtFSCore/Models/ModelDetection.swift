import Glibc

/// A conversion under way, as virtfs-convert records it in `.virtfs-convert-state` at the
/// export root (`virtfs-convert from=MODEL to=MODEL`) until the last entry has changed form.
public struct ConversionRecord: Sendable, Equatable {
    public var from: SecurityModel
    public var to: SecurityModel

    /// The file at the export root that holds the record.
    public static let fileName = Array(".virtfs-convert-state".utf8)
    /// Its own temporary name: a leftover of it is never a guest's file to keep.
    static let temporaryName = Array(".virtfs-convert-state.new".utf8)

    static func isStateFile(_ name: [UInt8]) -> Bool { name == fileName || name == temporaryName }

    static func isRecorded(in root: DirectoryContext) -> Bool { (try? Sys.stat(root.fd, fileName)) != nil }

    /// The conversion recorded in the export root `root`, or nil when none is under way.
    public static func read(in root: DirectoryContext) -> ConversionRecord? {
        guard let (bytes, _) = try? Sys.readFile(root.fd, fileName, limit: 4096) else { return nil }
        return parse(bytes)
    }

    static func parse(_ bytes: [UInt8]) -> ConversionRecord? {
        var fields: [String: String] = [:]
        // The first line names the conversion; lines after it record directory times.
        let header = bytes.prefix { $0 != 0x0a }
        for word in String(decoding: header, as: UTF8.self).split(separator: " ") {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let from = fields["from"].flatMap(SecurityModel.init(name:)),
              let to = fields["to"].flatMap(SecurityModel.init(name:)) else { return nil }
        return ConversionRecord(from: from, to: to)
    }
}

/// Which security model a tree was written in, judged from a bounded sample of it: mapped-file
/// leaves `.virtfs_metadata` directories and `.virtfs_metadata_root`; mapped-xattr leaves
/// `user.virtfs.*` xattrs; passthrough and none leave nothing (and look the same on the host).
///
/// A model is seen only when its metadata covers a real share of the sample (a quarter of the
/// entries examined), never on one entry: a passthrough guest can set `user.virtfs.*` on a file
/// of its own, and a tree with one such file is still a passthrough tree.
public struct ModelDetection: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case detected(SecurityModel)
        /// Evidence of both mapped models: the tree cannot be read one way.
        case mixed
        /// A conversion is recorded as under way in the export root: entries are in either model.
        case interrupted(ConversionRecord)
    }

    /// How many entries of the sample showed a model's storage, and the first paths that did.
    public struct Evidence: Sendable, Equatable {
        public var count = 0
        public var paths: [[UInt8]] = []
        /// How many paths are kept: memory does not grow with the count.
        var limit = ModelDetection.evidencePaths

        mutating func add(_ path: [UInt8]) {
            count += 1
            if paths.count < limit { paths.append(path) }
        }
    }

    public var outcome: Outcome
    /// What each mapped model left in the sample.
    public var evidence: [SecurityModel: Evidence] = [:]
    /// Entries examined, the mapped-file names themselves not included.
    public var entriesExamined = 0
    /// How the examined entries that carry metadata are owned and protected on the host (at
    /// most `profileLimit` distinct profiles).
    public var profiles: [HostProfile: Int] = [:]

    static let profileLimit = 64
    static let perDirectory = 32

    static let evidencePaths = 8

    public var model: SecurityModel? {
        if case .detected(let m) = outcome { return m }
        return nil
    }

    /// The reason, for messages: `mixed models: mapped-file (.virtfs_metadata in ./a), mapped-xattr (user.virtfs.* on ./b)`.
    public var explanation: String {
        func first(_ model: SecurityModel) -> String { evidence[model]?.paths.first.map { String(decoding: $0, as: UTF8.self) } ?? "?" }
        switch outcome {
        case .mixed:
            return "tree mixes models: mapped-file metadata at \(first(.mappedFile)) and user.virtfs.* xattrs on \(first(.mappedXattr)); name one with --model"
        case .interrupted(let record):
            return VirtFSError.interruptedConversion(record, path: []).detail
        case .detected(.mappedFile):
            return "mapped-file (metadata at \(first(.mappedFile)))"
        case .detected(.mappedXattr):
            return "mapped-xattr (user.virtfs.* on \(first(.mappedXattr)))"
        case .detected(let m):
            return "\(m.rawValue) (no VirtFS metadata found; passthrough and none look alike on the host)"
        }
    }

    /// Whether a model's metadata covers enough of the sample to say the tree is in it.
    static func covers(_ count: Int, of examined: Int) -> Bool {
        count > 0 && count * 4 >= max(examined, 1)
    }

    /// Examines `directory` itself, `entry` (if the operand is not the directory), and up to
    /// `limit` entries below `directory`, breadth first, at most `perDirectory` of each directory. When `directory` is an export root, a
    /// conversion recorded in it decides before any sample.
    public static func detect(in directory: DirectoryContext, entry: HostEntry? = nil, limit: Int = 512,
                              exportRoot: Bool = true) -> ModelDetection {
        var result = ModelDetection(outcome: .detected(.passthrough))
        if exportRoot, entry == nil, let record = ConversionRecord.read(in: directory) {
            result.outcome = .interrupted(record)
            return result
        }
        var queue: [DirectoryContext] = [directory]
        func examine(_ dir: DirectoryContext, _ name: [UInt8], _ path: [UInt8], isRoot: Bool = false) {
            if let model = SecurityModel.storing(name: name) {
                result.evidence[model, default: .init()].add(path)
                return
            }
            result.entriesExamined += 1
            guard let examined = try? HostEntry(directory: dir, name: name, path: path, isExportRoot: isRoot) else { return }
            let carriers = SecurityModel.mappedCodecs.filter { $0.carriesMetadata(examined) }
            for codec in carriers {
                // Storage by name is evidence where it lies; the root's is listed in the root.
                let file = codec.metadataFile(of: examined)
                if file == nil || !isRoot { result.evidence[codec.model, default: .init()].add(file.map { $0.reduce(dir.path) { Bytes.join($0, $1) } } ?? path) }
            }
            if !carriers.isEmpty {
                let profile = HostProfile(examined.stat)
                if result.profiles[profile] != nil || result.profiles.count < profileLimit { result.profiles[profile, default: 0] += 1 }
            }
        }
        if let entry {
            examine(entry.directory, entry.name, entry.path, isRoot: entry.isExportRoot)
        }
        examine(directory, [UInt8(ascii: ".")], directory.path.isEmpty ? [UInt8(ascii: ".")] : directory.path, isRoot: true)
        var index = 0
        while index < queue.count && result.entriesExamined < limit {
            let dir = queue[index]
            index += 1
            var inDirectory = 0
            try? Sys.forEachName(in: dir.fd) { name, type in
                // A few names per directory, so that one huge directory of files copied in on
                // the host does not outvote the rest of the tree.
                guard result.entriesExamined < limit, inDirectory < perDirectory else { return false }
                inDirectory += 1
                let path = Bytes.join(dir.path, name)
                examine(dir, name, path)
                if type == UInt8(DT_DIR), SecurityModel.storing(name: name) == nil, queue.count < 64,
                   let child = try? dir.child(name, path: path) {
                    queue.append(child)
                }
                return true
            }
        }
        let seen = result.evidence.filter { covers($0.value.count, of: result.entriesExamined) }.keys
        result.outcome = seen.count > 1 ? .mixed : .detected(seen.first ?? .passthrough)
        return result
    }
}
