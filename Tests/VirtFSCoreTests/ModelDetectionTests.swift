import Glibc
import Testing
import VirtFSTestSupport
@testable import VirtFSCore

/// Which model a tree is in, judged from the tree alone, and the whole-tree verdicts a wrong
/// --model, a stripping copy or an unfinished conversion earn.
@Suite struct ModelDetections {
    func detect(_ root: String) throws -> ModelDetection {
        ModelDetection.detect(in: try Walker.exportRoot(Array(root.utf8)).directory)
    }

    func verdicts(_ root: String, model: SecurityModel, declared: SecurityModel?) throws -> [String] {
        let location = try Walker.exportRoot(Array(root.utf8))
        let census = TreeCensus.take(location, rule: LossRule(try detect(root)))
        return TreeVerdict.judge(census, model: model, declared: declared, rootOwner: 65534, qemuUserGiven: true).map(\.name)
    }

    @Test("a mapped tree is detected as its model", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func mapped(model: SecurityModel) throws {
        let tree = try FixtureTree(model)
        let detection = try detect(tree.root)
        #expect(detection.model == model)
        #expect(detection.explanation.hasPrefix(model.rawValue))
        #expect(try verdicts(tree.root, model: model, declared: model).isEmpty)
    }

    @Test("passthrough and none look alike on the host: both read as passthrough",
          .enabled(if: runningAsRoot, "needs root: the trees' owners and device nodes are real host ones"),
          arguments: [SecurityModel.passthrough, .none])
    func host(model: SecurityModel) throws {
        let tree = try FixtureTree(model)
        let detection = try detect(tree.root)
        #expect(detection.model == .passthrough)
        #expect(detection.evidence.isEmpty)
    }

    @Test("a mapped-xattr tree copied with cp -r (which drops xattrs) reads as passthrough, and is judged stripped")
    func stripped() throws {
        let tree = try FixtureTree(.mappedXattr)
        let copy = tree.dir.path + "/copy"
        #expect(system("cp -r '\(tree.root)' '\(copy)'") == 0)
        let detection = try detect(copy)
        #expect(detection.model == .passthrough, "no user.virtfs.* survived the copy")
        #expect(try verdicts(copy, model: .passthrough, declared: nil) == ["metadata-lost"])
        #expect(try verdicts(copy, model: .mappedXattr, declared: .mappedXattr).contains("metadata-lost"))
    }

    @Test("a --model that contradicts the metadata the tree carries is a model-contradiction",
          arguments: [(SecurityModel.mappedXattr, SecurityModel.passthrough), (.mappedXattr, .mappedFile), (.mappedFile, .mappedXattr), (.mappedFile, .none)])
    func contradiction(carried: SecurityModel, declared: SecurityModel) throws {
        let tree = try FixtureTree(carried)
        #expect(try verdicts(tree.root, model: declared, declared: declared) == ["model-contradiction"])
        #expect(try verdicts(tree.root, model: carried, declared: carried).isEmpty)
    }

    @Test("a conversion virtfs-convert recorded as under way decides detection before any sample")
    func interrupted() throws {
        let tree = try FixtureTree(.mappedXattr)
        tree.write(".virtfs-convert-state", "virtfs-convert from=mapped-xattr to=mapped-file\n")
        let detection = try detect(tree.root)
        #expect(detection.outcome == .interrupted(ConversionRecord(from: .mappedXattr, to: .mappedFile)))
        #expect(detection.model == nil)
        #expect(detection.explanation.contains("mapped-xattr") && detection.explanation.contains("mapped-file"))
    }

    @Test("metadata of both mapped models is mixed, and the explanation names a path of each")
    func mixed() throws {
        let tree = try FixtureTree(.mappedFile)
        for path in ["etc/passwd", "etc/group", "bin/sh", "home/alice/a", "dev/null"] {
            tree.setXattr(path, "user.virtfs.mode", [0xa4, 0x81, 0, 0])
        }
        let detection = try detect(tree.root)
        #expect(detection.outcome == .mixed)
        #expect(detection.explanation.contains(".virtfs_metadata") && detection.explanation.contains("user.virtfs.*"))
    }
}
