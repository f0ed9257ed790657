import CArchive
import Glibc
import VirtFSCore

/// One member of an archive or manifest, in the guest's terms: what the entry is, not how any
/// model stores it. Names are raw bytes, as the archive holds them.
public struct ArchiveMember: Sendable {
    public var path: [UInt8]
    public var type: FileType?
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: DeviceNumber = .zero
    /// nil when the member does not say (an mtree entry without `size=`).
    public var size: UInt64?
    public var symlinkTarget: [UInt8]?
    /// The earlier member this one is a hard link of.
    public var hardlinkTarget: [UInt8]?
    /// The link count the archive records (cpio does; tar does not: 0).
    public var links: UInt32 = 0
    public var mtime: Timestamp?
    public var atime: Timestamp?
    /// Every xattr the archive carries, in any namespace (ACLs excluded: see below).
    public var xattrs: [Xattr] = []
    public var accessACL: ACL?
    public var defaultACL: ACL?
    /// A manifest's `sha256digest=`, raw bytes.
    public var sha256: [UInt8]?
    /// What the archive records for this member that could not be read as what it is (an ACL
    /// whose names have no numeric id and no host user, an ACL xattr that is not an ACL): the
    /// member comes without it, and a consumer reports it.
    public var unreadable: [String] = []
    /// Reading notes a consumer passes on without counting a loss (an ACL name resolved by the
    /// host's user database, as tar does when it extracts).
    public var notes: [String] = []

    /// The guest attributes this member describes, with only `user.*` xattrs: the namespaces a
    /// 9p guest can see.
    public var attributes: GuestAttributes? {
        guard let type else { return nil }
        return GuestAttributes(type: type, permissions: permissions, uid: uid, gid: gid, rdev: rdev,
                               symlinkTarget: type == .symlink ? (symlinkTarget ?? []) : nil,
                               accessACL: accessACL, defaultACL: defaultACL,
                               xattrs: xattrs.filter { $0.name.starts(with: Array("user.".utf8)) })
    }
}

/// libarchive's ACL entry tags for POSIX.1e's, both ways.
let archiveACLTags: [(tag: ACL.Tag, archive: Int32)] = [
    (.userObj, ARCHIVE_ENTRY_ACL_USER_OBJ), (.user, ARCHIVE_ENTRY_ACL_USER), (.groupObj, ARCHIVE_ENTRY_ACL_GROUP_OBJ),
    (.group, ARCHIVE_ENTRY_ACL_GROUP), (.mask, ARCHIVE_ENTRY_ACL_MASK), (.other, ARCHIVE_ENTRY_ACL_OTHER),
]

/// libarchive's ACL permission bits for the rwx bits of an ACL entry, both ways.
let archiveACLPermissions: [(bit: Int32, archive: Int32)] = [
    (4, ARCHIVE_ENTRY_ACL_READ), (2, ARCHIVE_ENTRY_ACL_WRITE), (1, ARCHIVE_ENTRY_ACL_EXECUTE),
]

/// Reads up to `count` bytes of `fd` into `buffer`, short only at the end of the file.
func readFull(_ fd: Int32, into buffer: inout [UInt8], count: Int, path: [UInt8]) throws(VirtFSError) -> Int {
    var total = 0
    while total < count {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, count - total) }
        if n < 0 && errno != EINTR { throw .system("read", path: path, errno: errno) }
        if n == 0 { break }
        total += max(n, 0)
    }
    return total
}

/// What `archive_*` calls report, as the toolkit's one error: libarchive's own message, with
/// the system's reason when a system call failed under it ("Write error: No space left on
/// device"), which libarchive's text does not always say.
func archiveError(_ archive: OpaquePointer?, _ operation: String, path: [UInt8] = []) -> VirtFSError {
    let code = archive.map { archive_errno($0) } ?? 0
    // libarchive's own codes for a bad format and a misuse are errno values that would read
    // as nonsense here.
    let systemCode = code > 0 && code != EILSEQ && code != EINVAL ? code : nil
    if let text = archive.flatMap({ archive_error_string($0) }).map({ String(cString: $0) }) {
        if let systemCode, let reason = strerror(systemCode).map({ String(cString: $0) }), !text.contains(reason) {
            return .corrupt(operation, path: path, text + ": " + reason)
        }
        return .corrupt(operation, path: path, text)
    }
    return systemCode.map { .system(operation, path: path, errno: $0) } ?? .corrupt(operation, path: path, "libarchive error")
}

