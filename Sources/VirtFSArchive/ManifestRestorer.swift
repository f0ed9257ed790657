import CArchive
import Glibc
import VirtFSCore

/// Puts the guest view recorded in an mtree(5) manifest back onto an existing tree: the repair
/// after a `cp` or `rsync` that lost the model's metadata. An entry is restored only when its
/// host object still holds what the manifest describes (type as the model stores it, size and
/// sha256 of a file, target of a symlink); entries that differ or are missing are reported and
/// left alone. ACLs and user xattrs, which manifests do not record, are kept as they are.
public struct ManifestRestorer {
    public struct Options: Sendable {
        public var model: SecurityModel
        public var placement = HostPlacement()
        public var dryRun = false

        public init(model: SecurityModel) {
            self.model = model
        }
    }

    public struct Summary: Sendable {
        public var restored = 0
        public var unchanged = 0
        public var differing = 0
        public var missing = 0
        public var failures = 0
    }

    public enum Event {
        /// The entry's guest view was (or, dry-run, would be) changed to the manifest's.
        case restored(path: [UInt8], before: GuestAttributes, after: GuestAttributes)
        case unchanged(path: [UInt8])
        case differs(VirtFSError)
        case missing(VirtFSError)
        case failed(VirtFSError)
    }

    public let options: Options

    public init(options: Options) {
        self.options = options
    }

    public func run(_ manifest: ArchiveReader, onto root: Walker.Location, event: (Event) -> Void) -> Summary {
        var summary = Summary()
        let codec = options.model.codec(lenient: true)
        manifest.forEach({ member in
            do {
                var slash = false
                let parts = try Importer.components(of: member.path, leadingSlash: &slash)
                guard let wanted = member.attributes else {
                    throw VirtFSError.corrupt("mtree", path: member.path, "no type= for this entry")
                }
                let location = try Walker.inside(root, relative: parts, path: member.path)
                let entry: HostEntry
                do {
                    entry = try location.entry()
                } catch let error as VirtFSError where error.errno == ENOENT {
                    summary.missing += 1
                    event(.missing(.refused("restore", path: member.path, "in the manifest, not in the tree")))
                    return
                }
                if let difference = try difference(member, wanted, entry) {
                    summary.differing += 1
                    event(.differs(.refused("restore", path: member.path, difference)))
                    return
                }
                let current = try codec.decode(entry)
                var restored = current.attributes
                restored.type = wanted.type
                restored.uid = wanted.uid
                restored.gid = wanted.gid
                restored.rdev = wanted.type.hasDeviceNumber ? wanted.rdev : .zero
                restored.symlinkTarget = wanted.symlinkTarget
                if wanted.type == .symlink {
                    restored.accessACL = nil
                    restored.defaultACL = nil
                    restored.xattrs = []
                }
                // The manifest's mode is the guest's: an ACL kept from the tree follows it.
                restored = restored.changingPermissions(wanted.permissions)
                let mtime = member.mtime.flatMap { $0 == current.mtime ? nil : $0 }
                if restored == current.attributes && !current.hostFallback && mtime == nil {
                    summary.unchanged += 1
                    event(.unchanged(path: member.path))
                    return
                }
                if !options.dryRun {
                    try codec.update(restored, of: entry, placement: options.placement)
                    if let mtime {
                        try Sys.setTimes(entry.directory.fd, entry.isExportRoot ? [UInt8(ascii: ".")] : entry.name,
                                         atime: current.atime, mtime: mtime)
                    }
                }
                summary.restored += 1
                event(.restored(path: member.path, before: current.attributes, after: restored))
            } catch let error as VirtFSError {
                summary.failures += 1
                event(.failed(error.path.isEmpty ? error.at(member.path) : error))
            } catch {}
        }, failure: { error in
            summary.failures += 1
            event(.failed(error))
        })
        return summary
    }

    /// How the host object differs from what the manifest describes, in the model's storage
    /// terms; nil when it holds the same thing.
    func difference(_ member: ArchiveMember, _ wanted: GuestAttributes, _ entry: HostEntry) throws -> String? {
        guard let host = entry.stat.fileType else { return "unknown host file type" }
        let expectedHost: FileType = options.model.isMapped ? (wanted.type == .directory ? .directory : .regular) : wanted.type
        if host != expectedHost {
            return "the manifest has a \(wanted.type.keyword), stored as a host \(expectedHost.keyword) in \(options.model.rawValue); the tree has a host \(host.keyword)"
        }
        switch wanted.type {
        case .regular:
            if let size = member.size, size != entry.stat.size {
                return "content differs: \(entry.stat.size) bytes, the manifest has \(size)"
            }
            if let digest = member.sha256, try sha256(entry) != digest {
                return "content differs: sha256 does not match the manifest"
            }
        case .symlink:
            let target = options.model.isMapped ? try entry.readContent(limit: 4096).bytes : try entry.readLink()
            if target != (member.symlinkTarget ?? []) {
                return "symlink target differs: \(Bytes.shellEscaped(target)), the manifest has \(Bytes.shellEscaped(member.symlinkTarget ?? []))"
            }
        case .characterDevice, .blockDevice:
            if !options.model.isMapped && entry.stat.rdev != wanted.rdev {
                return "device \(entry.stat.rdev), the manifest has \(wanted.rdev)"
            }
        default:
            break
        }
        return nil
    }

    func sha256(_ entry: HostEntry) throws -> [UInt8] {
        let fd = try Sys.openAt(entry.directory.fd, entry.isExportRoot ? [UInt8(ascii: ".")] : entry.name, O_RDONLY | O_NONBLOCK)
        defer { Sys.close(fd) }
        guard let context = EVP_MD_CTX_new() else { throw VirtFSError.system("EVP_MD_CTX_new", path: entry.path, errno: ENOMEM) }
        defer { EVP_MD_CTX_free(context) }
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw VirtFSError.system("read", path: entry.path, errno: errno)
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, n) }
        }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return Array(digest.prefix(Int(length)))
    }
}

extension ManifestRestorer {
    /// Makes the working directory a new, already removed directory, in which no relative name
    /// resolves; returns a descriptor of the previous one for `leave`.
    public static func enterEmptyDirectory() throws -> Int32 {
        let saved = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        var template = Array("/tmp/virtfs-import.XXXXXX".utf8CString)
        guard saved >= 0, let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw VirtFSError.system("mkdtemp", errno: errno)
        }
        guard chdir(made) == 0 else { throw VirtFSError.system("chdir", errno: errno) }
        rmdir(made)
        return saved
    }

    public static func leave(_ saved: Int32) {
        _ = fchdir(saved)
        close(saved)
    }
}
