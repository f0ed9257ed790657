import Testing
@testable import VirtFSCore

/// fsck(8)'s exit bits from what a run found and did: 1 corrected, 4 left uncorrected,
/// 8 operational error; warnings alone change nothing.
struct FsckTallyTests {
    @Test func aCleanTreeExitsZero() {
        #expect(FsckTally().exitStatus(verdicts: 0) == 0)
    }

    @Test func warningsAloneLeaveTheStatusZero() {
        var tally = FsckTally()
        tally.record(.warning, fixed: false)
        #expect(tally.exitStatus(verdicts: 0) == 0)
        #expect(tally.warnings == 1 && tally.errors == 0)
    }

    @Test func aRepairedWarningCountsAsACorrection() {
        var tally = FsckTally()
        tally.record(.warning, fixed: true)
        #expect(tally.exitStatus(verdicts: 0) == 1)
        #expect(tally.repaired == 0)
    }

    @Test func repairedAndLeftErrorsCombineBits() {
        var tally = FsckTally()
        tally.record(.error, fixed: true)
        tally.record(.error, fixed: false)
        #expect(tally.exitStatus(verdicts: 0) == 1 | 4)
        #expect(tally.summary(tree: "t", verdicts: []) == "t: 2 errors (1 repaired, 1 left), 0 warnings")
    }

    @Test func aFailedRepairLeavesTheErrorAndIsAnOperationalError() {
        var tally = FsckTally()
        tally.record(.error, fixed: false, repairFailed: true)
        #expect(tally.exitStatus(verdicts: 0) == 4 | 8)
        #expect(tally.left == 1)
    }

    @Test func aVerdictOnTheTreeIsAnErrorLeftUncorrected() {
        var tally = FsckTally()
        tally.record(.warning, fixed: false)
        #expect(tally.exitStatus(verdicts: 1) == 4)
        #expect(tally.summary(tree: "t", verdicts: ["metadata-lost"]) == "t: 0 errors (0 repaired, 0 left), 1 warning; metadata-lost")
    }

    @Test(arguments: [(RepairMode.none, false, false), (.safe, true, false), (.all, true, true)])
    func theModeDecidesWhichRepairsAreMade(mode: RepairMode, safe: Bool, unsafe: Bool) {
        let safeRepair = Finding.Repair(summary: "s", safe: true, action: .removeEntry)
        let unsafeRepair = Finding.Repair(summary: "u", safe: false, action: .removeEntry)
        #expect(mode.applies(safeRepair) == safe)
        #expect(mode.applies(unsafeRepair) == unsafe)
    }
}