/// Reads tar (ustar, pax, GNU), cpio, or an mtree(5) manifest, any compression, through
/// libarchive. Other formats libarchive knows (zip, iso9660, ...) are not rootfs formats and
/// are refused rather than guessed at.
public final class ArchiveReader: ContentSource, @unchecked Sendable {
    let archive: OpaquePointer
    let name: [UInt8]
    /// The archive file, opened here so that a failure is the system's reason ("open: No such
    /// file or directory"), not libarchive's "Failed to open"; -1 for standard input.
    let fd: Int32
    /// Warnings libarchive raised for the member last read (it still read it).
    public private(set) var warning: String?

    /// Bytes of the input read so far (compressed, as they are on disk), for progress.
    public var bytesRead: Int { Int(archive_filter_bytes(archive, -1)) }

    /// The input's size when it is a regular file (not a pipe), for a progress total.
    public var inputSize: Int? {
        guard let st = try? Sys.stat(fd: fd >= 0 ? fd : 0), st.fileType == .regular else { return nil }
        return Int(st.size)
    }

    /// Opens `path`, or standard input for nil or `-`. `manifests`: mtree(5) manifests are
    /// read too (what `--metadata-only` takes: a manifest, or the archive the tree came from).
    public init(path: [UInt8]?, manifests: Bool = false) throws(VirtFSError) {
        name = path ?? Array("-".utf8)
        if let path, path != Array("-".utf8) {
            // The archive is the user's operand: a symlink to it is followed, as tar does.
            fd = try Sys.openPath(path, O_RDONLY)
            if (try? Sys.stat(fd: fd))?.fileType == .directory {
                Sys.close(fd)
                throw .system("read", path: path, errno: EISDIR)
            }
        } else {
            fd = -1
        }
        guard let archive = archive_read_new() else {
            if fd >= 0 { Sys.close(fd) }
            throw VirtFSError.system("archive_read_new", errno: ENOMEM)
        }
        self.archive = archive
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        archive_read_support_format_gnutar(archive)
        archive_read_support_format_cpio(archive)
        if manifests { archive_read_support_format_mtree(archive) }
        let status = archive_read_open_fd(archive, fd >= 0 ? fd : 0, 1 << 16)
        if status != ARCHIVE_OK {
            // deinit frees the archive: every stored property is set.
            throw archiveError(archive, "archive_read_open", path: name)
        }
    }

    deinit {
        archive_read_free(archive)
        if fd >= 0 { Sys.close(fd) }
    }

    /// The archive's format as libarchive names it (`POSIX pax interchange format`, ...),
    /// known once the first member has been read.
    public var formatName: String {
        archive_format_name(archive).map { String(cString: $0) } ?? "unknown"
    }

    /// Whether what is being read is an mtree(5) manifest (digests, no data, no xattrs or ACLs)
    /// rather than an archive, known once the first member has been read.
    public var isManifest: Bool { archive_format(archive) & ARCHIVE_FORMAT_BASE_MASK == ARCHIVE_FORMAT_MTREE }
    /// Whether what is being read is a cpio archive, known once the first member has been read.
    public var isCpio: Bool { archive_format(archive) & ARCHIVE_FORMAT_BASE_MASK == ARCHIVE_FORMAT_CPIO }

    /// Whether the current member's data is exactly what `fd` holds from its current offset to
    /// its end, compared block by block as the member streams by (no digest, nothing held).
    public func dataEquals(_ fd: Int32, path: [UInt8]) throws(VirtFSError) -> Bool {
        var archived = [UInt8](repeating: 0, count: 1 << 16), host = archived
        while true {
            let n = archived.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
            if n == ARCHIVE_WARN { continue }
            if n < 0 { throw archiveError(archive, "archive_read_data", path: path) }
            if n == 0 { return try readFull(fd, into: &host, count: 1, path: path) == 0 }
            if try readFull(fd, into: &host, count: n, path: path) != n || memcmp(archived, host, n) != 0 { return false }
        }
    }

