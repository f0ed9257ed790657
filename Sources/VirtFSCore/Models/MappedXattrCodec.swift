/// Names of the xattrs QEMU's mapped-xattr model keeps guest metadata in.
public enum VirtfsXattr {
    public static let prefix = "user.virtfs."
    public static let uid = "user.virtfs.uid"
    public static let gid = "user.virtfs.gid"
    public static let mode = "user.virtfs.mode"
    public static let rdev = "user.virtfs.rdev"
    public static let aclAccess = "user.virtfs.system.posix_acl_access"
    public static let aclDefault = "user.virtfs.system.posix_acl_default"
}

let virtfsPrefix = Array(VirtfsXattr.prefix.utf8)

/// `security_model=mapped-xattr`: the guest's uid, gid, mode and rdev in `user.virtfs.*` xattrs
/// on a host regular file or directory; ACLs in `user.virtfs.system.posix_acl_*`.
///
/// QEMU (`local_lstat`) lstat()s the host object, then overrides each field independently with
/// the xattr when `getxattr` into a field-sized buffer returns more than 0 bytes: a longer value
/// fails with ERANGE and leaves the host value; a shorter one is used with undefined high bytes.
public struct MappedXattrCodec: ModelCodec {
    public var model: SecurityModel { .mappedXattr }
    /// Lenient decoding (for checking and repair) never throws on corrupt values: undefined
    /// fields read as absent and a mode without a valid type takes the host object's.
    public var lenient: Bool

    public init(lenient: Bool = false) {
        self.lenient = lenient
    }

    /// How one `user.virtfs.*` value reads.
    public enum Field<Value: Equatable>: Equatable {
        case absent
        case value(Value, Source)
        /// QEMU ignores it (longer than the field, or empty) and the guest sees the host value.
        case ignored(String)
        /// QEMU would read undefined bytes: no one can say what the guest sees.
        case undefined(String)
    }

    /// `user.virtfs.uid` / `.gid`: 4 bytes little-endian on every host.
    public static func decodeID(_ bytes: [UInt8]?) -> Field<UInt32> {
        decodeField(bytes, linux: 4) { .value(Bytes.readLittle($0[...], as: UInt32.self), .xattr) }
    }

    /// `user.virtfs.mode`: the full st_mode, 4 bytes on Linux hosts, 2 on macOS hosts.
    public static func decodeMode(_ bytes: [UInt8]?) -> Field<UInt32> {
        decodeField(bytes, linux: 4, macOS: 2) {
            $0.count == 4 ? .value(Bytes.readLittle($0[...], as: UInt32.self), .xattr) : .value(UInt32(Bytes.readLittle($0[...], as: UInt16.self)), .xattrMacOS)
        }
    }

    /// `user.virtfs.rdev`: glibc `makedev()` in 8 bytes on Linux hosts; Darwin `maj<<24|min` in
    /// 4 bytes on macOS hosts. A Linux guest keeps the low 32 bits.
    public static func decodeRdev(_ bytes: [UInt8]?) -> Field<DeviceNumber> {
        decodeField(bytes, linux: 8, macOS: 4) {
            $0.count == 8 ? .value(DeviceNumber(guestKernel: Bytes.readLittle($0[...], as: UInt64.self)), .xattr)
                : .value(DeviceNumber(darwin: Bytes.readLittle($0[...], as: UInt32.self)), .xattrMacOS)
        }
    }

    /// What QEMU makes of a value it reads as `linux` bytes (or as `macOS` bytes in that layout):
    /// shorter values leave high bytes undefined, empty and longer ones are ignored.
    static func decodeField<V>(_ bytes: [UInt8]?, linux: Int, macOS: Int? = nil, value: ([UInt8]) -> Field<V>) -> Field<V> {
        guard let bytes else { return .absent }
        if bytes.count == linux || bytes.count == macOS { return value(bytes) }
        if bytes.isEmpty { return .ignored("empty value; QEMU uses the host's") }
        let expected = "expected \(linux)" + (macOS.map { " (Linux) or \($0) (macOS)" } ?? "")
        return bytes.count < linux ? .undefined("value is \(bytes.count) bytes; \(expected) (QEMU reads undefined high bytes)")
            : .ignored("value is \(bytes.count) bytes; expected \(linux) (QEMU ignores it and uses the host's)")
    }

    public static func encodeID(_ id: UInt32) -> [UInt8] { Bytes.little(id) }
    public static func encodeMode(_ mode: UInt32) -> [UInt8] { Bytes.little(mode) }
    public static func encodeRdev(_ dev: DeviceNumber) -> [UInt8] { Bytes.little(dev.glibc) }

