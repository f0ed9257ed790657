import Glibc
import Testing
@testable import VirtFSCore
import VirtFSTestSupport

/// Every ordered pair of models, in place and to a copy: the guest view of every entry of
/// testdata/trees/full.tree is the same before and after (the booted-guest check of the same
/// is tests/qemu/convert).
@Suite struct Conversions {
    static let pairs: [(SecurityModel, SecurityModel, Bool)] = {
        var out: [(SecurityModel, SecurityModel, Bool)] = []
        for a in SecurityModel.allCases { for b in SecurityModel.allCases where a != b { out += [(a, b, true), (a, b, false)] } }
        return out
    }()
    /// (from, to, in place, with the preflight's survey): in place both with the survey the
    /// command passes and with the run's own walk before it starts.
    static let surveyed = pairs.flatMap { $0.2 ? [($0.0, $0.1, true, false), ($0.0, $0.1, true, true)] : [($0.0, $0.1, false, false)] }

    func spec(for models: [SecurityModel]) throws -> TreeSpec {
        var text = try readText(testdata("trees/full.tree"))
        if models.contains(.none) {
            // A none export shows no ACLs: a tree that has some cannot keep its view there.
            text = text.replacingOccurrences(" acl=\"u::rwx,u:1000:r-x,g::r--,g:50:r-x,m::r-x,o::---\"", "")
                .replacingOccurrences(" acl=\"u::rwx,u:1000:rwx,g::rwx,m::rwx,o::---\" default-acl=\"u::rwx,u:1000:r-x,g::r-x,m::r-x,o::---\"", "")
        }
        return try TreeSpec(text: text)
    }

    struct Seen: Equatable {
        var attributes: GuestAttributes
        var size: UInt64
        var mtime: Int64
        var links: UInt64
    }

    func views(_ dir: String, _ model: SecurityModel) throws -> [[UInt8]: Seen] {
        let (views, errors) = try decodeTree(dir, model: model)
        #expect(errors.isEmpty, "\(errors)")
        return views.mapValues { v in
            var a = v.attributes
            a.xattrs.sort { $0.name.lexicographicallyPrecedes($1.name) }
            return Seen(attributes: a, size: v.type == .directory ? 0 : v.host.size, mtime: v.host.mtime.seconds, links: v.type == .directory ? 0 : v.host.nlink)
        }
    }

    @Test("the guest view survives every conversion", arguments: surveyed)
    func convert(from: SecurityModel, to: SecurityModel, inPlace: Bool, surveyed: Bool) throws {
        let dir = TemporaryDirectory()
        let source = dir.sub("source")
        try spec(for: [from, to]).materialize(at: Array(source.utf8), model: from, placement: HostPlacement(owner: (65534, 65534)))
        let before = try views(source, from)
        var options = Converter.Options(from: from, to: to)
        options.allowDevices = true
        options.allowSetuid = true
        options.placement = HostPlacement(owner: (65534, 65534))
        let converter = Converter(options: options)
        let root = try Walker.exportRoot(Array(source.utf8))
        var failures: [String] = []
        let survey = try #require(converter.preflight(root, inPlace: inPlace, report: { failures.append($0.description) }), "\(failures)")
        #expect(survey.complete == inPlace, "a fresh in-place run needs no walk of its own before it starts")
        let result: String
        if inPlace {
            let summary = try converter.inPlace(root, survey: surveyed ? survey : Converter.Survey()) {
                if case .failed(let e) = $0 { failures.append(e.description) }
            }
            #expect(summary.failures == 0)
            result = source
            #expect(access(source + "/.virtfs-convert-state", F_OK) != 0, "the state file is gone when done")
        } else {
            result = dir.sub("output")
            let summary = converter.copy(root, into: try Walker.exportRoot(Array(result.utf8))) { if case .failed(let e) = $0 { failures.append(e.description) } }
            #expect(summary.failures == 0)
            #expect(try views(source, from) == before, "the source is only read")
        }
        #expect(failures.isEmpty, "\(failures)")
        let after = try views(result, to)
        #expect(Set(after.keys) == Set(before.keys))
        for (path, seen) in before {
            #expect(after[path] == seen, "\(String(decoding: path, as: UTF8.self)): \(String(describing: after[path])) != \(seen)")
        }
    }
}