    /// The next member, or nil at the end. A member libarchive could read only in part still
    /// comes back, with `warning` set.
    public func next() throws(VirtFSError) -> ArchiveMember? {
        var e: OpaquePointer?
        warning = nil
        let status = archive_read_next_header(archive, &e)
        if status == ARCHIVE_EOF { return nil }
        if status == ARCHIVE_WARN {
            warning = archive_error_string(archive).map { String(cString: $0) }
        }
        guard status >= ARCHIVE_WARN, let e else { throw archiveError(archive, "archive_read_next_header", path: name) }
        return ArchiveMember(entry: e, manifest: isManifest)
    }

    /// Calls `body` with every member in turn. A member that cannot be read ends the walk (an
    /// archive has no index to resume from) and goes to `failure`.
    public func forEach(_ body: (ArchiveMember) -> Void, failure: (VirtFSError) -> Void) {
        do {
            while let member = try next() { body(member) }
        } catch {
            failure(error)
        }
    }

    /// Streams the current member's data into `fd`, the new, empty regular file an import
    /// creates for it: libarchive's own blocks, each written at its offset, so that holes stay
    /// holes. (Not `archive_read_data_into_fd`, which fstat()s the file for every member to learn
    /// what this one always is.)
    public func write(to fd: Int32, path: [UInt8]) throws(VirtFSError) {
        var block: UnsafeRawPointer?, size = 0, offset: Int64 = 0, end: Int64 = 0
        while case let status = archive_read_data_block(archive, &block, &size, &offset), status != ARCHIVE_EOF {
            // A warning ends the data as it always has: what was read stays.
            if status == ARCHIVE_WARN { return }
            if status < ARCHIVE_WARN { throw archiveError(archive, "archive_read_data", path: path) }
            var done = 0
            while done < size, let block {
                let n = pwrite(fd, block + done, size - done, off_t(offset) + off_t(done))
                if n < 0 && errno != EINTR { throw .system("write", path: path, errno: errno) }
                done += max(n, 0)
            }
            end = max(end, offset + Int64(size))
        }
        // At the end libarchive gives the member's size: a hole at the end is a hole too.
        while offset > end && ftruncate(fd, off_t(offset)) != 0 {
            if errno != EINTR { throw .system("ftruncate", path: path, errno: errno) }
        }
    }
}

