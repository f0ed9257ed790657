import Glibc
import VirtFSCore

/// Where a tool's words go: data to stdout (buffered, raw bytes), diagnostics to stderr in the
/// coreutils form `TOOL: PATH: STEP: REASON`, and a count of failures for the exit status.
public final class Console {
    public let tool: String
    public private(set) var failures = 0
    private var buffer: [UInt8] = []

    public init(tool: String) {
        self.tool = tool
        buffer.reserveCapacity(1 << 16)
    }

    public func write(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    public func write(_ text: String) {
        write(Array(text.utf8))
    }

    public func flush() {
        // A closed or full standard output loses the data, as it would for cat; the run goes on.
        try? Sys.writeAll(1, buffer, name: [])
        buffer.removeAll(keepingCapacity: true)
    }

    /// One record of a run: with `json` the fields as a JSON line, else the text as it is.
    public func write(json: Bool, _ fields: @autoclosure () -> [String: Any], or text: @autoclosure () -> String) {
        if json { writeJSON(fields()) } else { write(text()) }
    }

    /// Reports one failed entry and counts it.
    public func error(_ error: Error) {
        failures += 1
        emit(": " + ((error as? VirtFSError)?.description ?? String(describing: error)))
    }

    /// Runs `body`; reports and counts its error, if any, and returns nil then.
    public func attempt<T>(_ body: () throws -> T) -> T? {
        do {
            return try body()
        } catch {
            self.error(error)
            return nil
        }
    }

    /// Says something the user should know that is not a failure.
    public func warning(_ text: String) {
        emit(": warning: " + text)
    }

    /// Writes to standard error as it is (a line for the user beside data on standard output).
    public func writeError(_ bytes: [UInt8]) {
        // Keep stdout and stderr in order when both go to one place.
        flush()
        bytes.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress!, $0.count) }
    }

    private func emit(_ text: String) {
        writeError(Array((tool + text + "\n").utf8))
    }
}
