import Testing
import VirtFSCommand

/// The progress line a user watches on a long import or conversion.
@Suite struct ProgressTests {
    @Test func withATotalItSaysHowFarHowFastAndHowLong() {
        #expect(ProgressCounter.line(done: 12_345, count: 12_345, total: 100_000, unit: .entries, seconds: 5)
            == "12,345/100,000 entries (12%), 2,469/s, 0:36 left")
    }

    @Test func anArchiveIsMeasuredInBytesRead() {
        #expect(ProgressCounter.line(done: 3 << 20, count: 800, total: 12 << 20, unit: .bytes, seconds: 2)
            == "3.0 MiB/12.0 MiB (25%), 800 entries, 1.5 MiB/s, 0:06 left")
    }

    @Test func withoutATotalItCounts() {
        #expect(ProgressCounter.line(done: 1_000_000, count: 1_000_000, total: nil, unit: .entries, seconds: 4)
            == "1,000,000 entries, 250,000/s")
    }

    @Test func hoursShowWhenTheyAreNeeded() {
        #expect(ProgressCounter.line(done: 1, count: 1, total: 10_000, unit: .entries, seconds: 1) == "1/10,000 entries (0%), 1/s, 2:46:39 left")
    }
}