extension ArchiveMember {
    init(entry e: OpaquePointer, manifest: Bool) {
        func bytes(_ p: UnsafePointer<CChar>?) -> [UInt8]? {
            guard let p else { return nil }
            return Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
        }
        path = bytes(archive_entry_pathname(e)) ?? bytes(archive_entry_pathname_utf8(e)) ?? []
        let filetype = UInt32(archive_entry_filetype(e))
        type = filetype == 0 ? nil : FileType(mode: filetype)
        permissions = UInt32(archive_entry_perm(e)) & 0o7777
        uid = UInt32(truncatingIfNeeded: archive_entry_uid(e))
        gid = UInt32(truncatingIfNeeded: archive_entry_gid(e))
        rdev = DeviceNumber(major: UInt32(truncatingIfNeeded: archive_entry_rdevmajor(e)),
                            minor: UInt32(truncatingIfNeeded: archive_entry_rdevminor(e)))
        size = archive_entry_size_is_set(e) != 0 ? UInt64(max(0, archive_entry_size(e))) : nil
        symlinkTarget = bytes(archive_entry_symlink(e)) ?? bytes(archive_entry_symlink_utf8(e))
        hardlinkTarget = bytes(archive_entry_hardlink(e)) ?? bytes(archive_entry_hardlink_utf8(e))
        links = archive_entry_nlink(e)
        func time(_ set: Int32, _ seconds: time_t, _ nanoseconds: Int) -> Timestamp? {
            set == 0 ? nil : Timestamp(seconds: Int64(seconds), nanoseconds: UInt32(clamping: nanoseconds))
        }
        mtime = time(archive_entry_mtime_is_set(e), archive_entry_mtime(e), archive_entry_mtime_nsec(e))
        atime = time(archive_entry_atime_is_set(e), archive_entry_atime(e), archive_entry_atime_nsec(e))
        var raw: [Xattr] = []
        var name: UnsafePointer<CChar>?, value: UnsafeRawPointer?, length = 0
        archive_entry_xattr_reset(e)
        while archive_entry_xattr_next(e, &name, &value, &length) == ARCHIVE_OK {
            guard let name else { continue }
            raw.append(Xattr(name: bytes(name)!, value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []))
        }
        xattrs = Self.distinct(raw)
        // GNU tar --xattrs-include='*' (and bsdtar re-archiving such a member) keeps ACLs as the
        // kernel's xattr blobs, with numeric ids: they are the ACLs, and win over a SCHILY.acl
        // text of the same member, which holds the same ACL with names.
        var fromXattrs: [Int32: ACL] = [:]
        for (attribute, type) in [(HostACLXattr.access, ARCHIVE_ENTRY_ACL_TYPE_ACCESS), (HostACLXattr.default, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT)] {
            let name = Array(attribute.utf8)
            guard let x = xattrs.first(where: { $0.name == name }) else { continue }
            xattrs.removeAll { $0.name == name }
            do {
                let acl = try ACL(xattr: x.value, attribute: attribute)
                if type == ARCHIVE_ENTRY_ACL_TYPE_DEFAULT || !acl.isMinimal { fromXattrs[type] = acl }
            } catch let error {
                unreadable.append("\(attribute) (\(error.detail))")
            }
        }
        accessACL = fromXattrs[ARCHIVE_ENTRY_ACL_TYPE_ACCESS] ?? acl(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS)
        if let mask = accessACL?.entries.first(where: { $0.tag == .mask }) {
            // With a mask, the guest's group permission bits are the mask, not group::.
            permissions = (permissions & ~0o070) | (UInt32(mask.permissions) << 3)
        }
        defaultACL = fromXattrs[ARCHIVE_ENTRY_ACL_TYPE_DEFAULT] ?? acl(e, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT)
        if manifest, let digest = archive_entry_digest(e, ARCHIVE_ENTRY_DIGEST_SHA256) {
            let raw = Array(UnsafeBufferPointer(start: digest, count: 32))
            // libarchive leaves the digest zeroed when the manifest has none.
            if raw.contains(where: { $0 != 0 }) { sha256 = raw }
        }
    }

    /// The member's xattrs, each once. libarchive hands an xattr that a pax header names twice
    /// (bsdtar writes both `LIBARCHIVE.xattr.NAME` and `SCHILY.xattr.NAME`) back twice, and
    /// writes the SCHILY copy of a name with bytes outside printable ASCII %-encoded, which it
    /// then reads back literally: that copy is the same xattr, not another one.
    static func distinct(_ raw: [Xattr]) -> [Xattr] {
        var out: [Xattr] = []
        for x in raw where !out.contains(x) {
            out.append(x)
        }
        let encoded = Set(out.filter { percentEncoded($0.name) != $0.name }.map { Xattr(name: percentEncoded($0.name), value: $0.value) })
        return out.filter { !encoded.contains($0) }
    }

    /// A name as libarchive's pax writer %-encodes it.
    static func percentEncoded(_ name: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for b in name {
            if b <= 0x20 || b >= 0x7f || b == UInt8(ascii: "%") || b == UInt8(ascii: "=") {
                let hex = Array("0123456789ABCDEF".utf8)
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            } else {
                out.append(b)
            }
        }
        return out
    }

