import Glibc

/// The names in one directory (without `.` and `..`), as raw bytes with their d_type: the one
/// place the toolkit reads a directory. Reads through a duplicate descriptor from the start, so
/// other readers of the directory's descriptor are not disturbed; closed when released.
public final class DirectoryStream {
    private let stream: OpaquePointer
    /// The directory's path, for messages.
    public let path: [UInt8]

    /// fdopendir(3) of a duplicate of `dirfd`, rewound.
    public init(_ dirfd: Int32, path: [UInt8] = []) throws(VirtFSError) {
        let fd = try Sys.dup(dirfd)
        guard let stream = fdopendir(fd) else {
            let e = errno
            Sys.close(fd)
            throw VirtFSError.system("fdopendir", path: path, errno: e)
        }
        // A dup shares the file offset with every other reader of this directory.
        rewinddir(stream)
        self.stream = stream
        self.path = path
    }

    deinit { closedir(stream) }

    /// readdir(3): the next name and its d_type, nil at the end.
    public func next() throws(VirtFSError) -> (name: [UInt8], type: UInt8)? {
        while true {
            errno = 0
            guard let dirent = readdir(stream) else {
                if errno != 0 { throw VirtFSError.system("readdir", path: path, errno: errno) }
                return nil
            }
            let name = withUnsafeBytes(of: dirent.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            return (name, dirent.pointee.d_type)
        }
    }

    /// Every name that is left, in byte order (as `tar --sort=name` sorts); with
    /// `directoriesLast`, the subdirectories after the other entries, each part in byte order (the
    /// order libarchive's mtree writer lists a manifest in). `directoryFd` answers for a d_type
    /// the filesystem does not give.
    public func sortedNames(directoriesLast: Bool = false, directoryFd: Int32 = -1) throws(VirtFSError) -> [[UInt8]] {
        var all: [(name: [UInt8], last: Bool)] = []
        while let (name, type) = try next() {
            // Asked only for directoriesLast: a stat where d_type is unknown.
            all.append((name, directoriesLast && (type == UInt8(DT_DIR)
                || (type == UInt8(DT_UNKNOWN) && (try? Sys.stat(directoryFd, name))?.fileType == .directory))))
        }
        return all.sorted { $0.last != $1.last ? $1.last : $0.name.lexicographicallyPrecedes($1.name) }.map(\.name)
    }
}
