import Glibc

/// A filesystem flushed (syncfs(2)) every half second on a thread of its own while a tool
/// writes to it, so that the flush the tool ends with, which makes its work durable, waits only
/// for the last moments' writes, and the writes before it are flushed while the tool goes on
/// rather than while it waits.
public final class BackgroundFlush: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var stopping = false
    private var thread: pthread_t?

    /// Starts flushing the filesystem holding `fd`, which must stay open until `finish`. No
    /// thread, no background flush: the final one does all the work.
    public init(_ fd: Int32) {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
        var thread = pthread_t()
        let job = Unmanaged.passRetained(Job { self.loop(fd) }).toOpaque()
        guard pthread_create(&thread, nil, { Unmanaged<Job>.fromOpaque($0!).takeRetainedValue().run(); return nil }, job) == 0 else {
            Unmanaged<Job>.fromOpaque(job).release()
            return
        }
        self.thread = thread
    }

    private func loop(_ fd: Int32) {
        pthread_mutex_lock(&mutex)
        while !stopping {
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            deadline.tv_nsec += 500_000_000
            if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
            guard pthread_cond_timedwait(&condition, &mutex, &deadline) == ETIMEDOUT, !stopping else { continue }
            pthread_mutex_unlock(&mutex)
            // A failure is not reported here: the caller's own final flush reports it.
            try? Sys.syncFilesystem(fd, [])
            pthread_mutex_lock(&mutex)
        }
        pthread_mutex_unlock(&mutex)
    }

    /// Stops the flushing and waits for a flush under way; the caller then makes its own.
    public func finish() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    deinit {
        finish()
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }
}