    /// A POSIX.1e ACL of one type from the archive's ACL records (SCHILY.acl, bsdtar's), nil
    /// when the archive has none of this type. Ids are numeric: names in an archive belong to
    /// the image. GNU tar writes names without ids; those are resolved as tar resolves them
    /// when it extracts, by the host's user database, and said so; one that the host cannot
    /// resolve makes the ACL unreadable.
    mutating func acl(_ e: OpaquePointer, _ type: Int32) -> ACL? {
        let count = archive_entry_acl_reset(e, type)
        // An access ACL is always reported as the three entries of the mode: only more is an ACL.
        guard count > (type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS ? 3 : 0) else { return nil }
        let kind = type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS ? "access" : "default"
        var entries: [ACL.Entry] = []
        var entryType: Int32 = 0, permset: Int32 = 0, tag: Int32 = 0, qualifier: Int32 = 0
        var name: UnsafePointer<CChar>?
        while archive_entry_acl_next(e, type, &entryType, &permset, &tag, &qualifier, &name) == ARCHIVE_OK {
            let perms = UInt16(archiveACLPermissions.reduce(0) { $0 | (permset & $1.archive != 0 ? $1.bit : 0) })
            var id = UInt32(bitPattern: qualifier)
            if (tag == ARCHIVE_ENTRY_ACL_USER || tag == ARCHIVE_ENTRY_ACL_GROUP) && qualifier == -1 {
                let user = tag == ARCHIVE_ENTRY_ACL_USER
                let text = name.map { String(cString: $0) } ?? ""
                let found: UInt32? = user ? getpwnam(text).map { $0.pointee.pw_uid } : getgrnam(text).map { $0.pointee.gr_gid }
                guard let found else {
                    unreadable.append("\(kind) ACL (entry \(user ? "user" : "group"):\(text) has no numeric id, and the host has no such \(user ? "user" : "group"))")
                    return nil
                }
                notes.append("\(kind) ACL entry \(user ? "user" : "group"):\(text) has no numeric id: the host's \(found) taken, as tar does")
                id = found
            }
            guard let aclTag = archiveACLTags.first(where: { $0.archive == tag })?.tag else { continue }
            let named = aclTag == .user || aclTag == .group
            entries.append(.init(tag: aclTag, permissions: perms, qualifier: named ? id : nil))
        }
        return ACL(entries: entries.sorted { ($0.tag.rawValue, $0.qualifier ?? 0) < ($1.tag.rawValue, $1.qualifier ?? 0) })
    }
}

/// Writes tar, pax, cpio or an mtree(5) manifest through libarchive, to a file or stdout.
public final class ArchiveWriter {
    public enum Format: String, Sendable, CaseIterable {
        /// POSIX tar: ustar headers, with pax extended headers where a member needs them
        /// (long names, xattrs, ACLs, large ids) — what bsdtar writes by default.
        case tar
        /// pax: a pax extended header for every member.
        case pax
        /// POSIX.1 (odc) cpio: no xattrs or ACLs, 18-bit ids and devices.
        case cpio
        /// An mtree(5) manifest: type, mode, uid, gid, device, link target, size, time, sha256.
        case mtree

        var keepsXattrs: Bool { self == .tar || self == .pax }
    }

    var archive: OpaquePointer
    public let format: Format
    let resolver: OpaquePointer
    let name: [UInt8]
    let output: Output

    public init(path: [UInt8]?, format: Format) throws(VirtFSError) {
        name = path ?? Array("-".utf8)
        self.format = format
        output = try Output(path: path.flatMap { $0 == Array("-".utf8) ? nil : $0 })
        archive = try Self.open(format, name: name, output)
        guard let resolver = archive_entry_linkresolver_new() else {
            archive_write_free(archive)
            throw .system("archive_entry_linkresolver_new", errno: ENOMEM)
        }
        self.resolver = resolver
        archive_entry_linkresolver_set_strategy(resolver, archive_format(archive))
    }

    deinit {
        archive_write_free(archive)
        archive_entry_linkresolver_free(resolver)
    }

    /// A libarchive writer of `format` into `output`.
    static func open(_ format: Format, name: [UInt8], _ output: Output) throws(VirtFSError) -> OpaquePointer {
        guard let archive = archive_write_new() else { throw .system("archive_write_new", errno: ENOMEM) }
        var status: Int32
        switch format {
        case .tar: status = archive_write_set_format_pax_restricted(archive)
        case .pax: status = archive_write_set_format_pax(archive)
        case .cpio: status = archive_write_set_format_cpio(archive)
        case .mtree:
            status = archive_write_set_format_mtree(archive)
            if status == ARCHIVE_OK {
                status = archive_write_set_options(archive, "mtree:!uname,mtree:!gname,mtree:!flags,mtree:!nlink,mtree:sha256")
            }
        }
        if status == ARCHIVE_OK { archive_write_set_bytes_in_last_block(archive, 1) }
        if status == ARCHIVE_OK {
            status = archive_write_open(archive, Unmanaged.passUnretained(output).toOpaque(), nil, { _, client, buffer, length in
                Unmanaged<Output>.fromOpaque(client!).takeUnretainedValue().write(buffer, length)
            }, nil)
        }
        if status != ARCHIVE_OK {
            let error = archiveError(archive, "archive_write_open", path: name)
            archive_write_free(archive)
            throw error
        }
        return archive
    }

