import Glibc
import VirtFSCore

/// Writes the guest's view of a tree (not the host's) as an archive or an mtree manifest: each
/// entry is decoded by the model's codec, and the archive member is that guest view, so a
/// mapped-xattr symlink is a symlink, a device is a device, and the owner is the guest's.
public struct Exporter {
    public struct Options: Sendable {
        public var model: SecurityModel
        public var oneFileSystem = false

        public init(model: SecurityModel) {
            self.model = model
        }
    }

    public struct Summary: Sendable {
        public var exported: [FileType: Int] = [:]
        public var bytes: UInt64 = 0
        public var failures = 0
        /// Entries whose xattrs or ACLs the format cannot keep.
        public var incomplete = 0

        public var total: Int { exported.values.reduce(0, +) }
    }

    public enum Event {
        case exported(GuestView)
        case warning(VirtFSError)
        case failed(VirtFSError)
    }

    public let options: Options

    public init(options: Options) {
        self.options = options
    }

    /// The member name of an entry: `.` for the root, `./PATH` below it, as bsdtar and
    /// mmdebstrap name the members of a root filesystem.
    static func memberName(_ path: [UInt8], rootPrefix: Int) -> [UInt8] {
        let relative = Bytes.components(Array(path.dropFirst(rootPrefix)))
        return relative.reduce([UInt8(ascii: ".")]) { Bytes.join($0, $1) }
    }

    public func run(_ root: Walker.Location, to writer: ArchiveWriter, event: (Event) -> Void) -> Summary {
        var summary = Summary()
        var walk = Walker.Options(recursive: true, oneFileSystem: options.oneFileSystem, model: options.model)
        walk.auditStorage = false
        // Byte-for-byte reproducible archives, whatever order the host filesystem lists names in.
        walk.sorted = true
        // A manifest is written as it is walked only in the order libarchive lists it in.
        walk.directoriesLast = writer.format == .mtree
        let codec = options.model.codec
        let rootPrefix = root.path.count
        func failed(_ error: VirtFSError) {
            summary.failures += 1
            event(.failed(error))
        }
        Walker(options: walk).walk(root, visit: { entry in
            let view: GuestView
            do throws(VirtFSError) {
                view = try codec.decode(entry)
            } catch {
                return failed(error.at(entry.path))
            }
            if view.type == .symlink && !view.symlinkReadable {
                event(.warning(.refused("export", path: entry.path, "a host symlink in a mapped export: the guest cannot read it (QEMU < 11), exported with its target")))
            }
            let a = view.attributes
            if a.type == .socket && writer.format != .mtree {
                // As bsdtar: a socket is a live endpoint, not data; tar and cpio have no type for it.
                summary.incomplete += 1
                return event(.warning(.refused("export", path: entry.path, "\(writer.format.rawValue) cannot hold a socket: skipped")))
            }
            let keeps = writer.format.keepsXattrs
            let member = ArchiveMember(
                path: Self.memberName(entry.path, rootPrefix: rootPrefix),
                type: a.type, permissions: a.permissions, uid: a.uid, gid: a.gid, rdev: a.rdev,
                size: a.type == .regular ? view.host.size : 0, symlinkTarget: a.symlinkTarget, mtime: view.host.mtime,
                xattrs: keeps ? a.xattrs : [], accessACL: keeps ? a.accessACL : nil, defaultACL: keeps ? a.defaultACL : nil)
            if !keeps {
                // Neither an mtree manifest nor cpio can hold them: each entry that loses some
                // is named, with what it loses, and counted.
                var lost = a.xattrs.map { Bytes.xattrName($0.name) }
                if a.accessACL.map({ !$0.isMinimal }) == true { lost.append("access ACL") }
                if a.defaultACL != nil { lost.append("default ACL") }
                if !lost.isEmpty {
                    summary.incomplete += 1
                    let instead = writer.format == .mtree ? " (a pax export records them, and virtfs-import --metadata-only restores them from it)" : ""
                    event(.warning(.refused("export", path: entry.path, "\(writer.format.rawValue) keeps no xattrs or ACLs: not exported: \(lost.joined(separator: ", "))\(instead)")))
                }
            }
            // Bytes are counted as they go into the output: a hard link's data is written once.
            var written = false
            do throws(VirtFSError) {
                // A directory's link count is the host's business (mapped-file adds one).
                try writer.write(member, identity: view.host.identity,
                                 nlink: a.type == .directory ? 2 : view.host.nlink, data: a.type == .regular ? { sink throws(VirtFSError) in
                    let fd = try Sys.openAt(entry.directory.fd, entry.name, O_RDONLY | O_NONBLOCK)
                    defer { Sys.close(fd) }
                    // What is read must be what was decoded, not something swapped in since.
                    guard try Sys.stat(fd: fd).identity == view.host.identity else {
                        throw VirtFSError.refused("open", path: entry.path, "file replaced while exporting")
                    }
                    try sink.copy(from: fd)
                    written = true
                } : nil)
            } catch {
                return failed(error.at(entry.path))
            }
            summary.exported[a.type, default: 0] += 1
            if written { summary.bytes += view.host.size }
            event(.exported(view))
        }, failure: failed)
        return summary
    }
}
