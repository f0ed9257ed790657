// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "virtfs-tools",
    products: [
        .library(name: "VirtFSCore", targets: ["VirtFSCore"]),
        .executable(name: "virtfs-stat", targets: ["virtfs-stat"]),
        .executable(name: "virtfs-fsck", targets: ["virtfs-fsck"]),
        .executable(name: "virtfs-chown", targets: ["virtfs-chown"]),
        .executable(name: "virtfs-chmod", targets: ["virtfs-chmod"]),
        .executable(name: "virtfs-convert", targets: ["virtfs-convert"]),
        .executable(name: "virtfs-overlay", targets: ["virtfs-overlay"]),
        .executable(name: "virtfs-import", targets: ["virtfs-import"]),
        .executable(name: "virtfs-export", targets: ["virtfs-export"]),
        .executable(name: "virtfs-qemu", targets: ["virtfs-qemu"]),
        .executable(name: "virtfs-mount", targets: ["virtfs-mount"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // glibc's xattr calls, a raw statx, and libacl, behind one small shim header.
        .systemLibrary(
            name: "CVirtFS",
            pkgConfig: "libacl",
            providers: [.apt(["libacl1-dev"])]
        ),
        // The library: host facts -> per-model codec -> guest view. Never prints, never exits.
        .target(name: "VirtFSCore", dependencies: ["CVirtFS"]),
        // libarchive, for every archive format and mtree(5) manifests; libcrypto for the one
        // SHA-256 that checks a manifest's content digests.
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev", "libssl-dev"])]
        ),
        // Guest views to and from archives: virtfs-import and virtfs-export.
        .target(
            name: "VirtFSArchive",
            dependencies: [
                "VirtFSCore", "CArchive",
            ]
        ),
        // What every executable shares: option groups, error rendering, output.
        .target(
            name: "VirtFSCommand",
            dependencies: [
                "VirtFSCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "virtfs-stat", dependencies: ["VirtFSCommand"]),
        .executableTarget(name: "virtfs-fsck", dependencies: ["VirtFSCommand"]),
        .executableTarget(name: "virtfs-chown", dependencies: ["VirtFSCommand"]),
        .executableTarget(name: "virtfs-chmod", dependencies: ["VirtFSCommand"]),
        .executableTarget(name: "virtfs-convert", dependencies: ["VirtFSCommand"]),
        .executableTarget(name: "virtfs-overlay", dependencies: ["VirtFSCommand"]),
        // The archive tools' options and runs, over VirtFSCommand and VirtFSArchive.
        .target(name: "VirtFSArchiveCommand", dependencies: ["VirtFSCommand", "VirtFSArchive"]),
        .executableTarget(name: "virtfs-import", dependencies: ["VirtFSArchiveCommand"]),
        .executableTarget(name: "virtfs-export", dependencies: ["VirtFSArchiveCommand"]),
        // libxml2, for libvirt domain XML.
        .systemLibrary(
            name: "CXML",
            pkgConfig: "libxml-2.0",
            providers: [.apt(["libxml2-dev"])]
        ),
        // QEMU command lines and libvirt domains, both ways: virtfs-qemu.
        .target(name: "VirtFSQemu", dependencies: ["VirtFSCore", "CXML"]),
        .executableTarget(name: "virtfs-qemu", dependencies: ["VirtFSCommand", "VirtFSQemu"]),
        // libfuse3's high-level API, for the guest view mounted on the host.
        .systemLibrary(
            name: "CFuse",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]
        ),
        // The guest view served over FUSE: virtfs-mount.
        .target(name: "VirtFSMount", dependencies: ["VirtFSCore", "CVirtFS", "CFuse"]),
        .executableTarget(name: "virtfs-mount", dependencies: ["VirtFSCommand", "VirtFSMount"]),
        // Test support: materialises a text tree spec (testdata/trees/*.tree) in any model.
        .target(name: "VirtFSTestSupport", dependencies: ["VirtFSCore", "CVirtFS"]),
        .executableTarget(name: "vt-mktree", dependencies: ["VirtFSCommand", "VirtFSTestSupport"]),
        .testTarget(name: "VirtFSCoreTests", dependencies: ["VirtFSCore", "VirtFSQemu", "VirtFSTestSupport", "CVirtFS"]),
        .testTarget(name: "VirtFSCommandTests", dependencies: ["VirtFSCommand"]),
        .testTarget(name: "VirtFSMountTests", dependencies: ["VirtFSMount", "VirtFSCore", "VirtFSTestSupport"]),
        .testTarget(name: "VirtFSArchiveTests", dependencies: ["VirtFSArchive", "VirtFSCore", "VirtFSTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