    /// Where the archive goes, written by the toolkit rather than libarchive, because an mtree
    /// manifest is written in parts: libarchive's mtree writer keeps every entry until it is
    /// closed, to list them in its order (a directory, its other entries by name, then its
    /// subdirectories), memory that grows with the tree. Walked in that same order
    /// (`Walker.Options.directoriesLast`), the manifest is written one directory at a time
    /// instead: each directory's member starts a new writer, whose output follows the last
    /// one's without its own `#mtree` line. The text stays libarchive's own, byte for byte.
    final class Output {
        let fd: Int32
        /// Bytes of the current writer's output still to drop (a manifest part's `#mtree` line).
        var skip = 0
        /// The errno of a failed write.
        var failure: Int32 = 0

        init(path: [UInt8]?) throws(VirtFSError) {
            fd = try path.map { p throws(VirtFSError) in try Sys.openAt(AT_FDCWD, p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o666) } ?? 1
        }

        deinit { if fd != 1 { Sys.close(fd) } }

        static let header = Array("#mtree\n".utf8)

        /// The error to report instead of libarchive's, when writing failed.
        func error(_ name: [UInt8]) -> VirtFSError? {
            failure == 0 ? nil : VirtFSError.system("write", path: name, errno: failure)
        }

        func write(_ buffer: UnsafeRawPointer?, _ length: Int) -> Int {
            var bytes = UnsafeRawBufferPointer(start: buffer, count: length)
            let dropped = min(skip, bytes.count)
            skip -= dropped
            bytes = UnsafeRawBufferPointer(rebasing: bytes[dropped...])
            while !bytes.isEmpty {
                let n = Glibc.write(fd, bytes.baseAddress, bytes.count)
                if n < 0 && errno != EINTR {
                    failure = errno
                    return -1
                }
                bytes = UnsafeRawBufferPointer(rebasing: bytes[max(n, 0)...])
            }
            return length
        }
    }

    /// mtree: ends the manifest's current part (one directory and its other entries) and
    /// starts the next.
    func nextManifestPart() throws(VirtFSError) {
        guard format == .mtree else { return }
        if archive_write_close(archive) != ARCHIVE_OK {
            throw failure("archive_write_close", name)
        }
        archive_write_free(archive)
        output.skip = Output.header.count
        archive = try Self.open(format, name: name, output)
    }

    /// Writes one member. `identity` and `nlink` let hard links become link members;
    /// `data(fd)` is called only when the member's data belongs in the archive, and writes it
    /// through the given sink.
    public func write(_ member: ArchiveMember, identity: FileIdentity?, nlink: UInt64,
                      data: ((inout DataSink) throws(VirtFSError) -> Void)?) throws(VirtFSError) {
        // An output that failed stays failed: each member after says so.
        if let error = output.error(name) { throw error }
        guard let created = archive_entry_new2(archive) else { throw VirtFSError.system("archive_entry_new", errno: ENOMEM) }
        member.fill(created)
        // linkify may hand back another entry, or a spare one: free whatever is left at the end.
        var e: OpaquePointer? = created
        var spare: OpaquePointer?
        defer {
            if let e { archive_entry_free(e) }
            if let spare { archive_entry_free(spare) }
        }
        archive_entry_set_nlink(e, UInt32(truncatingIfNeeded: nlink))
        // odc cpio has room for 18-bit inode numbers, which libarchive hands out one per member
        // that has one: a member with one name goes without (readers link only members whose
        // link count is above 1), so the limit is on directories and hard-linked inodes, not on
        // the tree's size.
        if let identity, format != .cpio || nlink > 1 {
            archive_entry_set_dev(e, dev_t(identity.device.glibc))
            archive_entry_set_ino64(e, Int64(bitPattern: identity.inode))
        }
        // A manifest lists every name with its own size and digest; archives store data once.
        if member.type != .directory && nlink > 1 && format != .mtree {
            archive_entry_linkify(resolver, &e, &spare)
        }
        guard let entry = e else { return }
        if member.type == .directory && member.path != [UInt8(ascii: ".")] { try nextManifestPart() }
        let status = archive_write_header(archive, entry)
        if status == ARCHIVE_FATAL || status == ARCHIVE_FAILED {
            throw failure("archive_write_header", member.path)
        }
        // A link member (or a format that keeps no data for it) has size 0 now.
        if let data, archive_entry_size(entry) > 0 {
            var sink = DataSink(writer: self, path: member.path)
            try data(&sink)
        }
        if archive_write_finish_entry(archive) == ARCHIVE_FATAL {
            throw failure("archive_write_finish_entry", member.path)
        }
    }

