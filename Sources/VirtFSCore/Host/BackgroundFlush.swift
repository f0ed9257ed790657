import Dispatch
import Glibc

/// A filesystem flushed (syncfs(2)) every half second on another thread while a tool writes to
/// it, so that the flush the tool ends with, which makes its work durable, waits only for the
/// last moments' writes, and the earlier ones are flushed while the tool goes on. A failure here
/// is not reported: the caller's own final flush reports it.
public final class BackgroundFlush: @unchecked Sendable {
    let stop = DispatchSemaphore(value: 0)
    let stopped = DispatchSemaphore(value: 0)
    var finished = false

    /// Starts flushing the filesystem holding `fd`, which must stay open until `finish`.
    public init(_ fd: Int32) {
        DispatchQueue.global().async { [self] in
            while stop.wait(timeout: .now() + 0.5) == .timedOut { try? Sys.syncFilesystem(fd, []) }
            stopped.signal()
        }
    }

    /// Stops the flushing and waits for a flush under way; the caller then makes its own.
    public func finish() {
        guard !finished else { return }
        finished = true
        stop.signal()
        stopped.wait()
    }
}
