import Glibc

extension Walker {
    /// The online CPUs: how many jobs a parallel walk runs unless told otherwise.
    public static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// As `walk`, with the stat and `transform` (decoding, typically) of each entry done on
    /// `jobs` threads, while `visit`, `leave` and `failure` are called on the calling thread in
    /// exactly the order a plain walk calls them. The calling thread lists each directory and
    /// opens every subdirectory (O_NOFOLLOW, before its entry is visited): the stat its entry
    /// gets is that of the directory walked, so no swap can redirect the walk and a symlink is
    /// never entered. `transform` gets each entry once, concurrently with others; it may change
    /// the entry (its metadata, a model's storage the walk hides) but must add or remove no name
    /// in a directory the walk lists: that is left to `visit`, on the listing thread.
    ///
    /// Each batch of entries is stat'ed and transformed by a thread of its own, at most `jobs`
    /// at a time; a batch holds a bounded number of entries and directories, so memory and
    /// descriptors do not grow with the tree.
    public func walk<Value>(_ start: Location, jobs: Int, transform: @escaping (HostEntry) -> Value, visit: (Value) -> Void,
                            leave: (DirectoryContext) -> Void = { _ in }, failure: (VirtFSError) -> Void) {
        let visitEntry = { (entry: HostEntry, _: inout Void?) -> Void? in visit(transform(entry)) }
        guard jobs > 1 else {
            return walk(start, visit: visitEntry, leave: { directory, _ in leave(directory) }, failure: failure)
        }
        guard let (top, _, device) = enter(start, visit: visitEntry, failure: failure) else { return }
        // mapped-file decoding opens a directory's .virtfs_metadata lazily: open it here, on the
        // listing thread, so that the threads only read the cached descriptor.
        let metadataByName = options.hiddenStorage.contains { $0.keepsMetadataByName }
        if metadataByName { _ = try? top.metadataDirectory() }
        var running: [Batch<Value>] = []
        var batch = Batch<Value>()
        func consume(_ done: Batch<Value>) {
            done.join()
            var results = done.takeResults().makeIterator()
            for item in done.items {
                switch item {
                case .entry:
                    switch results.next()! {
                    case .success(let value): visit(value)
                    case .failure(let error): failure(error)
                    }
                case .failure(let error): failure(error)
                case .leave(let directory):
                    audit(directory, failure: failure)
                    leave(directory)
                }
            }
        }
        func startIfFull() {
            guard batch.isFull else { return }
            if running.count == jobs { consume(running.removeFirst()) }
            batch.start(transform)
            running.append(batch)
            batch = Batch()
        }
        func add(_ item: Batch<Value>.Item) {
            batch.add(item)
            startIfFull()
        }
        func add(_ entry: Batch<Value>.Pending) {
            batch.add(entry)
            startIfFull()
        }
        traverse(top, state: (), step: { frame, name, type, path in
            var opened: (DirectoryContext, HostStat)?
            var openFailure: VirtFSError?
            if type == DT_DIR || type == DT_UNKNOWN {
                do throws(VirtFSError) {
                    let child = try frame.directory.child(name, path: path)
                    opened = (child, try Sys.stat(fd: child.fd))
                } catch {
                    // Not a directory after all (d_type unknown, or replaced since the listing).
                    if error.errno != ENOTDIR && error.errno != ELOOP { openFailure = error.at(path) }
                }
            }
            add(Batch<Value>.Pending(directory: frame.directory, name: name, path: path, stat: opened?.1))
            if let openFailure { add(.failure(openFailure)) }
            guard let (child, stat) = opened, !options.oneFileSystem || stat.device == device else { return nil }
            if metadataByName { _ = try? child.metadataDirectory() }
            return (child, ())
        }, left: { add(.leave($0.directory)) }, failure: { add(.failure($0)) })
        batch.run(transform)
        (running + [batch]).forEach(consume)
    }

    /// Entries for one thread to stat and transform, in walk order, with the failures and the
    /// directories left between them.
    final class Batch<Value> {
        enum Item {
            /// The next of `pending`.
            case entry
            case failure(VirtFSError)
            case leave(DirectoryContext)
        }

        /// A name in a directory, with its stat when the listing thread opened it as a directory.
        struct Pending {
            let directory: DirectoryContext
            let name: [UInt8]
            let path: [UInt8]
            let stat: HostStat?
        }

        private(set) var items: [Item] = []
        private var pending: [Pending] = []
        /// What `run` made of each of `pending`, in order. (The items stay small, and nothing
        /// large is copied on its way from `transform` to `visit`.)
        private var results: [Result<Value, VirtFSError>] = []
        private var thread: pthread_t?
        /// The directories opened for the items, which they and the items after them hold open.
        private var directories = 0

        /// Enough entries that a thread's start costs little, few enough (and few enough
        /// directories, each one or two descriptors) that the batches in flight stay small.
        static var capacity: Int { 512 }
        var isFull: Bool { items.count >= Self.capacity || directories >= 64 }

        init() {
            items.reserveCapacity(Self.capacity)
            pending.reserveCapacity(Self.capacity)
        }

        func add(_ item: Item) {
            items.append(item)
        }

        func add(_ entry: Pending) {
            if entry.stat != nil { directories += 1 }
            pending.append(entry)
            items.append(.entry)
        }

        func run(_ transform: (HostEntry) -> Value) {
            results.reserveCapacity(pending.count)
            for p in pending {
                results.append(Result { () throws(VirtFSError) in
                    let entry = if let stat = p.stat { HostEntry(directory: p.directory, name: p.name, path: p.path, stat: stat, isExportRoot: false) }
                                else { try HostEntry(directory: p.directory, name: p.name, path: p.path) }
                    return transform(entry)
                })
            }
        }

        /// The results, once joined; the batch keeps none.
        func takeResults() -> [Result<Value, VirtFSError>] {
            defer { results = [] }
            return results
        }

        /// `run` on a thread of its own (on this one when no thread can be made); `join` waits
        /// for it, which also makes what it wrote visible here.
        func start(_ transform: @escaping (HostEntry) -> Value) {
            var thread = pthread_t()
            let job = Unmanaged.passRetained(Job { self.run(transform) }).toOpaque()
            guard pthread_create(&thread, nil, { Unmanaged<Job>.fromOpaque($0!).takeRetainedValue().run(); return nil }, job) == 0 else {
                Unmanaged<Job>.fromOpaque(job).takeRetainedValue().run()
                return
            }
            self.thread = thread
        }

        func join() {
            if let thread { pthread_join(thread, nil) }
        }
    }
}

/// What a thread of the parallel walk runs: a batch that no other thread touches until it has
/// been joined, and a transform the caller promises is safe to run concurrently.
private final class Job {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
