import Glibc

/// A faithful host copy of a layer for `--output`: every host object as it is (type, data,
/// device numbers, owner, mode, times, hard links) with *all* its xattrs (`trusted.*`,
/// `security.*`, `user.virtfs.*`, mapped-file metadata directories too), so the copy is the same
/// layer in the same model; the conversion then runs on the copy. File handles in the copy
/// (`overlay.origin`, `upper`, `uuid`) point at the old filesystem: the converter reports them.
public enum OverlayCopy {
    /// Copies the layer into `path`, a new or empty directory, and returns it; refuses a
    /// directory that already holds something, or one inside the layer or holding it. With
    /// `owner` (a mapped model, where the host owner is the user QEMU runs as, not the guest's),
    /// every host object of the copy, its root too, goes to that user.
    public static func copy(_ root: Walker.Location, intoNew path: [UInt8], owner: (uid: UInt32, gid: UInt32)? = nil,
                            failure: (VirtFSError) -> Void) throws(VirtFSError) -> Walker.Location {
        let out = try OutputDirectory.prepare(path, copying: root)
        copy(root, into: out, owner: owner, failure: failure)
        // Opened anew: what the copy made (metadata directories) is not in the old context.
        return try Walker.exportRoot(path)
    }

    public static func copy(_ root: Walker.Location, into output: Walker.Location, owner: (uid: UInt32, gid: UInt32)? = nil,
                            failure: (VirtFSError) -> Void) {
        var links: [FileIdentity: (DirectoryContext, [UInt8])] = [:]
        var walkOptions = Walker.Options(recursive: true)
        walkOptions.hiddenStorage = []
        // Per directory: its copy, and the times to give it when done.
        typealias Made = (directory: DirectoryContext, stat: HostStat)
        Walker(options: walkOptions).walk(root, visit: { (entry, parent: inout Made?) -> Made? in
            do throws(VirtFSError) {
                let st = entry.stat
                if entry.isExportRoot {
                    try copyAttributes(from: entry, to: output.directory.fd, [UInt8(ascii: ".")], path: output.path, owner: owner)
                    return (output.directory, st)
                }
                guard let parent = parent?.directory else {
                    throw VirtFSError.refused("copy", path: entry.path, "parent directory was not copied")
                }
                let name = entry.name
                let outPath = Bytes.join(parent.path, name)
                if st.fileType != .directory, st.nlink > 1, let (firstDir, firstName) = links[st.identity] {
                    try Sys.link(firstDir.fd, firstName, parent.fd, name)
                    return nil
                }
                switch st.fileType {
                case .directory?:
                    try Sys.mkdir(parent.fd, name, 0o700)
                case .regular?:
                    let fd = try Sys.openAt(parent.fd, name, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
                    defer { Sys.close(fd) }
                    try Content.copy(of: entry).write(to: fd, name: entry.path)
                case .symlink?:
                    try Sys.symlink(try entry.readLink(), parent.fd, name)
                case let type?:
                    try Sys.mknod(parent.fd, name, mode_t(type.rawValue | 0o600), st.rdev.glibc)
                case nil:
                    throw VirtFSError.corrupt("statx", path: entry.path, "unknown file type")
                }
                try copyAttributes(from: entry, to: parent.fd, name, path: outPath, owner: owner)
                if st.fileType == .directory {
                    return (try parent.child(name, path: outPath), st)
                }
                try Sys.setTimes(parent.fd, name, atime: st.atime, mtime: st.mtime)
                if st.nlink > 1 { links[st.identity] = (parent, name) }
            } catch {
                failure(error.at(entry.path))
            }
            return nil
        }, leave: { _, made in
            try? Sys.setTimes(made.directory.fd, [UInt8(ascii: ".")], atime: made.stat.atime, mtime: made.stat.mtime)
        }, failure: failure)
    }

    /// Owner, mode, then every xattr (after chown, which would clear security.capability).
    static func copyAttributes(from entry: HostEntry, to dirfd: Int32, _ name: [UInt8], path: [UInt8],
                               owner: (uid: UInt32, gid: UInt32)?) throws(VirtFSError) {
        let st = entry.stat
        do {
            try Sys.chown(dirfd, name, owner?.uid ?? st.uid, owner?.gid ?? st.gid)
            if st.fileType != .symlink { try Sys.chmod(dirfd, name, mode_t(st.permissions)) }
            for attribute in try entry.xattrNames() {
                guard let value = try entry.xattr(raw: attribute) else { continue }
                try Sys.setXattr(dirfd, name, raw: attribute, value)
            }
        } catch let error {
            throw error.at(path)
        }
    }
}
