import CVirtFS

/// A point in time as the kernel reports it.
public struct Timestamp: Sendable, Equatable, Hashable, Codable {
    public var seconds: Int64
    public var nanoseconds: UInt32
    public init(seconds: Int64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
}

/// A device number as major and minor, which is how a guest sees it.
public struct DeviceNumber: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32
    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// glibc's 64-bit `makedev()` encoding, the one Linux QEMU stores in `user.virtfs.rdev`.
    public init(glibc dev: UInt64) {
        self.init(major: virtfs_major(dev), minor: virtfs_minor(dev))
    }

    public var glibc: UInt64 { virtfs_makedev(major, minor) }

    /// A Linux guest keeps only the low 32 bits of the dev_t QEMU sends (the kernel's
    /// `new_decode_dev`: 12-bit major, 20-bit minor).
    public init(guestKernel dev: UInt64) {
        self.init(glibc: dev & 0xffff_ffff)
    }

    /// Darwin's dev_t, `major << 24 | minor`, as written by QEMU on macOS hosts.
    public init(darwin dev: UInt32) {
        self.init(major: dev >> 24, minor: dev & 0x00ff_ffff)
    }

    public static let zero = DeviceNumber(major: 0, minor: 0)
    public var description: String { "\(major),\(minor)" }
}

/// File types as st_mode's S_IFMT bits.
public enum FileType: UInt32, Sendable, Codable, CaseIterable {
    case fifo = 0o010000
    case characterDevice = 0o020000
    case directory = 0o040000
    case blockDevice = 0o060000
    case regular = 0o100000
    case symlink = 0o120000
    case socket = 0o140000

    public static let mask: UInt32 = 0o170000

    public init?(mode: UInt32) {
        self.init(rawValue: mode & FileType.mask)
    }

    /// Objects that only exist as host files in the mapped models (QEMU stores them as regular
    /// files and keeps their type in the metadata).
    public var isSpecial: Bool { [.fifo, .characterDevice, .blockDevice, .socket].contains(self) }

    public var hasDeviceNumber: Bool { self == .characterDevice || self == .blockDevice }

    /// Names and ls(1) letters by S_IFMT >> 12 (1 fifo, 2 char, 4 dir, 6 block, 8 file, 10 symlink, 12 socket).
    static let keywords = ["", "fifo", "char", "", "dir", "", "block", "", "file", "", "symlink", "", "socket"]
    static let letters = Array("?pc?d?b?-?l?s")

    /// The name used in fixtures and JSON.
    public var keyword: String { Self.keywords[Int(rawValue >> 12)] }

    /// ls(1)'s type letter.
    public var letter: Character { Self.letters[Int(rawValue >> 12)] }
}

/// What the host kernel says about an object (statx), before any model interprets it.
public struct HostStat: Sendable, Equatable {
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var nlink: UInt64
    public var inode: UInt64
    public var device: DeviceNumber
    public var rdev: DeviceNumber
    public var size: UInt64
    public var blocks: UInt64
    public var blockSize: UInt32
    public var atime: Timestamp
    public var mtime: Timestamp
    public var ctime: Timestamp
    public var btime: Timestamp?

    init(_ sx: virtfs_statx) {
        mode = UInt32(sx.stx_mode)
        uid = sx.stx_uid
        gid = sx.stx_gid
        nlink = UInt64(sx.stx_nlink)
        inode = sx.stx_ino
        device = DeviceNumber(major: sx.stx_dev_major, minor: sx.stx_dev_minor)
        rdev = DeviceNumber(major: sx.stx_rdev_major, minor: sx.stx_rdev_minor)
        size = sx.stx_size
        blocks = sx.stx_blocks
        blockSize = sx.stx_blksize
        func ts(_ t: virtfs_statx_timestamp) -> Timestamp { Timestamp(seconds: t.tv_sec, nanoseconds: t.tv_nsec) }
        atime = ts(sx.stx_atime)
        mtime = ts(sx.stx_mtime)
        ctime = ts(sx.stx_ctime)
        btime = (sx.stx_mask & VIRTFS_STATX_BTIME) != 0 ? ts(sx.stx_btime) : nil
    }

    /// What creation is known to give a new object (`HostPlacement.creationIsExact`): type,
    /// permissions and owner, read from no inode. Its identity is none (inode 0), its size,
    /// link count and times are 0: only for a writer that goes on to write metadata by name.
    init(created type: FileType, permissions: UInt32, owner: (uid: UInt32, gid: UInt32)) {
        var sx = virtfs_statx()
        sx.stx_mode = UInt16(type.rawValue | permissions)
        (sx.stx_uid, sx.stx_gid) = owner
        self.init(sx)
    }

    public var fileType: FileType? { FileType(mode: mode) }
    public var permissions: UInt32 { mode & 0o7777 }
    public var identity: FileIdentity { FileIdentity(device: device, inode: inode) }
}

/// The host inode an entry is: equal identities are hard links of one another.
public struct FileIdentity: Sendable, Hashable, Codable {
    public var device: DeviceNumber
    public var inode: UInt64
}
