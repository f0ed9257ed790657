import Dispatch
import Glibc
import Synchronization

/// The directory a tool writes a converted copy into (`--output`): new or empty, and neither
/// inside the tree it copies nor holding it, either of which would copy without end. As with
/// `cp -r`, the two are compared by the device and inode of every ancestor, so no spelling of
/// either path (symlinks, `..`, bind mounts of the same directory) gets around it.
public enum OutputDirectory {
    /// Creates `path` (0700) when missing and opens it as an export root for the copy of `source`.
    public static func prepare(_ path: [UInt8], copying source: Walker.Location) throws(VirtFSError) -> Walker.Location {
        let sourceIdentity = try Sys.stat(fd: source.directory.fd).identity
        let sourceAncestors = try ancestors(of: source.directory.fd)
        let (parent, name) = try Sys.openOperandParent(path)
        defer { Sys.close(parent) }
        let existing = try? Sys.stat(parent, name)
        var outputAncestors = try ancestors(of: parent)
        if let existing { outputAncestors.insert(existing.identity, at: 0) }
        if outputAncestors.contains(sourceIdentity) {
            throw VirtFSError.refused("output", path: path,
                "cannot copy a directory into itself: the output is inside \(String(decoding: source.path, as: UTF8.self))")
        }
        if let existing, sourceAncestors.contains(existing.identity) {
            throw VirtFSError.refused("output", path: path,
                "cannot copy a directory into itself: \(String(decoding: source.path, as: UTF8.self)) is inside the output")
        }
        if existing == nil {
            do {
                try Sys.mkdir(parent, name, 0o700)
            } catch let error where error.errno == EEXIST {
                // Made meanwhile by someone else: checked as any existing directory below.
            } catch let error {
                throw error.at(path)
            }
        }
        let output = try Walker.exportRoot(path)
        // What was opened must be what was checked (or, just made, a child of the checked parent).
        let opened = try Sys.stat(fd: output.directory.fd).identity
        if let existing, existing.identity != opened {
            throw VirtFSError.refused("output", path: path, "the directory changed while it was being checked")
        }
        if sourceAncestors.contains(opened) || opened == sourceIdentity {
            throw VirtFSError.refused("output", path: path, "cannot copy a directory into itself")
        }
        guard try Sys.isEmptyDirectory(output.directory.fd, path: output.path) else {
            throw VirtFSError.refused("output", path: path, "not empty: --output writes a new copy")
        }
        return output
    }

    /// The identities of a directory and of every directory above it, up to the root.
    static func ancestors(of fd: Int32) throws(VirtFSError) -> [FileIdentity] {
        var identities: [FileIdentity] = []
        var current = try Sys.dup(fd)
        defer { Sys.close(current) }
        while true {
            let identity = try Sys.stat(fd: current).identity
            // The root is its own parent.
            if identities.contains(identity) { return identities }
            identities.append(identity)
            let up = try Sys.openDirectory(current, Array("..".utf8))
            Sys.close(current)
            current = up
        }
    }
}

/// The copies of the directories a parallel copy walks, by the path of the source directory as
/// the walk lists it: made by the thread that copies the directory, waited for by the threads
/// that copy what is in it. The walk starts a batch of entries only after the batches before
/// it, and a directory comes before what is in it, so the thread it waits for is never waiting
/// for it in turn.
final class DirectoryCopies: @unchecked Sendable {
    final class Slot: @unchecked Sendable {
        let ready = DispatchSemaphore(value: 0)
        var copy: DirectoryContext?
        var times: (atime: Timestamp, mtime: Timestamp)?
    }

    private let slots = Mutex<[[UInt8]: Slot]>([:])

    private func slot(_ path: [UInt8]) -> Slot {
        slots.withLock { slots in
            if slots[path] == nil { slots[path] = Slot() }
            return slots[path]!
        }
    }

    /// The directory at `path` is copied to `copy` (nil: it has none), which gets `times` when
    /// the walk leaves it.
    func made(_ path: [UInt8], _ copy: DirectoryContext?, times: (atime: Timestamp, mtime: Timestamp)?) {
        let slot = slot(path)
        (slot.copy, slot.times) = (copy, times)
        slot.ready.signal()
    }

    /// The copy of the directory at `path`, once it is made; nil when it has none.
    func copy(of path: [UInt8]) -> DirectoryContext? {
        let slot = slot(path)
        slot.ready.wait()
        // (For the next thread that waits for it.)
        slot.ready.signal()
        return slot.copy
    }

    /// Forgets the directory at `path`, which the walk has left, and returns its copy and times.
    func left(_ path: [UInt8]) -> (DirectoryContext?, (atime: Timestamp, mtime: Timestamp)?)? {
        slots.withLock { $0.removeValue(forKey: path) }.map { ($0.copy, $0.times) }
    }
}
