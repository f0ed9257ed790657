import CVirtFS
import Glibc

/// renameat2(2)'s choice of what happens to an existing target.
public enum RenameMode: Sendable, Equatable {
    /// rename(2): an existing target is replaced.
    case replace
    /// RENAME_NOREPLACE: an existing target fails the rename with EEXIST.
    case noReplace
    /// RENAME_EXCHANGE: source and target trade places; both must exist.
    case exchange
}

extension Sys {
    /// renameat2(2); `.replace` is renameat(2). Never follows a symlink (rename never does).
    public static func rename(_ olddirfd: Int32, _ oldname: [UInt8], _ newdirfd: Int32, _ newname: [UInt8], mode: RenameMode) throws(VirtFSError) {
        let flags: UInt32
        switch mode {
        case .replace: return try rename(olddirfd, oldname, newdirfd, newname)
        case .noReplace: flags = VIRTFS_RENAME_NOREPLACE
        case .exchange: flags = VIRTFS_RENAME_EXCHANGE
        }
        _ = try retry("renameat2", newname) {
            withCString(oldname) { o in withCString(newname) { virtfs_renameat2(olddirfd, o, newdirfd, $0, flags) } }
        }
    }

    /// utimensat(2) with AT_SYMLINK_NOFOLLOW and the caller's pair as is (UTIME_NOW and
    /// UTIME_OMIT included; nil is "now" for both).
    public static func setTimes(_ dirfd: Int32, _ name: [UInt8], _ times: UnsafePointer<timespec>?) throws(VirtFSError) {
        _ = try retry("utimensat", name) { withCString(name) { utimensat(dirfd, $0, times, VIRTFS_AT_SYMLINK_NOFOLLOW) } }
    }
}

/// The models whose guest metadata is the host inode or lives in it (passthrough, none,
/// mapped-xattr): the metadata goes wherever the inode goes, so QEMU's unlinkat and renameat
/// are the system calls themselves, and RENAME_EXCHANGE is atomic.
extension ModelCodec {
    public func remove(_ entry: HostEntry) throws(VirtFSError) {
        do {
            try Sys.unlink(entry.directory.fd, entry.name, directory: entry.stat.fileType == .directory)
        } catch let error {
            throw error.at(entry.path)
        }
    }

    public func rename(_ entry: HostEntry, to newName: [UInt8], in newDirectory: DirectoryContext, mode: RenameMode,
                       placement: HostPlacement) throws(VirtFSError) {
        do {
            try Sys.rename(entry.directory.fd, entry.name, newDirectory.fd, newName, mode: mode)
        } catch let error {
            throw error.at(Bytes.join(newDirectory.path, newName))
        }
    }
}

/// QEMU's `local_unlinkat` and `local_renameat` for mapped-file: the metadata file
/// `.virtfs_metadata/NAME` follows the data name, and a directory's own `.virtfs_metadata/`
/// goes with it. The end state is QEMU's; the order of the steps is not: QEMU moves or removes
/// the data and the metadata one after the other in an order that a crash between the two
/// leaves a guest name without its metadata (the guest then sees the host's owner and mode).
/// Here a name never exists without its metadata: metadata is put in place before the data name
/// appears and removed after it is gone, so a crash leaves at most an orphaned metadata file,
/// which the guest never sees and virtfs-fsck removes. (A name renamed over always has
/// metadata, but for a moment the replaced file's: its data goes first.)
extension MappedFileCodec {
    /// Whether the directory `name` in `directory` is empty as the guest sees it (nothing but
    /// its `.virtfs_metadata`); when it is, that metadata directory is removed, as QEMU removes
    /// it, so that the host directory can go. A metadata directory that still holds files
    /// (orphans: the metadata of names that are gone) fails with ENOTEMPTY, as it does in QEMU.
    func emptyForRemoval(_ name: [UInt8], in directory: DirectoryContext, path: [UInt8]) throws(VirtFSError) {
        let child = try directory.child(name, path: path)
        try Sys.forEachName(in: child.fd, path: path) { name, _ throws(VirtFSError) in
            guard name == MappedFileNames.metadataDirectory else { throw .system("unlinkat", path: path, errno: ENOTEMPTY) }
            return true
        }
        do {
            try Sys.unlink(child.fd, MappedFileNames.metadataDirectory, directory: true)
        } catch {
            guard error.errno == ENOENT else { throw error }
        }
    }

