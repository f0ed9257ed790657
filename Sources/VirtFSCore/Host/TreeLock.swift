import CVirtFS
import Glibc

/// The lock every writing tool holds on the tree it changes, so that two writers never
/// interleave their steps (two in-place conversions, or a chown during a conversion, would
/// each leave the other's half-made state behind).
///
/// It is flock(2) on the directories themselves, not a lock file: nothing is written into a
/// tree a guest owns, and the kernel drops the lock when its holder dies (kill -9 included),
/// so a stale lock never blocks the re-run that finishes an interrupted conversion. Locks are
/// hierarchical: the writer takes the directory it changes exclusively and every directory
/// above it shared, so a writer in a subtree and a writer of an enclosing tree exclude each
/// other, while writers of disjoint trees do not. Nothing waits: a second writer is refused.
public final class TreeLock {
    private var descriptors: [Int32] = []

    /// Locks the directory `location` changes: the export root itself, or the directory holding
    /// a single operand (its parent: renames and metadata files live there).
    public convenience init(_ location: Walker.Location) throws(VirtFSError) {
        try self.init(directory: location.directory)
    }

    public init(directory: DirectoryContext) throws(VirtFSError) {
        let shown = directory.path.isEmpty ? [UInt8(ascii: ".")] : directory.path
        do {
            let own = try Sys.openDirectory(directory.fd, [UInt8(ascii: ".")])
            try lock(own, exclusive: true, path: shown)
            // Shared on every directory above, up to the filesystem root ("/.." is "/"). The
            // climb goes through O_PATH descriptors, so that a directory the user may enter but
            // not list is passed (unlocked) rather than ending the climb.
            var here = try Sys.openAt(own, [UInt8(ascii: ".")], VIRTFS_O_PATH | VIRTFS_O_DIRECTORY)
            defer { Sys.close(here) }
            var previous = try Sys.stat(fd: here).identity
            while true {
                let parent = try Sys.openAt(here, Array("..".utf8), VIRTFS_O_PATH | VIRTFS_O_DIRECTORY)
                Sys.close(here)
                here = parent
                let identity = try Sys.stat(fd: parent).identity
                if identity == previous { break }
                previous = identity
                if let readable = try? Sys.openDirectory(parent, [UInt8(ascii: ".")]) {
                    try lock(readable, exclusive: false, path: shown)
                }
            }
        } catch {
            release()
            throw error
        }
    }

    private func lock(_ fd: Int32, exclusive: Bool, path: [UInt8]) throws(VirtFSError) {
        descriptors.append(fd)
        guard try Sys.tryLock(fd, exclusive: exclusive, path: path) else {
            throw VirtFSError.refused("lock", path: path,
                "another virtfs-tools command is changing this tree\(exclusive ? "" : " or a tree around it"); run this one when it has finished")
        }
    }

    /// Drops the lock now (it is dropped at exit in any case).
    public func release() {
        for fd in descriptors { Sys.close(fd) }
        descriptors = []
    }

    deinit { release() }
}
