import ArgumentParser
import Glibc
import VirtFSCommand
import VirtFSCore

@main
struct VirtfsFsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtfs-fsck",
        abstract: "Check a QEMU VirtFS export before boot, and repair what would break the guest.",
        discussion: """
            Exit status, as fsck(8): 0 no errors, 1 errors corrected, 4 errors left uncorrected, \
            8 operational error, 16 usage error (bits combine). Warnings do not change it.
            """,
        version: "0.1.0"
    )

    static func main() { main(usageStatus: 16) }

    @Flag(name: .customShort("n"), help: "Check only; open nothing for writing (the default).")
    var noChanges = false

    @Flag(name: .customShort("p"), help: "Repair automatically what is safe: repairs that never change the guest's view.")
    var preen = false

    @Flag(name: .customShort("y"), help: "Apply every repair.")
    var yes = false

    @Option(name: .long, help: ArgumentHelp("Security model of the tree (default: detected).", valueName: "model"))
    var model: SecurityModel?

    @Option(name: .long, help: ArgumentHelp("Host user (and group) QEMU runs as, USER[:GROUP] or UID[:GID] (default: the export root's owner).", valueName: "user"))
    var qemuUser: String?

    @Option(name: .long, help: ArgumentHelp("Give entries without metadata this guest owner, UID:GID or names from the tree's etc/passwd.", valueName: "owner"))
    var adoptOwner: String?

    @Flag(name: .long, help: "Give entries without metadata the guest owner of their directory.")
    var adoptFromParent = false

    @Option(name: .long, help: ArgumentHelp("Host mode of files repairs create (octal, QEMU's fmode).", valueName: "mode"))
    var fmode = "0600"

    @Option(name: .long, help: ArgumentHelp("Host mode of directories repairs create (octal, QEMU's dmode).", valueName: "mode"))
    var dmode = "0700"

    @Flag(name: .long, help: "Also repair entries whose host inode has hard links outside the tree (left alone by default).")
    var allowOutsideLinks = false

    @Flag(name: [.customShort("x"), .long], help: "Do not descend into directories on other filesystems.")
    var oneFileSystem = false

    @Flag(name: .long, help: "Print one JSON object per finding, then a summary object.")
    var json = false

    @Flag(name: [.customShort("v"), .long], help: "Print every finding on its own, also when many have one cause.")
    var verbose = false

    @Argument(help: ArgumentHelp("The export root.", valueName: "tree"))
    var tree: String

    func validate() throws {
        if [noChanges, preen, yes].filter({ $0 }).count > 1 { throw ValidationError("-n, -p and -y exclude each other.") }
        if adoptOwner != nil && adoptFromParent { throw ValidationError("--adopt-owner and --adopt-from-parent exclude each other.") }
        if UInt32(fmode, radix: 8) == nil || UInt32(dmode, radix: 8) == nil { throw ValidationError("--fmode and --dmode take octal modes.") }
        if let qemuUser { _ = try HostUser.parse(qemuUser) }
    }

    func run() throws {
        let console = Console(tool: "virtfs-fsck")
        var checker: Checker
        var verdicts: [TreeVerdict] = []
        let chosen: SecurityModel
        let location: Walker.Location
        let rootOwner: UInt32
        // The census the verdicts rest on is taken by the checking walk itself, except where
        // findings are printed as they are found (--json, -v without -p/-y): the verdicts come
        // first, so the census needs a walk of its own there.
        let streaming = (json || verbose) && !(yes || preen)
        var census: TreeCensus?
        var lock: TreeLock?
        defer { withExtendedLifetime(lock) {} }
        do {
            location = try Walker.exportRoot(RawArguments.bytes(for: tree))
            if yes || preen { lock = try TreeLock(location) }
            // A half-converted tree is read right by no model: say so, and nothing else.
            if let record = ConversionRecord.read(in: location.directory) {
                try reportVerdicts([.interrupted(record)], model: model, console: console)
                console.flush()
                throw ExitCode(4)
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
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            console.error(VirtFSError.refused("usage", error.message))
            throw ExitCode(16)
        } catch {
            console.error(error)
            throw ExitCode(8)
        }
        var errors = 0, repaired = 0, left = 0, warnings = 0, failedRepairs = 0, changed = false
        var digest = FindingDigest(limit: json || verbose ? Int.max : 3)
        func process(_ finding: Finding) {
            var state = "not repaired (no repair)"
            var fixed = false
            if let repair = finding.repair {
                if yes || (preen && repair.safe) {
                    do {
                        try checker.repair(finding)
                        fixed = true
                        changed = true
                        state = "repaired: \(repair.summary)"
                    } catch {
                        failedRepairs += 1
                        console.error(error)
                        state = "repair failed: \(repair.summary)"
                    }
                } else {
                    state = "not repaired (\(repair.safe ? "-p or -y" : "-y")): \(repair.summary)"
                }
            }
            if finding.severity == .warning {
                warnings += 1
            } else {
                errors += 1
                if fixed { repaired += 1 } else { left += 1 }
            }
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
            if yes || preen { findings.append(finding) } else { process(finding) }
        }
        if !streaming {
            checker.check(found, census: &census)
            if let census {
                if TreeVerdict.stripped(census) {
                    // Every entry without metadata lost it: the findings are classified anew.
                    var options = checker.options
                    options.lossRule.all = true
                    do { checker = try Checker(root: location, options: options) } catch {
                        console.error(error)
                        throw ExitCode(8)
                    }
                    findings = []
                    (errors, left, warnings) = (0, 0, 0)
                    digest = FindingDigest(limit: 3)
                    checker.check(found)
                }
                verdicts = TreeVerdict.judge(census, model: chosen, declared: model, rootOwner: rootOwner, qemuUserGiven: qemuUser != nil)
            }
        }
        // A stripped tree detected as passthrough does not say which mapped model it was in.
        try reportVerdicts(verdicts, model: chosen.isMapped ? chosen : model, console: console)
        if verdicts.contains(where: { if case .contradicts = $0 { true } else { false } }) {
            // Checked in the wrong model, every entry would be a finding: the verdict is the news.
            try writeSummary(errors: 0, repaired: 0, left: 0, warnings: 0, verdicts: verdicts, console: console)
            console.flush()
            throw ExitCode(4)
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
        try writeSummary(errors: errors, repaired: repaired, left: left, warnings: warnings, verdicts: verdicts, console: console)
        console.flush()
        var status: Int32 = 0
        // Like e2fsck, any change to the tree (a warning's repair too) sets "corrected".
        if changed { status |= 1 }
        if left > 0 || !verdicts.isEmpty { status |= 4 }
        if failedRepairs > 0 { status |= 8 }
        if status != 0 { throw ExitCode(status) }
    }

    /// What happened to the tree as a whole, before any finding: one line each, and the way back.
    func reportVerdicts(_ verdicts: [TreeVerdict], model: SecurityModel?, console: Console) throws {
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

    func writeSummary(errors: Int, repaired: Int, left: Int, warnings: Int, verdicts: [TreeVerdict], console: Console) throws {
        var summary = "\(tree): \(errors) error\(errors == 1 ? "" : "s") (\(repaired) repaired, \(left) left), \(warnings) warning\(warnings == 1 ? "" : "s")"
        if !verdicts.isEmpty { summary += "; " + verdicts.map(\.name).joined(separator: ", ") }
        if json {
            let object: [String: Any] = ["summary": summary, "errors": errors, "repaired": repaired, "left": left, "warnings": warnings,
                                         "verdicts": verdicts.map(\.name)]
            console.writeJSON(object)
        } else {
            console.write(summary + "\n")
        }
    }

    func report(_ f: Finding, state: String, fixed: Bool, console: Console) {
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
