import ArgumentParser
import Glibc

extension ParsableCommand {
    /// Runs the command with a given exit status for usage errors (fsck(8) uses 16), where
    /// swift-argument-parser would use 64.
    public static func main(usageStatus: Int32) {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            let message = fullMessage(for: error)
            if exitCode(for: error) == .success {
                print(message)
                Glibc.exit(0)
            }
            let line = Array((message + "\n").utf8)
            line.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress!, $0.count) }
            Glibc.exit(usageStatus)
        }
    }
}

/// Host users and groups (the QEMU user is a host user, not a guest one): a name from the
/// host's database or a number, `USER[:GROUP]`, the group defaulting to the user's.
public enum HostUser {
    public static func parse(_ spec: String) throws -> (uid: UInt32, gid: UInt32) {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let userPart = parts.first else { throw ValidationError("invalid user '\(spec)'") }
        var uid: UInt32
        var gid: UInt32?
        if let pw = getpwnam(userPart) {
            uid = pw.pointee.pw_uid
            gid = pw.pointee.pw_gid
        } else if let n = UInt32(userPart) {
            uid = n
            gid = getpwuid(n).map { $0.pointee.pw_gid }
        } else {
            throw ValidationError("unknown host user '\(userPart)'")
        }
        if parts.count == 2 {
            if let gr = getgrnam(parts[1]) { gid = gr.pointee.gr_gid } else if let n = UInt32(parts[1]) { gid = n } else {
                throw ValidationError("unknown host group '\(parts[1])'")
            }
        }
        guard let gid else { throw ValidationError("'\(spec)' needs a group: USER:GROUP") }
        return (uid, gid)
    }
}
