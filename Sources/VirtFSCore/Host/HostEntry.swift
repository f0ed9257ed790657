import CVirtFS
import Glibc
import Synchronization

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
    /// Held while `metadata` is looked up or made: the threads of a parallel conversion write
    /// metadata files into one directory's `.virtfs_metadata` at once.
    let metadataLock = Mutex(())
    /// Hashes of the names a walk read from this directory (mapped-file walks only), so that
    /// the audit of `.virtfs_metadata` asks the kernel only about names the walk did not see.
    private var listed: Set<Int>?

    public init(fd: Int32, path: [UInt8], owned: Bool = true) {
        self.fd = fd
        self.path = path
        self.ownsFD = owned
    }

    /// Opens a directory operand the user named; symlinks in the path itself are the user's.
    public static func open(path: [UInt8]) throws(VirtFSError) -> DirectoryContext {
        let (parent, name) = try Sys.openOperandParent(path)
        defer { Sys.close(parent) }
        do {
            let fd = try Sys.openDirectory(parent, name)
            return DirectoryContext(fd: fd, path: path)
        } catch let error {
            throw error.at(path)
        }
    }

    /// Opens `name`, a subdirectory, without following symlinks.
    public func child(_ name: [UInt8], path childPath: [UInt8]) throws(VirtFSError) -> DirectoryContext {
        DirectoryContext(fd: try Sys.openDirectory(fd, name), path: childPath)
    }

    /// Notes that a walk read `name` from this directory.
    func noteListed(_ name: [UInt8]) {
        listed = listed ?? []
        listed!.insert(name.hashValue)
    }

    /// Whether a walk read `name` from this directory. A false answer proves nothing (the name
    /// may have been added since): ask the directory. Hashes are seeded per process, so no
    /// name can be chosen to pass for another.
    func wasListed(_ name: [UInt8]) -> Bool {
        listed?.contains(name.hashValue) ?? false
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
    /// Whether decoding reads the target of a symlink a mapped model stores as a file (the
    /// file's data). A reader that shows no target (a stat format without %N or %L) spares an
    /// open, a read and a close per such symlink; the guest's stat does not read it either.
    public var readsStoredSymlinkTarget = true
    /// What reading the entry learned, so that its next reader (a codec's decode, fsck's
    /// census, a conversion's last step) does not ask the kernel again. Shared by copies of the
    /// entry.
    let learned: Learned

    final class Learned {
        /// The xattr names once listed, kept current by the entry's own set and remove calls.
        var names: [[UInt8]]?
        /// Whether the model's metadata file is remembered too: only on entries of a read-only
        /// pass (`remembering()`), or while nothing changes (`remembering(during:)`), since codecs
        /// change that file by name, not through the entry.
        var remembers: Bool
        /// The model's metadata file: unknown (nil), none (.some(nil)) or its stat.
        var metadataStat: HostStat??

        init(remembers: Bool = false) { self.remembers = remembers }
        func added(_ name: [UInt8]) { if names?.contains(name) == false { names?.append(name) } }
        func removed(_ name: [UInt8]) { names?.removeAll { $0 == name } }
    }

    /// What a read-only pass remembers of the entry; nil on an entry of a pass that changes the tree.
    var facts: Learned? { learned.remembers ? learned : nil }

    public init(directory: DirectoryContext, name: [UInt8], path: [UInt8], isExportRoot: Bool = false) throws(VirtFSError) {
        let stat: HostStat
        do { stat = try Sys.stat(directory.fd, name) } catch { throw error.at(path) }
        self.init(directory: directory, name: name, path: path, stat: stat, isExportRoot: isExportRoot)
    }

    init(directory: DirectoryContext, name: [UInt8], path: [UInt8], stat: HostStat, isExportRoot: Bool, remembering: Bool = false) {
        self.directory = directory
        self.name = name
        self.path = path
        self.stat = stat
        self.isExportRoot = isExportRoot
        learned = Learned(remembers: remembering)
    }

    /// The same entry, keeping what its readers learn for the next reader. Only for a pass that
    /// changes nothing in the tree while it holds the entry.
    public func remembering() -> HostEntry {
        HostEntry(directory: directory, name: name, path: path, stat: stat, isExportRoot: isExportRoot, remembering: true)
    }

    /// Runs `read`, which changes nothing, remembering what it learns; an entry of a pass that
    /// changes the tree forgets its metadata file again before the caller changes anything.
    func remembering<T>(during read: () -> T) -> T {
        let before = learned.remembers
        learned.remembers = true
        defer { if !before { (learned.remembers, learned.metadataStat) = (false, nil) } }
        return read()
    }

    public func xattrNames() throws(VirtFSError) -> [[UInt8]] {
        if let names = learned.names { return names }
        do {
            let names = try Sys.listXattrs(directory.fd, name)
            learned.names = names
            return names
        } catch { throw error.at(path) }
    }

    public func xattr(_ attribute: String) throws(VirtFSError) -> [UInt8]? {
        try xattr(raw: Array(attribute.utf8))
    }

    public func setXattr(_ attribute: String, _ value: [UInt8]) throws(VirtFSError) {
        try setXattr(raw: Array(attribute.utf8), value)
    }

    /// The xattr named by raw bytes (a guest can set names that are not UTF-8).
    public func xattr(raw attribute: [UInt8]) throws(VirtFSError) -> [UInt8]? {
        do { return try Sys.getXattr(directory.fd, name, raw: attribute) } catch let e { throw e.at(path) }
    }

    public func setXattr(raw attribute: [UInt8], _ value: [UInt8]) throws(VirtFSError) {
        do { try Sys.setXattr(directory.fd, name, raw: attribute, value) } catch { throw error.at(path) }
        learned.added(attribute)
    }

    /// Removing an absent xattr is no error; when the names are listed, it is no call either.
    public func removeXattr(raw attribute: [UInt8]) throws(VirtFSError) {
        if let names = learned.names, !names.contains(attribute) { return }
        do { try Sys.removeXattr(directory.fd, name, raw: attribute) } catch { throw error.at(path) }
        learned.removed(attribute)
    }

    public func removeXattr(_ attribute: String) throws(VirtFSError) {
        try removeXattr(raw: Array(attribute.utf8))
    }

    /// The target of a real host symlink.
    public func readLink() throws(VirtFSError) -> [UInt8] {
        do { return try Sys.readLink(directory.fd, name) } catch let e { throw e.at(path) }
    }

    /// The data of a regular file, at most `limit` bytes (a mapped symlink's target): one read(2)
    /// when the file has not grown since the walk stat'ed it.
    public func readContent(limit: Int) throws(VirtFSError) -> (bytes: [UInt8], truncated: Bool) {
        let size = stat.fileType == .regular ? Int(clamping: stat.size) : nil
        do { return try Sys.readFile(directory.fd, name, limit: limit, regularSize: size) } catch let e { throw e.at(path) }
    }
}

/// The longest symlink target a guest can have (PATH_MAX including the NUL).
let symlinkTargetLimit = 4095