    public func decode(_ entry: HostEntry) throws(VirtFSError) -> GuestView {
        let hostType = try entry.fileType()
        var view = GuestView(path: entry.path, model: model, host: entry.stat, type: hostType)
        let names = try entry.xattrNames()
        func read(_ attribute: [UInt8]) throws(VirtFSError) -> [UInt8]? {
            names.contains(attribute) ? try entry.xattr(raw: attribute) : nil
        }
        func apply<V>(_ field: Field<V>, _ attribute: [UInt8], set: (V, Source) -> Void) throws(VirtFSError) {
            switch field {
            case .absent: break
            case .value(let v, let source): set(v, source)
            case .ignored(let why):
                view.diagnostics.append(VirtFSError.corrupt("decode", path: entry.path, attribute: attribute, why).found(.valueIgnored))
            case .undefined(let why):
                let error = VirtFSError.corrupt("decode", path: entry.path, attribute: attribute, why).found(.valueUndefined)
                guard lenient else { throw error }
                view.diagnostics.append(error)
            }
        }
        let field = Self.field
        try apply(Self.decodeID(read(field.uid)), field.uid) { view.attributes.uid = $0; view.provenance.uid = $1 }
        try apply(Self.decodeID(read(field.gid)), field.gid) { view.attributes.gid = $0; view.provenance.gid = $1 }
        var mode: (UInt32, Source)?
        try apply(Self.decodeMode(read(field.mode)), field.mode) { mode = ($0, $1) }
        try apply(Self.decodeRdev(read(field.rdev)), field.rdev) { view.attributes.rdev = $0; view.provenance.rdev = $1 }
        if let (mode, source) = mode {
            try entry.applyMappedMode(mode, from: source, attribute: field.mode, shown: "mode 0\(String(mode, radix: 8))",
                                      to: &view, hostType: hostType, lenient: lenient)
        }
        try entry.finishMappedView(&view, hostType: hostType)
        try entry.applyXattrs(names, acls: (field.aclAccess, field.aclDefault), hidingVirtfs: true, to: &view)
        if view.attributes.accessACL != nil || view.attributes.defaultACL != nil { view.provenance.acl = .xattr }
        return view
    }

    public func begin(_ attributes: GuestAttributes, named name: [UInt8], in directory: DirectoryContext,
                      content: Content, placement: HostPlacement) throws(VirtFSError) -> CreateCompletion {
        let object = try createMappedHostObject(attributes, named: name, in: directory, content: content, placement: placement)
        // (A new object has no user.* xattrs: no inheritance makes them.)
        return { () throws(VirtFSError) in try write(attributes, to: object(), fresh: true) }
    }

    public func update(_ attributes: GuestAttributes, of entry: HostEntry, placement: HostPlacement) throws(VirtFSError) {
        try write(attributes, to: entry)
    }

    /// Writes every field. The mode goes last: its presence marks an entry whose metadata is
    /// complete, which is what an interrupted virtfs-convert relies on. rdev is written only
    /// for the types mknod makes, as QEMU does.
    func write(_ attributes: GuestAttributes, to entry: HostEntry, fresh: Bool = false) throws(VirtFSError) {
        try writeACLs(attributes, to: entry, accessName: Self.field.aclAccess, defaultName: Self.field.aclDefault, fresh: fresh)
        try writeUserXattrs(attributes, to: entry, refusingVirtfs: true)
        if attributes.type.isSpecial {
            try entry.setXattr(raw: Self.field.rdev, Self.encodeRdev(attributes.type.hasDeviceNumber ? attributes.rdev : .zero))
        } else if !fresh {
            try entry.removeXattr(raw: Self.field.rdev)
        }
        try entry.setXattr(raw: Self.field.uid, Self.encodeID(attributes.uid))
        try entry.setXattr(raw: Self.field.gid, Self.encodeID(attributes.gid))
        try entry.setXattr(raw: Self.field.mode, Self.encodeMode(attributes.mode))
    }

    /// The fields' names as the system calls take them, made once rather than per entry.
    static let field = (uid: Array(VirtfsXattr.uid.utf8), gid: Array(VirtfsXattr.gid.utf8),
                        mode: Array(VirtfsXattr.mode.utf8), rdev: Array(VirtfsXattr.rdev.utf8),
                        aclAccess: Array(VirtfsXattr.aclAccess.utf8), aclDefault: Array(VirtfsXattr.aclDefault.utf8))

    public func holdsMetadata(xattr name: [UInt8]) -> Bool { name.starts(with: virtfsPrefix) }
    public var metadataForgeable: Bool { true }
    public var storageDescription: String { "user.virtfs.* xattrs" }

    /// Any of the owner and mode fields, which QEMU writes on every object it creates.
    public func carriesMetadata(_ entry: HostEntry) -> Bool {
        ((try? entry.xattrNames()) ?? []).contains(where: Self.ownerAndMode.contains)
    }
    static let ownerAndMode = [field.uid, field.gid, field.mode]

    /// A device number is kept only on the types mknod makes.
    public func keeps(_ attributes: GuestAttributes, host: HostStat) -> Bool {
        let rdev = attributes.type.isSpecial
            ? DeviceNumber(guestKernel: (attributes.type.hasDeviceNumber ? attributes.rdev : .zero).glibc) : host.rdev
        return rdev == attributes.rdev
    }

    /// The mode is written last: an entry that carries it has all its metadata.
    public func hasMetadata(_ entry: HostEntry) -> Bool {
        ((try? entry.xattrNames()) ?? []).contains(Self.field.mode)
    }

    /// (Made once: settle runs for every entry of a conversion.)
    static let hostACLs = [HostACLXattr.bytes.access, HostACLXattr.bytes.default]

    /// Host ACLs go: the guest's are in `user.virtfs.system.*`.
    public func settle(_ entry: HostEntry, names: [[UInt8]], placement: HostPlacement?) throws(VirtFSError) {
        for acl in Self.hostACLs where names.contains(acl) {
            try entry.removeXattr(raw: acl)
        }
        if let placement { try entry.place(placement) }
    }

    /// Removes every `user.virtfs.*` field (the mode first, so the entry stops claiming mapped
    /// metadata before the rest goes).
    public func removeMetadata(of entry: HostEntry) throws(VirtFSError) {
        for name in Self.removalOrder {
            try entry.removeXattr(raw: name)
        }
    }
    /// (Made once: a conversion from mapped-xattr removes them from every entry.)
    static let removalOrder = [field.mode, field.uid, field.gid, field.rdev, field.aclAccess, field.aclDefault]
}
