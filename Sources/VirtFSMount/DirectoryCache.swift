import CVirtFS
import Glibc
import Synchronization
import VirtFSCore

/// The tree's directories a mount has recently walked to, kept open by mount path, so that a
/// request resolves its path from the nearest open directory rather than from the export root.
///
/// A kept descriptor is used only while the kernel still places its directory at that very
/// path below the export root (its /proc/self/fd link, which names real directories only,
/// never a symlink): a directory the host renamed, moved or replaced by a symlink since is
/// reopened from its parent without following anything, as a walk from the root would. So
/// resolving through the cache is exactly as safe as walking: the same check-then-use window
/// between learning a directory and acting in it, no more.
///
/// At most `capacity` descriptors are kept; the least recently used goes first.
final class DirectoryCache: Sendable {
    static let capacity = 256

    private struct Slot {
        var fd: Int32
        var lastUse: UInt64
    }
    private struct State {
        var slots: [[UInt8]: Slot] = [:]
        var clock: UInt64 = 0
    }
    private let state = Mutex(State())
    /// /proc/self/fd, open, whose links tell where each kept directory is now; -1 without /proc
    /// (then nothing is kept).
    private let descriptors: Int32
    /// Where the kernel placed the export root when the mount started, with a trailing `/`.
    private let rootPrefix: [UInt8]

    init(rootFD: Int32) {
        descriptors = Glibc.open("/proc/self/fd", O_RDONLY | VIRTFS_O_DIRECTORY | VIRTFS_O_CLOEXEC)
        var prefix = (descriptors >= 0 ? try? Sys.readLink(descriptors, Array(String(rootFD).utf8)) : nil) ?? []
        if prefix.last != UInt8(ascii: "/") { prefix.append(UInt8(ascii: "/")) }
        rootPrefix = prefix
    }

    deinit {
        state.withLock { state in for slot in state.slots.values { Sys.close(slot.fd) } }
        if descriptors >= 0 { Sys.close(descriptors) }
    }

    /// A descriptor of its own for the directory at `path` (relative to the export root, not
    /// empty), when one is kept and the directory is still there; nil otherwise.
    func open(_ path: [UInt8]) -> Int32? {
        guard descriptors >= 0 else { return nil }
        let kept: Int32? = state.withLock { state in
            guard let slot = state.slots[path] else { return nil }
            state.clock += 1
            state.slots[path]!.lastUse = state.clock
            return try? Sys.dup(slot.fd)
        }
        guard let fd = kept else { return nil }
        if let at = try? Sys.readLink(descriptors, Array(String(fd).utf8)), at == rootPrefix + path {
            return fd
        }
        Sys.close(fd)
        forget(path)
        return nil
    }

    /// Keeps a duplicate of `fd`, the directory just opened at `path`.
    func keep(_ fd: Int32, at path: [UInt8]) {
        guard descriptors >= 0, let copy = try? Sys.dup(fd) else { return }
        state.withLock { state in
            state.clock += 1
            if let old = state.slots.updateValue(Slot(fd: copy, lastUse: state.clock), forKey: path) {
                Sys.close(old.fd)
            }
            if state.slots.count > Self.capacity,
               let oldest = state.slots.min(by: { $0.value.lastUse < $1.value.lastUse }) {
                Sys.close(oldest.value.fd)
                state.slots[oldest.key] = nil
            }
        }
    }

    /// Drops the directory at `path` and everything kept below it (after a rename or rmdir
    /// there), so that no descriptor of a removed directory stays open.
    func forget(_ path: [UInt8]) {
        state.withLock { state in
            for key in state.slots.keys where Self.isAtOrBelow(key, path) {
                Sys.close(state.slots[key]!.fd)
                state.slots[key] = nil
            }
        }
    }

    static func isAtOrBelow(_ key: [UInt8], _ path: [UInt8]) -> Bool {
        key == path || (key.count > path.count && key.starts(with: path) && key[path.count] == UInt8(ascii: "/"))
    }

    /// How many descriptors are kept (for tests of the bound).
    var count: Int { state.withLock { $0.slots.count } }
}
