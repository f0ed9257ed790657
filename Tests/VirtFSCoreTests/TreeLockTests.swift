import Glibc
import Testing
import VirtFSCore
import VirtFSTestSupport

/// Two writers never work on one tree at once, whether they name the same root, a tree and a
/// subtree of it (either way round), and a killed writer blocks no one.
@Suite struct TreeLockTests {
    func lock(_ path: String) throws -> TreeLock {
        try TreeLock(try Walker.exportRoot(Array(path.utf8)))
    }

    func refusal(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as VirtFSError {
            return error.detail
        } catch {
            return "\(error)"
        }
    }

    /// The lock, retried for up to five seconds while refused. A lock just released is free
    /// again at once in a process that spawns nothing, but other tests in this process spawn
    /// commands, and a child between fork and exec holds a copy of every descriptor open here,
    /// the lock's too, until its exec closes them.
    func lockSoon(_ path: String) throws -> TreeLock {
        for _ in 0..<500 {
            if let held = try? lock(path) { return held }
            usleep(10_000)
        }
        return try lock(path)
    }

    @Test func aSecondWriterOfTheSameTreeIsRefused() throws {
        let dir = TemporaryDirectory()
        let tree = dir.sub("tree")
        let first = try lock(tree)
        let message = refusal { _ = try lock(tree) }
        #expect(message == "lock: another virtfs-tools command is changing this tree; run this one when it has finished")
        first.release()
        #expect(throws: Never.self) { try lockSoon(tree).release() }
    }

    @Test func aWriterInsideATreeBeingChangedIsRefusedAndTheOtherWayRound() throws {
        let dir = TemporaryDirectory()
        let tree = dir.sub("tree")
        let inner = dir.sub("tree/etc")
        do {
            let outer = try lock(tree)
            #expect(refusal { _ = try lock(inner) } != nil)
            withExtendedLifetime(outer) {}
        }
        let held = try lockSoon(inner)
        #expect(refusal { _ = try lock(tree) } != nil)
        withExtendedLifetime(held) {}
    }

    @Test func writersOfSeparateTreesDoNotExcludeEachOther() throws {
        let dir = TemporaryDirectory()
        let a = try lock(dir.sub("a"))
        let b = try lock(dir.sub("b"))
        withExtendedLifetime((a, b)) {}
    }

    @Test func aKilledWriterLeavesNoLockBehind() throws {
        let dir = TemporaryDirectory()
        let tree = dir.sub("tree")
        // flock(1) holds flock(2) on the directory as a writer does, and is killed with SIGKILL.
        // It is exec'd, not forked: a forked child would also hold every descriptor the other
        // tests running in this process have open, and keep their locks alive.
        var pid: pid_t = 0
        let words: [String] = ["/usr/bin/flock", "-x", tree, "/bin/sleep", "60"]
        var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) }
        argv.append(nil)
        defer { argv.forEach { free($0) } }
        // Its own process group, so that the sleep it starts (which inherits the lock) dies with it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        defer { posix_spawnattr_destroy(&attributes) }
        #expect(posix_spawn(&pid, "/usr/bin/flock", nil, &attributes, argv, environ) == 0)
        var held = false
        for _ in 0..<300 {
            if refusal({ _ = try lock(tree) }) != nil { held = true; break }
            usleep(10_000)
        }
        #expect(held)
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(throws: Never.self) { try lockSoon(tree).release() }
    }
}
