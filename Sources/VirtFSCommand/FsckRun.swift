import ArgumentParser
import VirtFSCore

/// virtfs-fsck's options, and the run they ask for: the verdicts on the tree, the findings
/// checked, repaired as the mode allows and reported, and fsck(8)'s exit status.
public struct FsckOptions: ParsableArguments {
    @Flag(name: .customShort("n"), help: "Check only; open nothing for writing (the default).")
    public var noChanges = false

    @Flag(name: .customShort("p"), help: "Repair automatically what is safe: repairs that never change the guest's view.")
    public var preen = false

    @Flag(name: .customShort("y"), help: "Apply every repair.")
    public var yes = false

    @Option(name: .long, help: ArgumentHelp("Security model of the tree (default: detected).", valueName: "model"))
    public var model: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("Host user (and group) QEMU runs as, USER[:GROUP] or UID[:GID] (default: the export root's owner).", valueName: "user"))
    public var qemuUser: String?

    @Option(name: .long, help: ArgumentHelp("Give entries without metadata this guest owner, UID:GID or names from the tree's etc/passwd.", valueName: "owner"))
    public var adoptOwner: String?

    @Flag(name: .long, help: "Give entries without metadata the guest owner of their directory.")
    public var adoptFromParent = false

    @Option(name: .long, help: ArgumentHelp("Host mode of files repairs create (octal, QEMU's fmode).", valueName: "mode"))
    public var fmode = "0600"

    @Option(name: .long, help: ArgumentHelp("Host mode of directories repairs create (octal, QEMU's dmode).", valueName: "mode"))
    public var dmode = "0700"

    @Flag(name: .long, help: "Also repair entries whose host inode has hard links outside the tree (left alone by default).")
    public var allowOutsideLinks = false

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    public var oneFileSystem = false

    @Option(name: [.customShort("j"), .long], help: ArgumentHelp("Stat and decode entries on N threads (default: the online CPUs); the findings and their order do not change.", valueName: "n"))
    public var jobs = Walker.onlineCPUs

    @Flag(name: .long, help: "Print one JSON object per finding, then a summary object.")
    public var json = false

    @Flag(name: [.customShort("v"), .long], help: "Print every finding on its own, also when many have one cause.")
    public var verbose = false

    @Argument(help: ArgumentHelp("The export root.", valueName: "tree"))
    public var tree: String

    public func validate() throws {
        if [noChanges, preen, yes].filter({ $0 }).count > 1 { throw ValidationError("-n, -p and -y exclude each other.") }
        if adoptOwner != nil && adoptFromParent { throw ValidationError("--adopt-owner and --adopt-from-parent exclude each other.") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1.") }
        if UInt32(fmode, radix: 8) == nil || UInt32(dmode, radix: 8) == nil { throw ValidationError("--fmode and --dmode take octal modes.") }
        if let qemuUser { _ = try HostUser.parse(qemuUser) }
    }

    public init() {}

    var mode: RepairMode { yes ? .all : preen ? .safe : .none }

    /// Checks (and repairs) the tree; returns the exit status.
    public func run() -> Int32 {
        let console = Console(tool: "virtfs-fsck")
        var checker: Checker
        var verdicts: [TreeVerdict] = []
        let chosen: SecurityModel
        let location: Walker.Location
        let rootOwner: UInt32
        // The census the verdicts rest on is taken by the checking walk itself, except where
        // findings are printed as they are found (--json, -v without -p/-y): the verdicts come
        // first, so the census needs a walk of its own there.
        let streaming = (json || verbose) && mode == .none
        var census: TreeCensus?
        var lock: TreeLock?
        defer { withExtendedLifetime(lock) {} }
        do {
            location = try Walker.exportRoot(RawArguments.bytes(for: tree))
            if mode != .none { lock = try TreeLock(location) }
            // A half-converted tree is read right by no model: say so, and nothing else.
            if let record = ConversionRecord.read(in: location.directory) {
                reportVerdicts([.interrupted(record)], model: model, console: console)
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
            options.jobs = jobs
            options.fileMode = UInt32(fmode, radix: 8)!
            options.directoryMode = UInt32(dmode, radix: 8)!
            options.modelDeclared = model != nil
            if adoptFromParent { options.adoption = .fromParent }
            if let adoptOwner {
                let owner = try GuestAccounts.load(root: location.directory).parseOwner(adoptOwner)
                guard let uid = owner.uid, let gid = owner.gid else { throw ValidationError("--adopt-owner takes OWNER:GROUP") }
                options.adoption = .owner(uid: uid, gid: gid)
            }
            options.lossRule = LossRule(detection)
            rootOwner = try location.entry().stat.uid
            if streaming {
                let taken = TreeCensus.take(location, rule: options.lossRule, oneFileSystem: oneFileSystem)
                options.lossRule.all = TreeVerdict.stripped(taken)
                verdicts = TreeVerdict.judge(taken, model: chosen, declared: model, rootOwner: rootOwner, qemuUserGiven: qemuUser != nil)
            } else {
                census = TreeCensus()
            }
            checker = try Checker(root: location, options: options)
        } catch let error as ValidationError {
            console.error(VirtFSError.refused("usage", error.message))
            return 16
        } catch {
            console.error(error)
            return 8
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
                report(finding, state: state, fixed: fixed, console: console)
            } else {
                digest.add(finding, state: state)
            }
        }
        // Checking only, each finding is folded into the digest as it is found (bounded memory);
        // repairs wait for the end of the walk (they rename entries in directories it reads).
        var findings: [Finding] = []
        func found(_ finding: Finding) {
            if mode != .none { findings.append(finding) } else { process(finding) }
        }
        if !streaming {
            checker.check(found, census: &census)
            if let census {
                if TreeVerdict.stripped(census) {
                    // Every entry without metadata lost it: the findings are classified anew.
                    var options = checker.options
                    options.lossRule.all = true
                    guard let again = console.attempt({ try Checker(root: location, options: options) }) else { return 8 }
                    checker = again
                    findings = []
                    tally = FsckTally()
                    digest = FindingDigest(limit: 3)
                    checker.check(found)
                }
                verdicts = TreeVerdict.judge(census, model: chosen, declared: model, rootOwner: rootOwner, qemuUserGiven: qemuUser != nil)
            }
        }
        // A stripped tree detected as passthrough does not say which mapped model it was in.
        reportVerdicts(verdicts, model: chosen.isMapped ? chosen : model, console: console)
        if verdicts.contains(where: { if case .contradicts = $0 { true } else { false } }) {
            // Checked in the wrong model, every entry would be a finding: the verdict is the news.
            writeSummary(FsckTally(), verdicts: verdicts, console: console)
            console.flush()
            return 4
        }
        if streaming {
            // Each finding is printed as it is found, in bounded memory.
            checker.check(process)
        } else {
            findings.forEach(process)
        }
        if !json && !verbose {
            console.write(digest.text { Bytes.shellEscaped($0) })
        }
        writeSummary(tally, verdicts: verdicts, console: console)
        console.flush()
        return tally.exitStatus(verdicts: verdicts.count)
    }

    /// What happened to the tree as a whole, before any finding: one line each, and the way back.
    func reportVerdicts(_ verdicts: [TreeVerdict], model: SecurityModel?, console: Console) {
        for v in verdicts {
            let advice = v.advice(tree: tree, model: model)
            var object: [String: Any] = ["verdict": v.name, "severity": "error", "problem": v.summary, "advice": advice]
            switch v {
            case .metadataLost(let count, let of, _, _), .rootOwned(let count, let of, _), .contradicts(_, _, let count, let of):
                object["count"] = count
                object["entries"] = of
            case .interrupted: break
            }
            console.write(json: json, object, or: "\(tree): error \(v.name): \(v.summary)\n" + advice.map { "    \($0)\n" }.joined())
        }
    }

    func writeSummary(_ tally: FsckTally, verdicts: [TreeVerdict], console: Console) {
        console.writeSummary(tally.summary(tree: tree, verdicts: verdicts.map(\.name)), json: json,
                             ["errors": tally.errors, "repaired": tally.repaired, "left": tally.left,
                              "warnings": tally.warnings, "verdicts": verdicts.map(\.name)])
    }

    func report(_ f: Finding, state: String, fixed: Bool, console: Console) {
        var object: [String: Any] = ["check": f.check.rawValue, "severity": f.severity.rawValue, "problem": f.problem,
                                     "guest": f.guestSees, "repaired": fixed, "path": f.path]
        if let repair = f.repair { object["repair"] = repair.summary; object["safe"] = repair.safe }
        console.write(json: json, object, or: FindingDigest.block(f, state: state) { Bytes.shellEscaped($0) })
    }
}
