import Glibc

/// The one way the toolkit visits a tree: directory fds and *at() calls only, never following a
/// symlink, names as raw bytes, pre-order, streaming (a directory stream per level of the
/// current path, so memory does not grow with the number of entries).
public struct Walker {
    public struct Options: Sendable {
        /// Descend into directories below the operand.
        public var recursive = false
        /// Do not descend into directories on another filesystem than the operand's.
        public var oneFileSystem = false
        /// Hide `.virtfs_metadata` and `.virtfs_metadata_root`, as QEMU does in mapped-file.
        public var hideMappedFileMetadata = false
        /// Report `.virtfs_metadata/NAME` files whose NAME does not exist (mapped-file).
        public var reportOrphanedMetadata = false
        /// Visit each directory's entries in byte order of their names, as `tar --sort=name`
        /// does, so that what is written from a walk is reproducible. Holds one directory's
        /// names per level of the current path.
        public var sorted = false
        /// Sorted, with each directory's subdirectories after its other entries: the order
        /// libarchive's mtree writer lists a manifest in, so that it can be written as it is walked.
        public var directoriesLast = false

        public init(recursive: Bool = false, oneFileSystem: Bool = false, model: SecurityModel? = nil) {
            self.recursive = recursive
            self.oneFileSystem = oneFileSystem
            hideMappedFileMetadata = model == .mappedFile
            reportOrphanedMetadata = model == .mappedFile && recursive
        }
    }

    public var options: Options

    public init(options: Options) {
        self.options = options
    }

    /// Where an operand is: an open parent directory and a name in it (`.` for an export root,
    /// whose "parent" is the root itself).
    public struct Location {
        public let directory: DirectoryContext
        public let name: [UInt8]
        public let path: [UInt8]
        public let isExportRoot: Bool

        public func entry() throws -> HostEntry {
            try HostEntry(directory: directory, name: name, path: path, isExportRoot: isExportRoot)
        }
    }

    /// An export root named by the user.
    public static func exportRoot(_ path: [UInt8]) throws -> Location {
        let root = try DirectoryContext.open(path: path)
        return Location(directory: root, name: [UInt8(ascii: ".")], path: path, isExportRoot: true)
    }

    /// A path the user named, as an entry of whatever tree it is in: only its last component is
    /// protected from symlinks (like stat(1)).
    public static func operand(_ path: [UInt8]) throws -> Location {
        let (fd, name) = try Sys.openOperandParent(path)
        // Messages name the parent as the user did ("" for a bare name).
        let parentPath = path.contains(UInt8(ascii: "/")) ? Bytes.splitParent(path).parent : []
        return Location(directory: DirectoryContext(fd: fd, path: parentPath), name: name, path: path, isExportRoot: false)
    }

    /// A path below an export root, resolved from the root one component at a time without
    /// following symlinks or `..`, so nothing outside the tree is reached.
    public static func inside(_ root: Location, relative components: [[UInt8]], path: [UInt8]) throws -> Location {
        if components.isEmpty {
            return Location(directory: root.directory, name: root.name, path: path, isExportRoot: true)
        }
        var directory = root.directory
        var walked = root.directory.path
        for component in components.dropLast() {
            if component == Array("..".utf8) {
                throw VirtFSError.refused("resolve", path: path, "'..' would leave the export root")
            }
            walked = Bytes.join(walked, component)
            do {
                directory = try directory.child(component, path: walked)
            } catch let error as VirtFSError {
                throw error.at(path)
            }
        }
        let last = components.last!
        if last == Array("..".utf8) {
            throw VirtFSError.refused("resolve", path: path, "'..' would leave the export root")
        }
        return Location(directory: directory, name: last, path: path, isExportRoot: false)
    }

    /// Visits the operand and, when recursive, everything below it. Errors that stop one entry
    /// (or one directory) go to `failure`; the walk goes on.
    public func walk(_ start: Location, visit: (HostEntry) -> Void, failure: (VirtFSError) -> Void) {
        walk(start, visit: visit, leave: { _ in }, failure: failure)
    }

    /// As `walk`, also calling `leave` with each directory (the operand's too) once everything
    /// below it has been visited.
    public func walk(_ start: Location, visit: (HostEntry) -> Void, leave: (DirectoryContext) -> Void,
                     failure: (VirtFSError) -> Void) {
        Sys.raiseOpenFileLimit()
        let entry: HostEntry
        do {
            entry = try start.entry()
        } catch let error as VirtFSError {
            return failure(error.at(start.path))
        } catch {
            return
        }
        visit(entry)
        guard options.recursive, entry.stat.fileType == .directory else { return }
        let top: DirectoryContext
        do {
            top = start.isExportRoot ? start.directory : try start.directory.child(start.name, path: start.path)
        } catch let error as VirtFSError {
            return failure(error.at(start.path))
        } catch {
            return
        }
        walkBelow(top, device: entry.stat.device, visit: visit, leave: leave, failure: failure)
    }

    /// One open directory stream per level of the current path (or, sorted, its names).
    private final class Frame {
        let directory: DirectoryContext
        let stream: OpaquePointer
        var names: [[UInt8]]?
        var next = 0

