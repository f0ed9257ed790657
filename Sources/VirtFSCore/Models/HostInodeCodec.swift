import Glibc

/// `security_model=passthrough` and `none`: the guest sees the host inode itself. The two
/// differ in what QEMU lets the guest do (passthrough chowns, so QEMU runs as root; none ignores
/// a failed chown) and in ACLs: passthrough passes host ACLs through, none refuses them.
public struct HostInodeCodec: ModelCodec {
    public let model: SecurityModel

    public init(model: SecurityModel) {
        precondition(model == .passthrough || model == .none, "HostInodeCodec serves passthrough and none")
        self.model = model
    }

    var keepsACLs: Bool { model == .passthrough }

    public func decode(_ entry: HostEntry) throws(VirtFSError) -> GuestView {
        let type = try entry.fileType()
        var view = GuestView(path: entry.path, model: model, host: entry.stat, type: type)
        view.hostFallback = true
        if type == .symlink {
            try entry.applyHostSymlink(to: &view, readable: true)
        }
        try entry.applyXattrs(try entry.xattrNames(), acls: keepsACLs ? HostACLXattr.bytes : nil, to: &view)
        return view
    }

    /// Values a host inode cannot take: chown(2) reads an id of -1 as "leave it unchanged",
    /// and Linux keeps no ACLs or user xattrs on a symlink.
    public func cannotHold(_ attributes: GuestAttributes, name: [UInt8]?) -> [String] {
        var why: [String] = []
        for (field, id, host) in [("uid", attributes.uid, "owner"), ("gid", attributes.gid, "group")] where id == UInt32.max {
            why.append("\(field) 4294967295 is -1, which chown(2) reads as \"leave the \(host) unchanged\"")
        }
        if attributes.type == .symlink && (attributes.accessACL != nil || attributes.defaultACL != nil || !attributes.xattrs.isEmpty) {
            why.append("a symlink with ACLs or user xattrs: Linux keeps neither on a symlink")
        } else if attributes.type.isSpecial && !attributes.xattrs.isEmpty {
            why.append("a \(attributes.type.keyword) with user xattrs: Linux keeps user xattrs only on regular files and directories")
        }
        if !keepsACLs && (attributes.accessACL.map({ !$0.isMinimal }) == true || attributes.defaultACL != nil) {
            why.append("has ACLs, which a guest of a none export cannot see")
        }
        return why
    }

    public func begin(_ attributes: GuestAttributes, named name: [UInt8], in directory: DirectoryContext,
                      content: Content, placement: HostPlacement) throws(VirtFSError) -> CreateCompletion {
        let path = Bytes.join(directory.path, name)
        do {
            switch attributes.type {
            case .directory:
                try Sys.mkdir(directory.fd, name, 0o700)
            case .regular:
                let fd = try Sys.openAt(directory.fd, name, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
                defer { Sys.close(fd) }
                try content.write(to: fd, name: name)
            case .symlink:
                try Sys.symlink(attributes.symlinkTarget ?? [], directory.fd, name)
            case .fifo, .socket, .characterDevice, .blockDevice:
                let dev = attributes.type.hasDeviceNumber ? attributes.rdev.glibc : 0
                try Sys.mknod(directory.fd, name, mode_t(attributes.type.rawValue | 0o600), dev)
            }
        } catch let error {
            throw error.at(path)
        }
        let entry = try HostEntry(directory: directory, name: name, path: path)
        return { () throws(VirtFSError) in try update(attributes, of: entry, placement: placement) }
    }

    public func update(_ attributes: GuestAttributes, of entry: HostEntry, placement: HostPlacement) throws(VirtFSError) {
        do {
            if entry.stat.uid != attributes.uid || entry.stat.gid != attributes.gid {
                try Sys.chown(entry.directory.fd, entry.name, attributes.uid, attributes.gid)
            }
            // After chown, which clears set-id bits; symlinks have no mode of their own.
            if attributes.type != .symlink {
                try Sys.chmod(entry.directory.fd, entry.name, mode_t(attributes.permissions))
            }
        } catch let error {
            throw error.at(entry.path)
        }
        if attributes.type == .symlink {
            // Linux keeps neither ACLs nor user xattrs on symlinks.
            if attributes.accessACL != nil || attributes.defaultACL != nil || !attributes.xattrs.isEmpty {
                throw VirtFSError.refused("lsetxattr", path: entry.path, "Linux keeps no ACLs or user xattrs on symlinks")
            }
            return
        }
        if keepsACLs {
            try writeACLs(attributes, to: entry, accessName: HostACLXattr.bytes.access, defaultName: HostACLXattr.bytes.default)
        } else if attributes.accessACL.map({ !$0.isMinimal }) == true || attributes.defaultACL != nil {
            throw VirtFSError.refused("setxattr", path: entry.path, "the none model cannot show ACLs to the guest")
        }
        try writeUserXattrs(attributes, to: entry, refusingVirtfs: false)
    }
}
