import Glibc
/// What would stop a given overlay mount from using a set of layers (`virtfs-overlay --check`):
/// the layers' dialect and whiteout forms against the mount options, the kernel, and what a 9p
/// guest can see and do (overlay.md, "What a guest overlay over 9p can and cannot do").
public struct OverlayCheck {
    /// The mount the layers are meant for.
    public struct Target: Sendable {
        /// `-o userxattr`.
        public var userxattr = false
        /// Kernel version of the machine that mounts (major, minor).
        public var kernel: (Int, Int) = (6, 1)

        /// `MAJOR.MINOR[...]`, as uname -r prints it.
        public static func kernelVersion(_ text: String) -> (Int, Int)? {
            let parts = text.split(separator: ".")
            guard parts.count >= 2, let a = Int(parts[0]), let b = Int(parts[1].prefix { $0.isNumber }) else { return nil }
            return (a, b)
        }

        /// The kernel this runs on.
        public static var runningKernel: (Int, Int)? {
            var u = utsname()
            uname(&u)
            return kernelVersion(withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
        /// The layers reach the mounting kernel over a 9p export in this model (nil: local).
        public var over9p: SecurityModel?
        /// The layers reach the mounting guest through virtiofsd with
        /// `-o xattrmap=` ``OverlayDialect/virtiofsXattrMap``.
        public var overVirtiofs = false
        public init() {}

        /// The dialect this mount reads, as host xattr names.
        public var dialect: OverlayDialect { userxattr ? .user : overVirtiofs ? .virtiofs : .trusted }

        /// How the mount is described in reports.
        public var summary: String {
            var text = "\(userxattr ? "userxattr" : "trusted xattrs"), Linux \(kernel.0).\(kernel.1)"
            if let over9p { text += ", over 9p (\(over9p.rawValue))" }
            if overVirtiofs { text += ", over virtio-fs (xattrmap \(OverlayDialect.virtiofsXattrMap))" }
            return text
        }
    }

    public enum Severity: String, Sendable { case blocker, limit, note }

    public struct Finding: Sendable {
        public var severity: Severity
        public var layer: [UInt8]
        public var text: String
        /// The virtiofsd `-o xattrmap=` the finding tells the user to give, for scripts.
        public var xattrmap: String?
    }

    public struct Layer {
        public var path: [UInt8]
        public var scan: OverlayScan
        public var isUpper: Bool
        public init(path: [UInt8], scan: OverlayScan, isUpper: Bool) {
            self.path = path
            self.scan = scan
            self.isUpper = isUpper
        }
    }

    /// One line describing a layer: dialects, whiteout forms, opaque markers, features.
    public static func describe(_ layer: Layer) -> String {
        let s = layer.scan
        let dialects = OverlayDialect.allCases.compactMap { d in s.dialects[d].map { "\(d.rawValue) (\($0) xattrs)" } }
        let forms = WhiteoutForm.allCases.compactMap { f in s.whiteouts[f].map { "\(f.rawValue) \($0)" } }
        let keys = s.keys.keys.sorted().map { "\($0) \(s.keys[$0]!)" }
        var parts = [
            "\(layer.isUpper ? "upper" : "lower") layer, \(s.entries) entries",
            "dialect: " + (dialects.isEmpty ? "none" : dialects.joined(separator: ", ")),
            "whiteouts: " + (forms.isEmpty ? "none" : forms.joined(separator: ", ")),
            "opaque dirs: \(s.opaqueXattr) by xattr, \(s.opaqueMarkers) by .wh..wh..opq, \(s.opaqueX) marked x",
        ]
        if !keys.isEmpty { parts.append("overlay keys: " + keys.joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }

    /// Everything that stops or limits the target mount, layer by layer, then for the stack.
    public static func findings(_ layers: [Layer], target: Target) -> [Finding] {
        var out: [Finding] = []
        let needed = target.dialect
        let over9p = target.over9p
        let mapped9p = over9p?.isMapped ?? false
        for layer in layers {
            let s = layer.scan
            func add(_ severity: Severity, _ text: String, xattrmap: String? = nil) {
                out.append(Finding(severity: severity, layer: layer.path, text: text, xattrmap: xattrmap))
            }
            for (dialect, n) in s.dialects.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where dialect != needed {
                add(.blocker, "\(n) overlay xattrs in the \(dialect.rawValue) dialect (\(dialect.prefix)*), which this mount does not read (it reads \(needed.prefix)*): opaque dirs, redirects and origins are lost; run virtfs-overlay --xattrs \(needed.rawValue)")
            }
            if over9p != nil && !target.userxattr {
                add(.blocker, "QEMU's 9p server passes only user.* xattrs: a guest overlay over 9p needs -o userxattr (and layers in the user dialect)")
            }
            if let n = s.whiteouts[.oci], n > 0 {
                add(.blocker, "\(n) whiteouts and \(s.opaqueMarkers) opaque markers in the OCI form (.wh.NAME), which kernel overlayfs shows as plain files; run virtfs-overlay --whiteouts \(over9p == nil ? "char" : "mapped")")
            } else if s.opaqueMarkers > 0 {
                add(.blocker, "\(s.opaqueMarkers) .wh..wh..opq markers, which kernel overlayfs shows as plain files")
            }
            if let n = s.whiteouts[.xattr], n > 0, target.kernel < (6, 7) {
                add(.blocker, "\(n) xattr whiteouts, which Linux before 6.7 shows as empty files; run virtfs-overlay --whiteouts \(over9p == nil ? "char" : "mapped")")
            }
            if let n = s.whiteouts[.mapped], n > 0, !mapped9p {
                add(.blocker, "\(n) whiteouts in the mapped form (regular files standing for char 0:0), which only a guest of a mapped export sees as whiteouts; run virtfs-overlay --whiteouts char")
            }
            for key in OverlayKey.disabledByUserxattr.sorted() where target.userxattr && s.keys[key] ?? 0 > 0 {
                add(.blocker, "\(s.keys[key]!) entries use overlay.\(key), which userxattr disables: renamed directories / metacopy files would show wrong contents")
            }
            if mapped9p {
                let whiteouts = (s.whiteouts[.char] ?? 0) + (s.whiteouts[.mapped] ?? 0)
                if layer.isUpper && !s.whiteoutDirsWithoutUserImpure.isEmpty {
                    let first = String(decoding: s.whiteoutDirsWithoutUserImpure[0], as: UTF8.self)
                    add(.blocker, "\(s.whiteoutDirsWithoutUserImpure.count) directories hold whiteouts but no user.overlay.impure (first: \(first)): QEMU reports DT_UNKNOWN, so the guest lists those whiteouts as names that fail with ENOENT; run virtfs-overlay --xattrs user")
                } else if !layer.isUpper && whiteouts > 0 && layers.last?.path != layer.path {
                    add(.blocker, "\(whiteouts) whiteouts in a lower layer: QEMU reports DT_UNKNOWN and overlayfs re-checks entries only in upper directories marked impure, so the guest would list them as phantom names; merge this layer into the one above, or use it as the upper layer")
                }
            }
            if !s.handles.isEmpty {
                add(.note, "\(s.handles.count) file handles (overlay.origin/upper/uuid) tied to the filesystem the layer was made on: ignored elsewhere (index=off), refused with index=on or nfs_export=on")
            }
            if layer.isUpper && mapped9p {
                add(.limit, "upper layer on 9p: copying up a lower file (writing, chmod, chown, or creating/deleting inside a directory only the lower has) fails with ENODATA when the lower layers are on 9p too (overlayfs writes an empty overlay.origin, which QEMU takes as a remove)")
                add(.limit, "upper layer on 9p: re-creating a deleted directory fails with EINVAL (overlayfs needs RENAME_EXCHANGE or RENAME_WHITEOUT, which Linux's 9p client lacks); keep the upper layer on a guest-local disk to avoid both limits")
            }
            if layer.isUpper && over9p != nil {
                // Observed (tests/qemu/virtiofs): copy-up, whiteouts and re-created directories all work there.
                let map = OverlayDialect.virtiofsXattrMap
                add(.note, "for a writable upper layer shared with the host, use virtio-fs instead of 9p: run virtfs-overlay --xattrs virtiofs on every layer, serve them with virtiofsd -o xattrmap=\(map) and mount an ordinary overlay (no userxattr) in the guest; copy-up, whiteouts and re-created directories all work there", xattrmap: map)
            }
        }
        return out
    }
}
