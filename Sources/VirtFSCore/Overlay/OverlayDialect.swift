/// The names under which overlayfs keeps its private metadata (overlay.md, "Dialects"):
///
/// | dialect    | host xattr names                     | who reads them                              |
/// |------------|--------------------------------------|---------------------------------------------|
/// | `trusted`  | `trusted.overlay.X`                  | a host root overlay mount                   |
/// | `user`     | `user.overlay.X`                     | `-o userxattr` mounts; a 9p guest (QEMU passes `user.*` through) |
/// | `virtiofs` | `user.virtiofs.trusted.overlay.X`    | a guest behind virtiofsd `:map:trusted.:user.virtiofs.:` |
///
/// Dialect names always name *host* xattrs, whatever the tree's security model: in a
/// mapped-xattr export the guest sees host `user.overlay.X` as `user.overlay.X`, and host
/// `trusted.overlay.X` is the host's own view of the tree (what a root overlay mounted on the
/// host over the export directory reads; a guest never sees it). That keeps one meaning per
/// name, and makes `virtfs-overlay` commute with `virtfs-convert`, which never renames xattrs.
public enum OverlayDialect: String, Sendable, CaseIterable, Codable {
    case trusted
    case user
    case virtiofs

    public var prefix: String {
        switch self {
        case .trusted: return "trusted.overlay."
        case .user: return "user.overlay."
        case .virtiofs: return "user.virtiofs.trusted.overlay."
        }
    }

    /// The virtiofsd `-o xattrmap=` under which a guest sees host `user.virtiofs.X` as `X`: with
    /// it, layers in the `virtiofs` dialect are what a guest's ordinary (trusted) overlay reads.
    public static let virtiofsXattrMap = ":map:trusted.:user.virtiofs.:"

    /// The host xattr name for overlay key `key` (`opaque`, `origin`, ...).
    public func name(_ key: String) -> String { prefix + key }

    /// The dialect and key (`opaque`, or `overlay.opaque` for an escaped nested name) of a host
    /// xattr name, or nil when it is not an overlay xattr.
    public static func parse(_ name: [UInt8]) -> (dialect: OverlayDialect, key: [UInt8])? {
        for dialect in [OverlayDialect.virtiofs, .trusted, .user] {
            let p = Array(dialect.prefix.utf8)
            if name.count > p.count && name.starts(with: p) {
                return (dialect, Array(name[p.count...]))
            }
        }
        return nil
    }
}

/// Overlay keys with a meaning this toolkit acts on or reports (overlay.md, "Overlay private xattrs").
public enum OverlayKey {
    public static let opaque = "opaque"
    public static let redirect = "redirect"
    public static let origin = "origin"
    public static let impure = "impure"
    public static let upper = "upper"
    public static let metacopy = "metacopy"
    public static let uuid = "uuid"
    public static let whiteout = "whiteout"
    /// Keys whose values are file handles or filesystem ids: valid for one filesystem only.
    public static let handles: Set<String> = [origin, upper, uuid]
    /// Keys a `userxattr` mount ignores (redirect_dir and metacopy are off there).
    public static let disabledByUserxattr: Set<String> = [redirect, metacopy]
}

/// How a layer says "NAME was deleted" (overlay.md, "Whiteout and opaque forms").
public enum WhiteoutForm: String, Sendable, CaseIterable, Codable {
    /// A real host character device 0/0 (host-native overlay upper).
    case char
    /// A character device 0:0 *as the tree's security model stores it*: in mapped-xattr an empty
    /// regular file with `user.virtfs.mode` = S_IFCHR and rdev 0, in mapped-file the metadata-file
    /// equivalent; in passthrough and none a real device, the same as `char`.
    case mapped
    /// An empty regular file with `overlay.whiteout`; its directory has `overlay.opaque=x` (Linux 6.7+).
    case xattr
    /// `.wh.NAME` beside the deleted name; `.wh..wh..opq` marks an opaque directory (OCI/AUFS).
    case oci

    public static let ociPrefix: [UInt8] = Array(".wh.".utf8)
    public static let ociOpaqueMarker: [UInt8] = Array(".wh..wh..opq".utf8)
    /// `.wh..wh.` names other than the opaque marker are AUFS bookkeeping, not whiteouts.
    public static let aufsMetaPrefix: [UInt8] = Array(".wh..wh.".utf8)
}

