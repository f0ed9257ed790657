import CVirtFS
import Glibc
import Testing
import VirtFSTestSupport
@testable import VirtFSCore

/// Replays the host side of an export that a real QEMU guest wrote (testdata/golden/, captured
/// by tests/qemu/capture-golden) and checks, offline, that decoding gives what the guest's own
/// stat printed, and that encoding those views writes the bytes QEMU wrote.
@Suite struct GoldenVectors {
    struct Golden {
        struct HostObject {
            var path: [UInt8]
            var type: String
            var perms: mode_t
            var group: String
            var data: [UInt8]
            var xattrs: [(String, [UInt8])] = []
        }
        struct GuestLine {
            var path: [UInt8]
            var fields: [String]  // uid gid modehex majorhex minorhex size
        }
        var host: [HostObject] = []
        var guest: [GuestLine] = []

        init(_ text: String) {
            var index: [[UInt8]: Int] = [:]
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let f = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                switch f[0] {
                case "host":
                    index[Bytes.fromHex(f[1])!] = host.count
                    host.append(HostObject(path: Bytes.fromHex(f[1])!, type: f[2], perms: mode_t(f[3], radix: 8)!, group: f[4],
                                           data: f.count > 5 ? Bytes.fromHex(f[5]) ?? [] : []))
                case "xattr":
                    if let i = index[Bytes.fromHex(f[1])!] { host[i].xattrs.append((f[2], Bytes.fromHex(f[3])!)) }
                case "guest":
                    guest.append(GuestLine(path: Bytes.fromHex(f[1])!, fields: Array(f[2...])))
                default: break
                }
            }
        }

        /// Recreates the host objects below `root`, hard links as links.
        func materialize(_ root: String) {
            var firstOfGroup: [String: String] = [:]
            for o in host {
                let path = root + "/" + String(decoding: o.path, as: UTF8.self)
                path.withCString { p in
                    switch o.type {
                    case "dir": if o.path != [UInt8(ascii: ".")] { mkdir(p, 0o700) }
                    case "symlink": _ = String(decoding: o.data, as: UTF8.self).withCString { symlink($0, p) }
                    default:
                        if let first = firstOfGroup[o.group] {
                            link(first, p)
                        } else {
                            let fd = open(p, O_CREAT | O_WRONLY, 0o600)
                            _ = o.data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                            close(fd)
                            firstOfGroup[o.group] = path
                        }
                    }
                    if o.type != "symlink" { chmod(p, o.perms) }
                }
            }
            for o in host {
                let path = root + "/" + String(decoding: o.path, as: UTF8.self)
                for (name, value) in o.xattrs {
                    _ = value.withUnsafeBytes { lsetxattr(path, name, $0.baseAddress, value.count, 0) }
                }
            }
        }
    }

    static func load(_ model: SecurityModel) throws -> Golden {
        Golden(try readText(testdata("golden/\(model.rawValue).golden")))
    }

    @Test("decoding QEMU's own bytes gives what the guest's stat printed", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func decode(model: SecurityModel) throws {
        let golden = try Self.load(model)
        #expect(golden.guest.count >= 25, "the vector covers the scenario")
        let dir = TemporaryDirectory()
        golden.materialize(dir.path)
        let root = try Walker.exportRoot(dir.bytes)
        var compared = 0
        // Names that are not UTF-8 do not survive the String paths used to replay the vector;
        // the oracle suite covers them against the live guest.
        for line in golden.guest where Bytes.isUTF8(line.path) {
            let location = try Walker.inside(root, relative: Bytes.components(line.path), path: line.path)
            let view = try model.codec.decode(location.entry())
            let a = view.attributes
            var got = ["\(a.uid)", "\(a.gid)", String(a.mode, radix: 16), String(a.rdev.major, radix: 16), String(a.rdev.minor, radix: 16)]
            var want = Array(line.fields.prefix(5))
            if a.type != .directory {
                got.append("\(view.host.size)")
                want.append(line.fields[5])
            }
            #expect(got == want, "\(String(decoding: line.path, as: UTF8.self))")
            #expect(view.diagnostics.isEmpty, "\(view.diagnostics)")
            compared += 1
        }
        #expect(compared >= 25)
    }

    @Test("encoding the decoded views writes exactly the metadata QEMU wrote", arguments: [SecurityModel.mappedXattr, .mappedFile])
    func encode(model: SecurityModel) throws {
        let golden = try Self.load(model)
        let dir = TemporaryDirectory()
        golden.materialize(dir.path)
        let root = try Walker.exportRoot(dir.bytes)
        var compared = 0
        for line in golden.guest where Bytes.isUTF8(line.path) {
            let location = try Walker.inside(root, relative: Bytes.components(line.path), path: line.path)
            let entry = try location.entry()
            let attributes = try model.codec.decode(entry).attributes
            let isRoot = Bytes.components(line.path).isEmpty
            let hostPath: [UInt8]
            if model == .mappedXattr {
                hostPath = line.path
            } else {
                let components = Bytes.components(line.path)
                let parent = components.dropLast().reduce([UInt8(ascii: ".")]) { Bytes.join($0, $1) }
                hostPath = isRoot ? Array("./.virtfs_metadata_root".utf8)
                    : Bytes.join(Bytes.join(parent, MappedFileNames.metadataDirectory), components.last!)
            }
            let normalized = Bytes.join([UInt8(ascii: ".")], Bytes.components(hostPath).reduce([]) { Bytes.join($0, $1) })
            guard let object = golden.host.first(where: { $0.path == (hostPath == [UInt8(ascii: ".")] ? hostPath : normalized) }) else {
                Issue.record("no host object for \(String(decoding: hostPath, as: UTF8.self))")
                continue
            }
            if model == .mappedXattr {
                var want: [String: [UInt8]] = [
                    VirtfsXattr.uid: MappedXattrCodec.encodeID(attributes.uid),
                    VirtfsXattr.gid: MappedXattrCodec.encodeID(attributes.gid),
                    VirtfsXattr.mode: MappedXattrCodec.encodeMode(attributes.mode),
                ]
                if attributes.type.isSpecial { want[VirtfsXattr.rdev] = MappedXattrCodec.encodeRdev(attributes.rdev) }
                if let acl = attributes.accessACL { want[VirtfsXattr.aclAccess] = acl.xattrValue }
                if let acl = attributes.defaultACL { want[VirtfsXattr.aclDefault] = acl.xattrValue }
                for x in attributes.xattrs { want[String(decoding: x.name, as: UTF8.self)] = x.value }
                let got = Dictionary(object.xattrs, uniquingKeysWith: { a, _ in a })
                #expect(got == want, "\(String(decoding: line.path, as: UTF8.self))")
            } else {
                #expect(object.data == MappedFileCodec.metadata(for: attributes).serialized(),
                        "\(String(decoding: line.path, as: UTF8.self)): \(String(decoding: object.data, as: UTF8.self))")
            }
            compared += 1
        }
        #expect(compared >= 25)
    }
}