    public func remove(_ entry: HostEntry) throws(VirtFSError) {
        if MappedFileNames.isReserved(entry.name) || entry.isExportRoot { throw .system("unlinkat", path: entry.path, errno: EINVAL) }
        let isDirectory = entry.stat.fileType == .directory
        do {
            if isDirectory { try emptyForRemoval(entry.name, in: entry.directory, path: entry.path) }
            try Sys.unlink(entry.directory.fd, entry.name, directory: isDirectory)
        } catch let error {
            throw error.at(entry.path)
        }
        try removeMetadata(of: entry)
    }

    /// The metadata file of `name` in `directory`'s `.virtfs_metadata`, when there is one.
    func metadataFile(_ name: [UInt8], in directory: DirectoryContext) throws(VirtFSError) -> Int32? {
        guard let mfd = try directory.metadataDirectory() else { return nil }
        return (try? Sys.stat(mfd, name)) != nil ? mfd : nil
    }

    public func rename(_ entry: HostEntry, to newName: [UInt8], in newDirectory: DirectoryContext, mode: RenameMode,
                       placement: HostPlacement) throws(VirtFSError) {
        let newPath = Bytes.join(newDirectory.path, newName)
        if MappedFileNames.isReserved(entry.name) || MappedFileNames.isReserved(newName) || entry.isExportRoot {
            throw .system("renameat", path: newPath, errno: EINVAL)
        }
        // Data and metadata are two names in two directories: no single system call exchanges
        // both, and a crash between two would give each name the other's owner and mode.
        if mode == .exchange { throw .system("renameat2", path: newPath, errno: EINVAL) }
        do throws(VirtFSError) {
            let target = try? Sys.stat(newDirectory.fd, newName)
            if let target {
                if mode == .noReplace { throw .system("renameat2", path: newPath, errno: EEXIST) }
                // Two names of one inode: rename(2) does nothing, and so does QEMU.
                if target.identity == entry.stat.identity { return }
                if target.fileType == .directory && entry.stat.fileType == .directory {
                    // The host directory still holds its .virtfs_metadata, which the guest does not
                    // see: QEMU's rename fails there with ENOTEMPTY on a directory the guest sees
                    // empty. Its metadata directory goes first, as rmdir would remove it.
                    try emptyForRemoval(newName, in: newDirectory, path: newPath)
                }
            }
            let temporary = TemporaryName.named("rename")
            var moved: (from: Int32, to: Int32)?
            if let source = try metadataFile(entry.name, in: entry.directory) {
                let destination = try newDirectory.makeMetadataDirectory(placement: placement)
                try? Sys.unlink(destination, temporary)
                try Sys.link(source, entry.name, destination, temporary)
                moved = (source, destination)
            }
            // A new name gets the entry's metadata before it appears, in place of any orphan of
            // that name (which describes nothing); an entry without metadata has the orphan
            // removed first. A name renamed over keeps the replaced file's metadata until the
            // entry's takes its place: for that moment it has the new data, the old owner and mode.
            var placed = false
            if target == nil {
                if let moved {
                    do {
                        try Sys.rename(moved.to, temporary, moved.to, newName)
                    } catch {
                        try? Sys.unlink(moved.to, temporary)
                        throw error
                    }
                    placed = true
                } else if let orphan = try metadataFile(newName, in: newDirectory) {
                    try Sys.unlink(orphan, newName)
                }
            }
            do {
                try Sys.rename(entry.directory.fd, entry.name, newDirectory.fd, newName, mode: mode)
            } catch {
                if let moved { try? Sys.unlink(moved.to, placed ? newName : temporary) }
                throw error
            }
            if let moved {
                if !placed { try Sys.rename(moved.to, temporary, moved.to, newName) }
                try Sys.unlink(moved.from, entry.name)
            } else if target != nil, let stale = try metadataFile(newName, in: newDirectory) {
                // The replaced target's metadata would otherwise describe the entry renamed over
                // it (QEMU leaves it there): an entry without metadata keeps having none.
                try Sys.unlink(stale, newName)
            }
        } catch let error {
            throw error.at(newPath)
        }
    }
}

extension LinkCensus {
    /// The census of the tree whose export root is open as `directory`: a writer that only
    /// holds the root's descriptor (a mount, whose working directory is not the user's).
    public convenience init(exportRoot directory: DirectoryContext) {
        self.init(root: Walker.Location(directory: directory, name: [UInt8(ascii: ".")], path: directory.path, isExportRoot: true))
    }
}
