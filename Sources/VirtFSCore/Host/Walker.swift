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
        /// The models whose own storage (names their codec `holdsMetadata`) the walk hides, as
        /// QEMU hides it from the guest.
        public var hiddenStorage: [any ModelCodec] = []
        /// Each directory, as it is left, is audited by the codecs of `hiddenStorage` (metadata
        /// of missing or reserved names).
        public var auditStorage = false
        /// Visit each directory's entries in byte order of their names, as `tar --sort=name`
        /// does, so that what is written from a walk is reproducible. Holds one directory's
        /// names per level of the current path.
        public var sorted = false
        /// Sorted, with each directory's subdirectories after its other entries: the order
        /// libarchive's mtree writer lists a manifest in, so that it can be written as it is walked.
        public var directoriesLast = false
        /// Names starting with these bytes are not walked: what a writer on another thread
        /// makes and renames away in a directory being listed.
        public var inFlight: [UInt8]?

        public init(recursive: Bool = false, oneFileSystem: Bool = false, model: SecurityModel? = nil) {
            self.recursive = recursive
            self.oneFileSystem = oneFileSystem
            hiddenStorage = model.map { [$0.codec] } ?? []
            auditStorage = recursive
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

        public func entry() throws(VirtFSError) -> HostEntry {
            try HostEntry(directory: directory, name: name, path: path, isExportRoot: isExportRoot)
        }
    }

    /// An export root named by the user.
    public static func exportRoot(_ path: [UInt8]) throws(VirtFSError) -> Location {
        let root = try DirectoryContext.open(path: path)
        return Location(directory: root, name: [UInt8(ascii: ".")], path: path, isExportRoot: true)
    }

    /// A path the user named, as an entry of whatever tree it is in: only its last component is
    /// protected from symlinks (like stat(1)).
    public static func operand(_ path: [UInt8]) throws(VirtFSError) -> Location {
        let (fd, name) = try Sys.openOperandParent(path)
        // Messages name the parent as the user did ("" for a bare name).
        let parentPath = path.contains(UInt8(ascii: "/")) ? Bytes.splitParent(path).parent : []
        return Location(directory: DirectoryContext(fd: fd, path: parentPath), name: name, path: path, isExportRoot: false)
    }

    /// A path below an export root, resolved from the root one component at a time without
    /// following symlinks or `..`, so nothing outside the tree is reached.
    public static func inside(_ root: Location, relative components: [[UInt8]], path: [UInt8]) throws(VirtFSError) -> Location {
        guard let last = components.last else {
            return Location(directory: root.directory, name: root.name, path: path, isExportRoot: true)
        }
        if components.contains(Array("..".utf8)) {
            throw VirtFSError.refused("resolve", path: path, "'..' would leave the export root")
        }
        var directory = root.directory
        var walked = root.directory.path
        for component in components.dropLast() {
            walked = Bytes.join(walked, component)
            do {
                directory = try directory.child(component, path: walked)
            } catch let error {
                throw error.at(path)
            }
        }
        return Location(directory: directory, name: last, path: path, isExportRoot: false)
    }

    /// Visits the operand and, when recursive, everything below it. Errors that stop one entry
    /// (or one directory) go to `failure`; the walk goes on.
    public func walk(_ start: Location, visit: (HostEntry) -> Void, failure: (VirtFSError) -> Void) {
        walk(start, visit: { (entry, _: inout Void?) -> Void? in visit(entry) }, leave: { _, _ in }, failure: failure)
    }

    /// As `walk`, with what the consumer keeps per directory (`State`) held by the walk, so no
    /// consumer keeps a stack of its own beside it. `visit` gets each entry with the state of the
    /// directory the entry is in (nil for the operand, and in a directory whose visit returned
    /// nil) and returns, for a directory, the state its own entries will see; once everything
    /// below that directory was visited, `leave` gets the directory and its final state. Only a
    /// directory the walk descends into is left, so `leave` sees exactly what `visit` made.
    public func walk<State>(_ start: Location, visit: (HostEntry, inout State?) -> State?,
                            leave: (DirectoryContext, State) -> Void, failure: (VirtFSError) -> Void) {
        guard let (top, state, device) = enter(start, visit: visit, failure: failure) else { return }
        traverse(top, state: state, step: { frame, name, _, path in
            let entry: HostEntry
            do throws(VirtFSError) {
                entry = try HostEntry(directory: frame.directory, name: name, path: path)
            } catch {
                failure(error.at(path))
                return nil
            }
            let state = visit(entry, &frame.state)
            guard entry.stat.fileType == .directory else { return nil }
            if options.oneFileSystem && entry.stat.device != device { return nil }
            do throws(VirtFSError) {
                let child = try frame.directory.child(name, path: path)
                // The directory we opened must be the one we stat'ed, not a swapped-in other.
                guard try Sys.stat(fd: child.fd).identity == entry.stat.identity else {
                    throw .refused("openat", path: path, "directory changed while walking; skipped")
                }
                return (child, state)
            } catch {
                failure(error.at(path))
                return nil
            }
        }, left: { frame in
            audit(frame.directory, failure: failure)
            if let state = frame.state { leave(frame.directory, state) }
        }, failure: failure)
    }

    /// Visits the operand; returns, when the walk goes below it, its directory, the state its
    /// visit made and its device.
    func enter<State>(_ start: Location, visit: (HostEntry, inout State?) -> State?,
                      failure: (VirtFSError) -> Void) -> (DirectoryContext, State?, DeviceNumber)? {
        do throws(VirtFSError) {
            let entry = try start.entry()
            var outside: State?
            let state = visit(entry, &outside)
            guard options.recursive, entry.stat.fileType == .directory else { return nil }
            let top = start.isExportRoot ? start.directory : try start.directory.child(start.name, path: start.path)
            return (top, state, entry.stat.device)
        } catch {
            failure(error.at(start.path))
            return nil
        }
    }

    /// One level of the current path: the directory, its stream (or, sorted, its names) and
    /// the consumer's state for it.
    final class Frame<State> {
        let directory: DirectoryContext
        let stream: DirectoryStream
        var names: IndexingIterator<[[UInt8]]>?
        var state: State?

        init(directory: DirectoryContext, state: State?, options: Options) throws(VirtFSError) {
            self.directory = directory
            self.state = state
            stream = try DirectoryStream(directory.fd, path: directory.path)
            if options.sorted || options.directoriesLast {
                names = try stream.sortedNames(directoriesLast: options.directoriesLast, directoryFd: directory.fd).makeIterator()
            }
        }

        /// The next name and its d_type (DT_UNKNOWN when sorted), nil at the end; throws when
        /// reading the directory fails.
        func nextName() throws(VirtFSError) -> (name: [UInt8], type: UInt8)? {
            guard names != nil else { return try stream.next() }
            return names!.next().map { ($0, UInt8(DT_UNKNOWN)) }
        }
    }

    /// The walk below `top`, pre-order, with one frame per level of the current path. `step`
    /// takes each listed name that is not hidden storage (with the frame of its directory and
    /// its path) and returns the directory to descend into, if any, with its state; `left`
    /// gets each frame once everything below it was stepped through.
    func traverse<State>(_ top: DirectoryContext, state: State?, step: (Frame<State>, _ name: [UInt8], _ type: UInt8, _ path: [UInt8]) -> (DirectoryContext, State?)?,
                         left: (Frame<State>) -> Void, failure: (VirtFSError) -> Void) {
        Sys.raiseOpenFileLimit()
        var stack: [Frame<State>] = []
        // A model that keeps metadata by name audits it against the names the walk listed.
        let notesNames = options.hiddenStorage.contains { $0.keepsMetadataByName }
        do {
            stack.append(try Frame(directory: top, state: state, options: options))
        } catch {
            return failure(error)
        }
        while let frame = stack.last {
            let next: (name: [UInt8], type: UInt8)?
            do {
                next = try frame.nextName()
                // mapped-file's audit of the directory's metadata then needs no lookup per name.
                if notesNames, let next { frame.directory.noteListed(next.name) }
            } catch {
                failure(error)
                next = nil
            }
            guard let (name, type) = next else {
                stack.removeLast()
                left(frame)
                continue
            }
            if options.hiddenStorage.contains(where: { $0.holdsMetadata(name) }) { continue }
            if let inFlight = options.inFlight, name.starts(with: inFlight) { continue }
            let path = Bytes.join(frame.directory.path, name)
            guard let (child, state) = step(frame, name, type, path) else { continue }
            do {
                stack.append(try Frame(directory: child, state: state, options: options))
            } catch {
                failure(error.at(path))
            }
        }
    }

    /// What the codecs of the hidden storage find wrong with it in a directory the walk has left.
    func audit(_ directory: DirectoryContext, failure: (VirtFSError) -> Void) {
        guard options.auditStorage else { return }
        for codec in options.hiddenStorage { codec.audit(directory, report: failure) }
    }
}