    public struct DataSink {
        let writer: ArchiveWriter
        let path: [UInt8]

        /// Streams everything readable from `fd` into the current member.
        public mutating func copy(from fd: Int32) throws(VirtFSError) {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while case let n = try readFull(fd, into: &buffer, count: buffer.count, path: path), n > 0 {
                try write(buffer, n)
            }
        }

        public mutating func append(_ bytes: [UInt8]) throws(VirtFSError) { try write(bytes, bytes.count) }

        func write(_ bytes: UnsafeRawPointer, _ count: Int) throws(VirtFSError) {
            if archive_write_data(writer.archive, bytes, count) < 0 { throw writer.failure("archive_write_data", path) }
        }
    }

    /// Why libarchive failed: the output's own error first (libarchive's text does not say it).
    func failure(_ operation: String, _ path: [UInt8]) -> VirtFSError {
        output.error(name) ?? archiveError(archive, operation, path: path)
    }

    public func close() throws(VirtFSError) {
        if archive_write_close(archive) != ARCHIVE_OK {
            throw failure("archive_write_close", name)
        }
    }
}

extension ArchiveMember {
    func fill(_ e: OpaquePointer) {
        func withC<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
            (bytes + [0]).withUnsafeBufferPointer { p in p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count, body) }
        }
        withC(path) { archive_entry_copy_pathname(e, $0) }
        if let type { archive_entry_set_filetype(e, type.rawValue) }
        archive_entry_set_perm(e, mode_t(permissions))
        archive_entry_set_uid(e, Int64(uid))
        archive_entry_set_gid(e, Int64(gid))
        if let type, type.hasDeviceNumber {
            archive_entry_set_rdevmajor(e, dev_t(rdev.major))
            archive_entry_set_rdevminor(e, dev_t(rdev.minor))
        }
        archive_entry_set_size(e, Int64(type == .regular ? (size ?? 0) : 0))
        if let symlinkTarget { withC(symlinkTarget) { archive_entry_copy_symlink(e, $0) } }
        if let hardlinkTarget { withC(hardlinkTarget) { archive_entry_copy_hardlink(e, $0) } }
        if let mtime { archive_entry_set_mtime(e, time_t(mtime.seconds), Int(mtime.nanoseconds)) }
        for x in xattrs {
            withC(x.name) { n in x.value.withUnsafeBytes { archive_entry_xattr_add_entry(e, n, $0.baseAddress, $0.count) } }
        }
        for (acl, type) in [(accessACL, ARCHIVE_ENTRY_ACL_TYPE_ACCESS), (defaultACL, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT)] {
            guard let acl, type == ARCHIVE_ENTRY_ACL_TYPE_DEFAULT || !acl.isMinimal else { continue }
            for entry in acl.entries {
                let tag = archiveACLTags.first { $0.tag == entry.tag }!.archive
                let perms = archiveACLPermissions.reduce(0) { $0 | (Int32(entry.permissions) & $1.bit != 0 ? $1.archive : 0) }
                archive_entry_acl_add_entry(e, type, perms, tag, Int32(bitPattern: entry.qualifier ?? UInt32(bitPattern: -1)), nil)
            }
        }
        // libarchive keeps the owner-class entries in the mode (group bits = group::, as bsdtar
        // archives them); the reader puts the mask back into the mode.
    }
}
