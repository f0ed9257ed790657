import CVirtFS
import Glibc

/// An open host directory, and (lazily) the directory a model keeps its children's metadata in.
/// Closes what it owns when released, so a walk holds descriptors only along its current path.
public final class DirectoryContext {
    public let fd: Int32
    /// The directory's path as the user named it, for messages.
    public let path: [UInt8]
    private let ownsFD: Bool
    enum Metadata {
        case unknown
        case absent
        case open(Int32)
    }
    var metadata: Metadata = .unknown

    public init(fd: Int32, path: [UInt8], owned: Bool = true) {
        self.fd = fd
        self.path = path
        self.ownsFD = owned
    }

    /// Opens a directory operand the user named; symlinks in the path itself are the user's.
    public static func open(path: [UInt8]) throws -> DirectoryContext {
        let (parent, name) = try Sys.openOperandParent(path)
        defer { Sys.close(parent) }
        do {
            let fd = try Sys.openDirectory(parent, name)
            return DirectoryContext(fd: fd, path: path)
        } catch let error as VirtFSError {
            throw error.at(path)
        }
    }

    /// Opens `name`, a subdirectory, without following symlinks.
    public func child(_ name: [UInt8], path childPath: [UInt8]) throws -> DirectoryContext {
        DirectoryContext(fd: try Sys.openDirectory(fd, name), path: childPath)
    }

    deinit {
        if case .open(let mfd) = metadata { Sys.close(mfd) }
        if ownsFD { Sys.close(fd) }
    }
}

/// One host object reached as a name below an open directory: the facts a codec may ask
/// about it. For the export root the name is `.` and the directory is the root itself.
public struct HostEntry {
    public let directory: DirectoryContext
    public let name: [UInt8]
    /// The entry's path as the user named it, for messages and output.
    public let path: [UInt8]
    public let stat: HostStat
    /// True for the exported directory itself (mapped-file keeps its metadata in
    /// `.virtfs_metadata_root` rather than in a parent it does not have).
    public let isExportRoot: Bool
    /// The xattr names once listed, kept up to date by this entry's own set and remove calls:
    /// a codec's decode, fsck's census and a conversion's last step each ask, and one
    /// listxattr serves them all. Shared by copies of the entry; `refreshed()` starts anew.
    private let listed = ListedXattrs()

    final class ListedXattrs {
        var names: [[UInt8]]?
        func added(_ name: [UInt8]) { if names?.contains(name) == false { names?.append(name) } }
        func removed(_ name: [UInt8]) { names?.removeAll { $0 == name } }
    }

    public init(directory: DirectoryContext, name: [UInt8], path: [UInt8], isExportRoot: Bool = false) throws {
        self.directory = directory
        self.name = name
        self.path = path
        self.isExportRoot = isExportRoot
        do {
            stat = try Sys.stat(directory.fd, name)
        } catch let error as VirtFSError {
            throw error.at(path)
        }
    }

    init(directory: DirectoryContext, name: [UInt8], path: [UInt8], stat: HostStat, isExportRoot: Bool) {
        self.directory = directory
        self.name = name
        self.path = path
        self.stat = stat
        self.isExportRoot = isExportRoot
    }

    /// Re-reads the host inode after a change.
    public func refreshed() throws -> HostEntry {
        try HostEntry(directory: directory, name: name, path: path, isExportRoot: isExportRoot)
    }

    public func xattrNames() throws -> [[UInt8]] {
        if let names = listed.names { return names }
        do {
            let names = try Sys.listXattrs(directory.fd, name)
            listed.names = names
            return names
        } catch let e as VirtFSError { throw e.at(path) }
    }

    public func xattr(_ attribute: String) throws -> [UInt8]? {
        do { return try Sys.getXattr(directory.fd, name, attribute) } catch let e as VirtFSError { throw e.at(path) }
    }

    public func setXattr(_ attribute: String, _ value: [UInt8]) throws {
        try setXattr(raw: Array(attribute.utf8), value)
    }

    /// The xattr named by raw bytes (a guest can set names that are not UTF-8).
    public func xattr(raw attribute: [UInt8]) throws -> [UInt8]? {
        do { return try Sys.getXattr(directory.fd, name, raw: attribute) } catch let e as VirtFSError { throw e.at(path) }
    }

    public func setXattr(raw attribute: [UInt8], _ value: [UInt8]) throws {
        do { try Sys.setXattr(directory.fd, name, raw: attribute, value) } catch let e as VirtFSError { throw e.at(path) }
        listed.added(attribute)
    }

    /// Removing an absent xattr is no error; when the names are listed, it is no call either.
    public func removeXattr(raw attribute: [UInt8]) throws {
        if let names = listed.names, !names.contains(attribute) { return }
        do { try Sys.removeXattr(directory.fd, name, raw: attribute) } catch let e as VirtFSError { throw e.at(path) }
        listed.removed(attribute)
    }

    public func removeXattr(_ attribute: String) throws {
        try removeXattr(raw: Array(attribute.utf8))
    }

    /// The target of a real host symlink.
    public func readLink() throws -> [UInt8] {
        do { return try Sys.readLink(directory.fd, name) } catch let e as VirtFSError { throw e.at(path) }
    }

    /// The data of a regular file, at most `limit` bytes (a mapped symlink's target).
    public func readContent(limit: Int) throws -> (bytes: [UInt8], truncated: Bool) {
        do { return try Sys.readFile(directory.fd, name, limit: limit) } catch let e as VirtFSError { throw e.at(path) }
    }
}

/// The longest symlink target a guest can have (PATH_MAX including the NUL).
let symlinkTargetLimit = 4095
