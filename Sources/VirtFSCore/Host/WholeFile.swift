import Glibc

extension Sys {
    /// Gives `name` in `dirfd` a new file that `fill` writes before it has the name, so the name
    /// shows the old file or the whole new one, never a part: unnamed (O_TMPFILE) and linked in
    /// where the filesystem allows it and the name is free (one change to the directory, where
    /// a temporary name costs three), else under `temporary` and renamed over. `beforeRename`
    /// wants the file named `temporary` first; the temporary goes again when a step fails.
    static func writeWhole(_ dirfd: Int32, _ name: [UInt8], via temporary: [UInt8], fill: (Int32) throws(VirtFSError) -> Void,
                           beforeRename: (() throws(VirtFSError) -> Void)? = nil) throws(VirtFSError) {
        if beforeRename == nil, let fd = try? openUnnamed(in: dirfd, mode: 0o600) {
            defer { close(fd) }
            try fill(fd)
            do {
                return try linkOpenFile(fd, dirfd, name)
            } catch where error.errno == EEXIST {}
            try? unlink(dirfd, temporary)
            do {
                try linkOpenFile(fd, dirfd, temporary)
                return try rename(dirfd, temporary, dirfd, name)
            } catch {
                try? unlink(dirfd, temporary)
                throw error
            }
        }
        // What anyone left under the temporary name goes: O_EXCL never writes through a planted link.
        try? unlink(dirfd, temporary)
        let fd = try openAt(dirfd, temporary, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        do {
            do {
                defer { close(fd) }
                try fill(fd)
            }
            try beforeRename?()
            try rename(dirfd, temporary, dirfd, name)
        } catch {
            try? unlink(dirfd, temporary)
            throw error
        }
    }
}
