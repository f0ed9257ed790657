import Glibc

/// The one error type of the toolkit: what failed, on which entry, and why, with enough detail
/// to render it the way getfattr(1) and coreutils do:
/// `etc/shadow: lgetxattr user.virtfs.mode: Permission denied`.
public struct VirtFSError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// A system call failed with this errno.
        case system(Int32)
        /// Bytes on disk do not decode: the text says what was expected.
        case corrupt(String)
        /// The request cannot be carried out as asked (usage, privilege, policy).
        case refused(String)
        /// The tree is half converted (`.virtfs-convert-state` at its root): no model reads it
        /// right until the same conversion is run again.
        case interruptedConversion(from: SecurityModel, to: SecurityModel)
    }

    /// The step that failed: a syscall name (`openat`, `lgetxattr`) or a decode step.
    public var operation: String
    /// The entry's path as the user named it (raw bytes; names need not be UTF-8).
    public var path: [UInt8]
    /// The attribute, metadata key or file concerned, if any (raw bytes: a guest's xattr names
    /// need not be UTF-8).
    public var attribute: [UInt8]?
    /// Byte offset (metadata files) or line number context, if any.
    public var offset: Int?
    public var reason: Reason
    /// What a codec found in how the entry is stored, when the error is one of its findings.
    public var finding: StorageFinding?

    public init(
        _ operation: String, path: [UInt8] = [], attribute: [UInt8]? = nil, offset: Int? = nil,
        reason: Reason, finding: StorageFinding? = nil
    ) {
        self.operation = operation
        self.path = path
        self.attribute = attribute
        self.offset = offset
        self.reason = reason
        self.finding = finding
    }

    /// The same error, as a codec's finding.
    public func found(_ finding: StorageFinding) -> VirtFSError {
        var copy = self
        copy.finding = finding
        return copy
    }

    public static func system(
        _ operation: String, path: [UInt8] = [], attribute: [UInt8]? = nil, errno: Int32
    ) -> VirtFSError {
        VirtFSError(operation, path: path, attribute: attribute, reason: .system(errno))
    }

    public static func corrupt(
        _ operation: String, path: [UInt8] = [], attribute: [UInt8]? = nil, offset: Int? = nil,
        _ detail: String
    ) -> VirtFSError {
        VirtFSError(operation, path: path, attribute: attribute, offset: offset, reason: .corrupt(detail))
    }

    public static func refused(_ operation: String, path: [UInt8] = [], _ detail: String) -> VirtFSError {
        VirtFSError(operation, path: path, reason: .refused(detail))
    }

    public static func interruptedConversion(_ record: ConversionRecord, path: [UInt8]) -> VirtFSError {
        VirtFSError("convert", path: path, reason: .interruptedConversion(from: record.from, to: record.to))
    }

    public var errno: Int32? {
        if case .system(let e) = reason { return e }
        return nil
    }

    /// The same error, re-homed on another path (errors raised below the walker know only names).
    public func at(_ path: [UInt8]) -> VirtFSError {
        var copy = self
        copy.path = path
        return copy
    }

    /// `PATH: OPERATION ATTRIBUTE: REASON`, the path quoted for display (`Bytes.shellEscaped`).
    public var description: String {
        path.isEmpty ? detail : Bytes.shellEscaped(path) + ": " + detail
    }

    /// `OPERATION ATTRIBUTE: REASON`, without the path.
    public var detail: String {
        var step = operation
        // An attribute may be a guest's xattr name or metadata file name: quoted like a path.
        if let attribute { step += " " + Bytes.shellEscaped(attribute) }
        if let offset { step += " (byte \(offset))" }
        switch reason {
        case .system(let e): return step + ": " + String(cString: strerror(e))
        case .corrupt(let text), .refused(let text): return step + ": " + text
        case .interruptedConversion(let from, let to):
            // The same words from every tool, whatever step met the state file.
            return "conversion from \(from.rawValue) to \(to.rawValue) interrupted; run the same virtfs-convert again (virtfs-convert --to \(to.rawValue))"
        }
    }
}