/// virtiofsd's `--xattrmap` rules, so users can reuse the maps they give virtiofsd
/// (docs: virtiofsd `doc/xattr-mapping.md`). Each rule is `SEP type SEP scope SEP key SEP prepend SEP`
/// with SEP the rule's first non-blank character; the first matching rule wins.
///
/// - client names (what the guest uses, e.g. `trusted.overlay.opaque`) map to server names
///   (what the host stores) by the first `client`/`all` rule whose `key` prefixes the name:
///   `prefix` prepends `prepend`, `ok` keeps the name, `bad`/`unsupported` refuse it;
/// - server names map back by the first `server`/`all` rule whose `prepend` prefixes the name:
///   `prefix` strips it, `ok` keeps the name, `bad`/`unsupported` hide it.
/// `:map:KEY:PREPEND:` is shorthand for the rules virtiofsd expands it to (see `parse`).
public struct XattrMap: Sendable, Equatable {
    public enum RuleType: String, Sendable { case prefix, ok, bad, unsupported }
    public struct Scope: OptionSet, Sendable, Equatable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let client = Scope(rawValue: 1)
        public static let server = Scope(rawValue: 2)
        public static let all: Scope = [.client, .server]
    }
    public struct Rule: Sendable, Equatable {
        public var type: RuleType
        public var scope: Scope
        public var key: String
        public var prepend: String
    }

    public enum Mapped: Sendable, Equatable {
        case name(String)
        /// The name is refused (client) or hidden (server), or no rule matched.
        case refused(String)
    }

    public var rules: [Rule]

    /// Parses a rule string as virtiofsd does. Throws a readable message on a malformed rule.
    public init(_ text: String) throws(VirtFSError) {
        var rules: [Rule] = []
        var rest = Substring(text)
        var sawMap = false
        while true {
            rest = rest.drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" })
            guard let sep = rest.first else { break }
            var fields: [Substring] = []
            var cursor = rest.dropFirst()
            for _ in 0..<4 {
                guard let end = cursor.firstIndex(of: sep) else {
                    throw VirtFSError.refused("xattrmap", "rule '\(rest.prefix(40))' is not terminated by '\(sep)' (fields: type, scope, key, prepend)")
                }
                fields.append(cursor[..<end])
                cursor = cursor[cursor.index(after: end)...]
                if fields.count == 3 && fields[0] == "map" { break }
            }
            rest = cursor
            if sawMap { throw VirtFSError.refused("xattrmap", "'map' must be the last rule") }
            if fields[0] == "map" {
                // :map:KEY:PREPEND: -- as virtiofsd expands it.
                sawMap = true
                let key = String(fields[1]), prepend = String(fields[2])
                rules.append(Rule(type: .prefix, scope: .all, key: key, prepend: prepend))
                rules += key.isEmpty ? [Rule(type: .bad, scope: .all, key: "", prepend: "")]
                    : [Rule(type: .bad, scope: .server, key: "", prepend: key), Rule(type: .bad, scope: .client, key: prepend, prepend: ""),
                       Rule(type: .ok, scope: .all, key: "", prepend: "")]
                continue
            }
            guard let type = RuleType(rawValue: String(fields[0])) else {
                throw VirtFSError.refused("xattrmap", "unknown rule type '\(fields[0])' (prefix, ok, bad, unsupported, map)")
            }
            guard let scope = ["client": Scope.client, "server": .server, "all": .all][String(fields[1])] else {
                throw VirtFSError.refused("xattrmap", "unknown scope '\(fields[1])' (client, server, all)")
            }
            rules.append(Rule(type: type, scope: scope, key: String(fields[2]), prepend: String(fields[3])))
        }
        if rules.isEmpty { throw VirtFSError.refused("xattrmap", "no rules") }
        self.rules = rules
    }

    /// `toServer`: the host name virtiofsd stores for a guest's `name`; else the name a guest
    /// sees for a host `name`. Client names match a rule's key, server names its prepend.
    public func map(_ name: String, toServer: Bool) -> Mapped {
        for rule in rules where rule.scope.contains(toServer ? .client : .server) && name.hasPrefix(toServer ? rule.key : rule.prepend) {
            switch rule.type {
            case .prefix: return .name(toServer ? rule.prepend + name : String(name.dropFirst(rule.prepend.count)))
            case .ok: return .name(name)
            case .bad, .unsupported:
                return .refused(toServer ? "refused by rule :\(rule.type.rawValue):client:\(rule.key):" : "hidden by rule :\(rule.type.rawValue):server::\(rule.prepend):")
            }
        }
        return .refused("no rule matches")
    }
}