        init(directory: DirectoryContext, stream: OpaquePointer, sorted: Bool, directoriesLast: Bool = false) throws {
            self.directory = directory
            self.stream = stream
            guard sorted else { return }
            var all: [(name: [UInt8], last: Bool)] = []
            while true {
                errno = 0
                guard let dirent = readdir(stream) else {
                    if errno != 0 { throw VirtFSError.system("readdir", path: directory.path, errno: errno) }
                    break
                }
                let name = withUnsafeBytes(of: dirent.pointee.d_name) { raw in Array(raw.prefix(while: { $0 != 0 })) }
                var last = false
                if directoriesLast {
                    let type = dirent.pointee.d_type
                    last = type == UInt8(DT_DIR) || (type == UInt8(DT_UNKNOWN) && (try? Sys.stat(directory.fd, name))?.fileType == .directory)
                }
                all.append((name, last))
            }
            names = all.sorted { $0.last != $1.last ? $1.last : $0.name.lexicographicallyPrecedes($1.name) }.map(\.name)
        }

        /// The next name, nil at the end; throws when reading the directory fails.
        func nextName() throws -> [UInt8]? {
            if let names {
                defer { next += 1 }
                return next < names.count ? names[next] : nil
            }
            errno = 0
            guard let dirent = readdir(stream) else {
                if errno != 0 { throw VirtFSError.system("readdir", path: directory.path, errno: errno) }
                return nil
            }
            return withUnsafeBytes(of: dirent.pointee.d_name) { raw in Array(raw.prefix(while: { $0 != 0 })) }
        }
    }

    private func openStream(_ directory: DirectoryContext) throws -> OpaquePointer {
        let fd = try Sys.dup(directory.fd)
        guard let stream = fdopendir(fd) else {
            let e = errno
            Sys.close(fd)
            throw VirtFSError.system("fdopendir", path: directory.path, errno: e)
        }
        // A dup shares the file offset with every other reader of this directory.
        rewinddir(stream)
        return stream
    }

    private func openFrame(for directory: DirectoryContext) throws -> Frame {
        let stream = try openStream(directory)
        do {
            return try Frame(directory: directory, stream: stream, sorted: options.sorted || options.directoriesLast,
                             directoriesLast: options.directoriesLast)
        } catch {
            closedir(stream)
            throw error
        }
    }

    private func walkBelow(_ top: DirectoryContext, device: DeviceNumber, visit: (HostEntry) -> Void,
                           leave: (DirectoryContext) -> Void, failure: (VirtFSError) -> Void) {
        var stack: [Frame] = []
        do {
            stack.append(try openFrame(for: top))
        } catch let error as VirtFSError {
            return failure(error)
        } catch {
            return
        }
        while let frame = stack.last {
            let next: [UInt8]?
            do {
                next = try frame.nextName()
            } catch let error as VirtFSError {
                failure(error)
                next = nil
            } catch {
                next = nil
            }
            guard let name = next else {
                closedir(frame.stream)
                if options.reportOrphanedMetadata {
                    reportOrphans(in: frame.directory, failure: failure)
                }
                leave(frame.directory)
                stack.removeLast()
                continue
            }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            if options.hideMappedFileMetadata && MappedFileNames.isReserved(name) { continue }
            let path = Bytes.join(frame.directory.path, name)
            let entry: HostEntry
            do {
                entry = try HostEntry(directory: frame.directory, name: name, path: path)
            } catch let error as VirtFSError {
                failure(error.at(path))
                continue
            } catch {
                continue
            }
            visit(entry)
            guard entry.stat.fileType == .directory else { continue }
            if options.oneFileSystem && entry.stat.device != device { continue }
            do {
                let child = try frame.directory.child(name, path: path)
                // The directory we opened must be the one we stat'ed, not a swapped-in other.
                let opened = try Sys.stat(fd: child.fd)
                guard opened.identity == entry.stat.identity else {
                    failure(.refused("openat", path: path, "directory changed while walking; skipped"))
                    continue
                }
                stack.append(try openFrame(for: child))
            } catch let error as VirtFSError {
                failure(error.at(path))
            } catch {}
        }
    }

    /// mapped-file: a `.virtfs_metadata/NAME` whose NAME is gone is stale metadata; it also keeps
    /// the guest from removing the directory.
    private func reportOrphans(in directory: DirectoryContext, failure: (VirtFSError) -> Void) {
        let metadataPath = Bytes.join(directory.path, MappedFileNames.metadataDirectory)
        let mfd: Int32?
        do {
            mfd = try directory.metadataDirectory()
        } catch let error as VirtFSError {
            return failure(error)
        } catch {
            return
        }
        guard let mfd else { return }
        do {
            try Sys.forEachName(in: mfd, path: metadataPath) { name, _ in
                if MappedFileNames.isReserved(name) {
                    failure(VirtFSError.corrupt("lookup", path: Bytes.join(metadataPath, name), "metadata for a reserved name, which the guest can never use").checked(.reservedMetadata))
                    return true
                }
                do {
                    _ = try Sys.stat(directory.fd, name)
                } catch let error as VirtFSError where error.errno == ENOENT {
                    failure(VirtFSError.corrupt("lookup", path: Bytes.join(metadataPath, name), "metadata for a missing entry (stale; blocks the guest's rmdir)").checked(.orphanMetadata))
                } catch let error as VirtFSError {
                    failure(error.at(Bytes.join(metadataPath, name)))
                }
                return true
            }
        } catch let error as VirtFSError {
            failure(error)
        } catch {}
    }
}
