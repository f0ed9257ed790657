import Glibc

/// Which security model a tree was written in, judged from a bounded sample of it: mapped-file
/// leaves `.virtfs_metadata` directories and `.virtfs_metadata_root`; mapped-xattr leaves
/// `user.virtfs.*` xattrs; passthrough and none leave nothing (and look the same on the host).
public struct ModelDetection: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case detected(SecurityModel)
        /// Evidence of both mapped models: the tree cannot be read one way.
        case mixed
    }

    public var outcome: Outcome
    /// Paths that showed mapped-file metadata.
    public var mappedFileEvidence: [[UInt8]] = []
    /// Paths that carried `user.virtfs.*` xattrs.
    public var mappedXattrEvidence: [[UInt8]] = []
    public var entriesExamined = 0

    public var model: SecurityModel? {
        if case .detected(let m) = outcome { return m }
        return nil
    }

    /// The reason, for messages: `mixed models: mapped-file (.virtfs_metadata in ./a), mapped-xattr (user.virtfs.* on ./b)`.
    public var explanation: String {
        func first(_ paths: [[UInt8]]) -> String { paths.first.map { String(decoding: $0, as: UTF8.self) } ?? "?" }
        switch outcome {
        case .mixed:
            return "tree mixes models: mapped-file metadata at \(first(mappedFileEvidence)) and user.virtfs.* xattrs on \(first(mappedXattrEvidence)); name one with --model"
        case .detected(.mappedFile):
            return "mapped-file (metadata at \(first(mappedFileEvidence)))"
        case .detected(.mappedXattr):
            return "mapped-xattr (user.virtfs.* on \(first(mappedXattrEvidence)))"
        case .detected(let m):
            return "\(m.rawValue) (no VirtFS metadata found; passthrough and none look alike on the host)"
        }
    }

    /// Examines `directory` itself, `entry` (if the operand is not the directory), and up to
    /// `limit` entries below `directory`, breadth first.
    public static func detect(in directory: DirectoryContext, entry: HostEntry? = nil, limit: Int = 512) -> ModelDetection {
        var result = ModelDetection(outcome: .detected(.passthrough))
        var queue: [DirectoryContext] = [directory]
        func examine(_ dir: DirectoryContext, _ name: [UInt8], _ path: [UInt8]) {
            result.entriesExamined += 1
            if MappedFileNames.isReserved(name) {
                result.mappedFileEvidence.append(path)
                return
            }
            if let names = try? Sys.listXattrs(dir.fd, name),
               names.contains(where: { $0 == Array(VirtfsXattr.mode.utf8) || $0 == Array(VirtfsXattr.uid.utf8) || $0 == Array(VirtfsXattr.gid.utf8) }) {
                result.mappedXattrEvidence.append(path)
            }
        }
        if let entry {
            examine(entry.directory, entry.name, entry.path)
        }
        examine(directory, [UInt8(ascii: ".")], directory.path.isEmpty ? [UInt8(ascii: ".")] : directory.path)
        var index = 0
        while index < queue.count && result.entriesExamined < limit {
            let dir = queue[index]
            index += 1
            try? Sys.forEachName(in: dir.fd) { name, type in
                guard result.entriesExamined < limit else { return false }
                let path = Bytes.join(dir.path, name)
                examine(dir, name, path)
                if type == UInt8(DT_DIR), !MappedFileNames.isReserved(name), queue.count < 64,
                   let child = try? dir.child(name, path: path) {
                    queue.append(child)
                }
                return true
            }
        }
        switch (result.mappedFileEvidence.isEmpty, result.mappedXattrEvidence.isEmpty) {
        case (false, false): result.outcome = .mixed
        case (false, true): result.outcome = .detected(.mappedFile)
        case (true, false): result.outcome = .detected(.mappedXattr)
        case (true, true): result.outcome = .detected(.passthrough)
        }
        return result
    }
}
