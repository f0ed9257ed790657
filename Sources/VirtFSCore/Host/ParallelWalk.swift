import Dispatch
import Glibc

extension Walker {
    /// The online CPUs: how many jobs a parallel walk runs unless told otherwise.
    public static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// As `walk`, with the per-entry work (`transform`: decoding, typically) spread over `jobs`
    /// threads, while `visit` and `failure` are called on the calling thread in exactly the
    /// order a plain walk would call them. The tree itself is still walked by one thread with
    /// directory fds, so the walk is as safe against symlink races as `walk`; `transform` gets
    /// each entry once and must not change the tree.
    ///
    /// Entries are handed out in batches; a batch holds its directories open until it has been
    /// visited, so memory and descriptors stay bounded by the batch, not the tree.
    public func walk<Result>(_ start: Location, jobs: Int, transform: (HostEntry) -> Result,
                             visit: (Result) -> Void, failure: (VirtFSError) -> Void) {
        guard jobs > 1 else {
            return walk(start, visit: { visit(transform($0)) }, failure: failure)
        }
        var batch: [Item] = []
        var entries = 0
        var directories = 0
        var lastDirectory: DirectoryContext?
        func flush() {
            let results = Self.transformInParallel(batch, jobs: jobs, transform: transform)
            for (item, result) in zip(batch, results) {
                switch item {
                case .failure(let error): failure(error)
                case .entry: visit(result!)
                }
            }
            batch.removeAll(keepingCapacity: true)
            entries = 0
            directories = 0
        }
        walk(start, visit: { entry in
            // mapped-file decoding opens the directory's .virtfs_metadata lazily: open it here,
            // on the walking thread, so the transforms only read the cached descriptor.
            if options.hiddenStorage.contains(where: { $0.keepsMetadataByName }) { _ = try? entry.directory.metadataDirectory() }
            if entry.directory !== lastDirectory {
                lastDirectory = entry.directory
                directories += 1
            }
            batch.append(.entry(entry))
            entries += 1
            if entries >= Self.batchSize || directories >= Self.batchDirectories { flush() }
        }, failure: { batch.append(.failure($0)) })
        flush()
    }

    /// Enough entries per batch that the threads rarely wait on each other, few enough that the
    /// open directories and decoded views of one batch stay small.
    static let batchSize = 1024
    /// A batch keeps each of its entries' directories open (two descriptors in mapped-file): a
    /// tree of many small directories flushes on this instead.
    static let batchDirectories = 64

    enum Item {
        case entry(HostEntry)
        case failure(VirtFSError)
    }

    /// `transform` of every entry of `batch`, in its order (nil for failures); each thread takes
    /// every `jobs`-th item so no two threads write the same slot.
    private static func transformInParallel<Result>(_ batch: [Item], jobs: Int, transform: (HostEntry) -> Result) -> [Result?] {
        var results = [Result?](repeating: nil, count: batch.count)
        let threads = min(jobs, batch.count)
        results.withUnsafeMutableBufferPointer { out in
            let slots = UncheckedSendable(out)
            let items = UncheckedSendable(batch)
            withoutActuallyEscaping(transform) { transform in
                let work = UncheckedSendable(transform)
                DispatchQueue.concurrentPerform(iterations: threads) { thread in
                    var i = thread
                    while i < items.value.count {
                        if case .entry(let entry) = items.value[i] {
                            slots.value[i] = work.value(entry)
                        }
                        i += threads
                    }
                }
            }
        }
        return results
    }
}

/// What the parallel walk hands to its threads: entries of directories the walking thread has
/// finished preparing, result slots that only one thread writes, and a transform the caller
/// promises is safe to run concurrently. Nothing here is shared mutably between threads.
private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
