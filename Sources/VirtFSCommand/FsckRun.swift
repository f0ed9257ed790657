import ArgumentParser
import VirtFSCore

/// virtfs-fsck after its arguments are parsed: the verdicts on the tree, the findings checked,
/// repaired as the mode allows and reported, and fsck(8)'s exit status.
public struct FsckRun {
    public var tree: String
    public var mode = RepairMode.none
    public var model: SecurityModel?
    public var qemuUser: String?
    public var adoptOwner: String?
    public var adoptFromParent = false
    public var fileMode: UInt32 = 0o600
    public var directoryMode: UInt32 = 0o700
    public var allowOutsideLinks = false
    public var oneFileSystem = false
    public var json = false
    public var verbose = false
    let console = Console(tool: "virtfs-fsck")

    public init(tree: String) {
        self.tree = tree
    }

    /// Checks (and repairs) the tree; returns the exit status.
    public func run() -> Int32 {
        let checker: Checker
        let verdicts: [TreeVerdict]
        let chosen: SecurityModel
        var lock: TreeLock?
        defer { withExtendedLifetime(lock) {} }
        do {
            let location = try Walker.exportRoot(RawArguments.bytes(for: tree))
            if mode != .none { lock = try TreeLock(location) }
            // A half-converted tree is read right by no model: say so, and nothing else.
            if let record = ConversionRecord.read(in: location.directory) {
                reportVerdicts([.interrupted(record)], model: model)
                console.flush()
                return 4
            }
            let detection = ModelDetection.detect(in: location.directory)
            guard let detected = model ?? detection.model else {
                throw VirtFSError.refused("detect", path: location.path, detection.explanation)
            }
            chosen = detected
            var options = Checker.Options(model: chosen)
            options.qemuUser = try qemuUser.map(HostUser.parse)
            options.oneFileSystem = oneFileSystem
            options.allowOutsideLinks = allowOutsideLinks
            options.fileMode = fileMode
            options.directoryMode = directoryMode
            options.modelDeclared = model != nil
            if adoptFromParent { options.adoption = .fromParent }
            if let adoptOwner {
                let owner = try GuestAccounts.load(root: location.directory).parseOwner(adoptOwner)
                guard let uid = owner.uid, let gid = owner.gid else { throw ValidationError("--adopt-owner takes OWNER:GROUP") }
                options.adoption = .owner(uid: uid, gid: gid)
            }
            var rule = LossRule(detection)
            let census = TreeCensus.take(location, rule: rule, oneFileSystem: oneFileSystem)
            rule.all = TreeVerdict.stripped(census)
            options.lossRule = rule
            verdicts = TreeVerdict.judge(census, model: chosen, declared: model, rootOwner: try location.entry().stat.uid,
                                         qemuUserGiven: qemuUser != nil)
            checker = try Checker(root: location, options: options)
        } catch let error as ValidationError {
            console.error(VirtFSError.refused("usage", error.message))
            return 16
        } catch {
            console.error(error)
            return 8
        }
        // A stripped tree detected as passthrough does not say which mapped model it was in.
        reportVerdicts(verdicts, model: chosen.isMapped ? chosen : model)
        if verdicts.contains(where: { if case .contradicts = $0 { true } else { false } }) {
            // Checked in the wrong model, every entry would be a finding: the verdict is the news.
            writeSummary(FsckTally(), verdicts: verdicts)
            console.flush()
            return 4
        }

        var tally = FsckTally()
        var digest = FindingDigest(limit: json || verbose ? Int.max : 3)
        func process(_ finding: Finding) {
            var fixed = false, failed = false
            if let repair = finding.repair, mode.applies(repair) {
                do {
                    try checker.repair(finding)
                    fixed = true
                } catch {
                    failed = true
                    console.error(error)
                }
            }
            tally.record(finding.severity, fixed: fixed, repairFailed: failed)
            let state = mode.state(of: finding.repair, fixed: fixed, failed: failed)
            if json || verbose {
                report(finding, state: state, fixed: fixed)
            } else {
                digest.add(finding, state: state)
            }
        }
        if mode != .none {
            // Repairs wait for the end of the walk: they rename entries in directories it reads.
            var findings: [Finding] = []
            checker.check { findings.append($0) }
            findings.forEach(process)
        } else {
            // Checking only: each finding is printed (or folded) as it is found, in bounded memory.
            checker.check(process)
        }
        if !json && !verbose {
            console.write(digest.text { Bytes.shellEscaped($0) })
        }
        writeSummary(tally, verdicts: verdicts)
        console.flush()
        return tally.exitStatus(verdicts: verdicts.count)
    }

    /// What happened to the tree as a whole, before any finding: one line each, and the way back.
    func reportVerdicts(_ verdicts: [TreeVerdict], model: SecurityModel?) {
        for v in verdicts {
            let advice = v.advice(tree: tree, model: model)
            if json {
                var object: [String: Any] = ["verdict": v.name, "severity": "error", "problem": v.summary, "advice": advice]
                switch v {
                case .metadataLost(let count, let of, _, _), .rootOwned(let count, let of, _), .contradicts(_, _, let count, let of):
                    object["count"] = count
                    object["entries"] = of
                case .interrupted: break
                }
                console.writeJSON(object)
            } else {
                console.write("\(tree): error \(v.name): \(v.summary)\n" + advice.map { "    \($0)\n" }.joined())
            }
        }
    }

    func writeSummary(_ tally: FsckTally, verdicts: [TreeVerdict]) {
        let summary = tally.summary(tree: tree, verdicts: verdicts.map(\.name))
        if json {
            let object: [String: Any] = ["summary": summary, "errors": tally.errors, "repaired": tally.repaired, "left": tally.left,
                                         "warnings": tally.warnings, "verdicts": verdicts.map(\.name)]
            console.writeJSON(object)
        } else {
            console.write(summary + "\n")
        }
    }

    func report(_ f: Finding, state: String, fixed: Bool) {
        if json {
            var object: [String: Any] = ["check": f.check.rawValue, "severity": f.severity.rawValue, "problem": f.problem,
                                         "guest": f.guestSees, "repaired": fixed, "path": f.path]
            if let repair = f.repair { object["repair"] = repair.summary; object["safe"] = repair.safe }
            console.writeJSON(object)
        } else {
            console.write("\(Bytes.shellEscaped(f.path)): \(f.severity.rawValue) \(f.check.rawValue): \(f.problem)\n    guest: \(f.guestSees)\n    \(state)\n")
        }
    }
}
