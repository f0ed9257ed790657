import ArgumentParser
import Glibc

extension ParsableCommand {
    /// Runs the command as coreutils tools run: usage errors exit with `usageStatus` (fsck(8)
    /// uses 16, the others 1, where swift-argument-parser would use 64) and read
    /// `TOOL: message` / `Try 'TOOL --help' for more information.`; `--version` prints
    /// `TOOL (virtfs-tools) VERSION`; and what coreutils accepts parses here too (see
    /// `CoreutilsArguments`).
    public static func main(usageStatus: Int32) {
        let tool = configuration.commandName ?? "virtfs-tools"
        let given = Array(CommandLine.arguments.dropFirst())
        if given.contains("--version") && !given.prefix(while: { $0 != "--" }).contains("--help") && given.first != "--" {
            print("\(tool) (virtfs-tools) \(virtfsToolsVersion)")
            Glibc.exit(0)
        }
        // --help and its kind are "errors" that exit 0.
        func fail(_ error: Error) -> Never {
            guard exitCode(for: error) == .success else { usageError(tool, message(for: error), status: usageStatus) }
            print(fullMessage(for: error))
            Glibc.exit(0)
        }
        var command: ParsableCommand
        do {
            command = try parseAsRoot(given)
        } catch {
            guard exitCode(for: error) != .success,
                  let rewritten = CoreutilsArguments.rewrite(given, parse: { arguments in
                      do { _ = try parseAsRoot(arguments); return nil } catch { return message(for: error) }
                  }),
                  let parsed = try? parseAsRoot(rewritten) else { fail(error) }
            command = parsed
        }
        do {
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            fail(error)
        }
    }

    static func usageError(_ tool: String, _ message: String, status: Int32) -> Never {
        var text = message
        for prefix in ["Error: ", "error: "] where text.hasPrefix(prefix) { text.removeFirst(prefix.count) }
        let line = Array("\(tool): \(text)\nTry '\(tool) --help' for more information.\n".utf8)
        line.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress!, $0.count) }
        Glibc.exit(status)
    }
}

/// What coreutils parses and swift-argument-parser does not, tried only after the command line
/// failed to parse as given, and taken only when the rewritten line parses:
/// - a value attached to a short option, `-c%n` for `-c %n`;
/// - a mode operand that begins with '-', `chmod -w FILE` or `chmod -R -x,u+w DIR`, which
///   coreutils tells from an option because it is not one.
public enum CoreutilsArguments {
    /// `parse` returns nil when a line parses, else the parser's message.
    public static func rewrite(_ arguments: [String], parse: ([String]) -> String?) -> [String]? {
        let options = arguments.prefix { $0 != "--" }
        for (i, token) in options.enumerated() where isShortWithValue(token) {
            var candidate = arguments
            candidate.replaceSubrange(i...i, with: [String(token.prefix(2)), String(token.dropFirst(2))])
            if parse(candidate) == nil { return candidate }
        }
        if let i = options.firstIndex(where: isNegativeMode) {
            var rest = arguments
            let mode = rest.remove(at: i)
            // Options (with their values) first, then the mode as the first operand.
            var leading: [String] = []
            var operands: [String] = []
            var tokens = rest.makeIterator()
            while let token = tokens.next() {
                if token == "--" {
                    operands += IteratorSequence(tokens)
                    break
                }
                if token.hasPrefix("-") && token.count > 1 {
                    leading.append(token)
                    if !token.contains("=") && takesValue(token, parse: parse), let value = tokens.next() { leading.append(value) }
                } else {
                    operands.append(token)
                }
            }
            let candidate = leading + ["--", mode] + operands
            if parse(candidate) == nil { return candidate }
        }
        return nil
    }

    /// `-cFORMAT`: one dash, a letter, then more.
    static func isShortWithValue(_ token: String) -> Bool {
        let bytes = Array(token.utf8)
        return bytes.count > 2 && bytes[0] == UInt8(ascii: "-") && bytes[1] < 0x80 && Character(Unicode.Scalar(bytes[1])).isLetter
    }

    /// chmod(1)'s symbolic modes that begin with '-': `-w`, `-rwx`, `-x,g+w`, `-s`.
    static func isNegativeMode(_ token: String) -> Bool {
        guard token.hasPrefix("-"), token.count > 1, !token.hasPrefix("--") else { return false }
        return token.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { clause in
            var rest = Substring(clause)
            while let c = rest.first, "ugoa".contains(c) { rest = rest.dropFirst() }
            guard let op = rest.first, "-+=".contains(op) else { return false }
            return rest.dropFirst().allSatisfy { "rwxXstugo-+=".contains($0) }
        }
    }

    /// Whether an option takes a value: given none, the parser says it is missing.
    static func takesValue(_ option: String, parse: ([String]) -> String?) -> Bool {
        parse([option, "--", "u+r", "f"])?.contains("Missing value") ?? false
    }
}

/// Host users and groups (the QEMU user is a host user, not a guest one): a name from the
/// host's database or a number, `USER[:GROUP]`, the group defaulting to the user's.
public enum HostUser {
    public static func parse(_ spec: String) throws -> (uid: UInt32, gid: UInt32) {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let userPart = parts.first else { throw ValidationError("invalid user '\(spec)'") }
        let pw = getpwnam(userPart)
        guard let uid = pw?.pointee.pw_uid ?? UInt32(userPart) else { throw ValidationError("unknown host user '\(userPart)'") }
        var gid = (pw ?? getpwuid(uid))?.pointee.pw_gid
        if parts.count == 2 {
            guard let group = getgrnam(parts[1])?.pointee.gr_gid ?? UInt32(parts[1]) else { throw ValidationError("unknown host group '\(parts[1])'") }
            gid = group
        }
        guard let gid else { throw ValidationError("'\(spec)' needs a group: USER:GROUP") }
        return (uid, gid)
    }
}
