import Dispatch
import Synchronization
import VirtFSCore

/// Work run in order on one other thread, at most `limit` pieces ahead of the thread that gives
/// it, whose outcomes come back to that thread in the same order, each with the tag it was
/// given with. An import makes each object on the reading thread and writes its metadata here,
/// so the second core does a third of the kernel's work while the output keeps member order.
final class Pipeline<Tag>: @unchecked Sendable {
    private struct Batch: @unchecked Sendable {
        var work: [() throws(VirtFSError) -> Void] = []
    }

    private let queue = DispatchQueue(label: "virtfs-tools.pipeline")
    /// Work goes over in batches: one wake-up of the other thread per batch, not per object.
    private let batchSize: Int
    private let room: DispatchSemaphore
    private var batch = Batch()
    /// Outcomes of the work done and not yet taken, oldest first.
    private let outcomes = Mutex<[VirtFSError?]>([])
    /// Tags of the work given and not yet taken (the giving thread's alone).
    private var tags: [Tag] = []

    /// At most `batches` batches of `batchSize` pieces of work are ahead of the giving thread.
    init(batchSize: Int = 32, batches: Int = 4) {
        self.batchSize = batchSize
        room = DispatchSemaphore(value: batches)
    }

    /// Nothing given is still waiting to be taken.
    var isIdle: Bool { tags.isEmpty }

    func submit(_ tag: Tag, _ run: @escaping () throws(VirtFSError) -> Void) {
        tags.append(tag)
        batch.work.append(run)
        if batch.work.count == batchSize { send() }
    }

    private func send() {
        guard !batch.work.isEmpty else { return }
        room.wait()
        let sent = batch
        batch = Batch()
        queue.async { [self] in
            for run in sent.work {
                var outcome: VirtFSError?
                do throws(VirtFSError) { try run() } catch { outcome = error }
                outcomes.withLock { $0.append(outcome) }
            }
            room.signal()
        }
    }

    /// The tags and outcomes of the work done since the last call, oldest first; with `all`,
    /// after sending and waiting for all the work given.
    func take(all: Bool = false) -> [(Tag, VirtFSError?)] {
        if all {
            send()
            queue.sync {}
        }
        let done = outcomes.withLock { list in
            defer { list = [] }
            return list
        }
        defer { tags.removeFirst(done.count) }
        return Array(zip(tags, done))
    }
}
