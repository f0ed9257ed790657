import Dispatch
import Synchronization
import VirtFSCore

extension Importer {
    /// What an import says and counts, in member order. With more than one job, what touches
    /// only a new object (its metadata and times) runs in order on a second thread while the
    /// reading thread makes the next objects, so the second core does a third of the kernel's
    /// work; a member's event, and any event after it, waits until that work is done.
    final class Output: @unchecked Sendable {
        typealias Work = () throws(VirtFSError) -> Void

        var summary = Summary()
        private let consumer: (Event) -> Void
        /// nil with one job: the work runs at once.
        private let queue: DispatchQueue?
        /// Work goes over in batches of 32 (one wake-up of the other thread per batch, not per
        /// object), at most 4 batches ahead of the reading thread.
        private let room = DispatchSemaphore(value: 4)
        private var batch: [Work] = []
        /// Outcomes of the work done and not yet said, oldest first.
        private let outcomes = Mutex<[VirtFSError?]>([])
        /// The events of the work given and not yet said (the reading thread's alone).
        private var waiting: [(Event, bytes: UInt64)] = []

        init(jobs: Int, event: @escaping (Event) -> Void) {
            consumer = event
            queue = jobs > 1 ? DispatchQueue(label: "virtfs-tools.import") : nil
        }

        /// Says `event` once `work` has run (`bytes` of file data imported), or the error it threw instead.
        func say(_ event: Event, bytes: UInt64 = 0, after work: Work? = nil) {
            guard queue != nil, work != nil || !waiting.isEmpty else {
                do throws(VirtFSError) {
                    try work?()
                    emit(event, bytes: bytes)
                } catch {
                    emit(Event(error))
                }
                return
            }
            waiting.append((event, bytes))
            batch.append(work ?? {})
            if batch.count == 32 { send() }
        }

        private func emit(_ event: Event, bytes: UInt64 = 0) {
            switch event {
            case .imported(_, let attributes):
                summary.imported[attributes.type, default: 0] += 1
                summary.bytes += bytes
            case .refused: summary.refused += 1
            case .failed: summary.failures += 1
            case .warning: break
            }
            consumer(event)
        }

        private func send() {
            guard let queue, !batch.isEmpty else { return }
            room.wait()
            // Only the other thread touches these now.
            nonisolated(unsafe) let sent = batch
            batch = []
            queue.async { [self] in
                for work in sent {
                    var outcome: VirtFSError?
                    do throws(VirtFSError) { try work() } catch { outcome = error }
                    outcomes.withLock { $0.append(outcome) }
                }
                room.signal()
            }
        }

        /// Says what the second thread has finished; with `all`, waits for all of it first, so
        /// that the tree is as one thread would have left it.
        func settle(all: Bool = false) {
            if all {
                send()
                queue?.sync {}
            }
            let done = outcomes.withLock { list in
                defer { list = [] }
                return list
            }
            for ((event, bytes), error) in zip(waiting, done) {
                emit(error.map(Event.init) ?? event, bytes: bytes)
            }
            waiting.removeFirst(done.count)
        }
    }
}

extension Importer.Event {
    /// A member not written: refused, or failed.
    init(_ error: VirtFSError) {
        if case .refused = error.reason { self = .refused(error) } else { self = .failed(error) }
    }
}
