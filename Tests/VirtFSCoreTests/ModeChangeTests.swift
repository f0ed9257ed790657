import Glibc
import Testing
import VirtFSTestSupport
@testable import VirtFSCore

/// coreutils chmod(1) is the oracle for mode changes: each case runs the real chmod on a host
/// file or directory and compares with `ModeChange.apply`.
@Suite struct ModeChanges {
    static let modes = ["755", "0644", "00755", "4755", "u+s", "g+s", "g-s", "o+t", "+t", "a=rX", "u=rwx,go=rx", "go-w",
                        "+x", "-w", "=r", "g=u", "o=g", "u+X", "a-x,u+x", "ug=rw,o=", "g+w,u-s", "=", "1777", "2750", "+rwx",
                        "=755", "+1000", "-022", "=0", "+0", "=644,u+x"]
    static let starts: [UInt32] = [0o644, 0o4755, 0o2755, 0o1777, 0o600, 0o000, 0o6711]

    func realChmod(_ mode: String, start: UInt32, directory: Bool, in dir: TemporaryDirectory) -> UInt32? {
        let path = dir.path + (directory ? "/d" : "/f")
        if directory { mkdir(path, 0o700) } else { close(open(path, O_CREAT | O_WRONLY, 0o600)) }
        chmod(path, mode_t(start))
        guard system("umask 022; chmod -- '\(mode)' '\(path)' 2>/dev/null") == 0 else { return nil }
        var st = Glibc.stat()
        lstat(path, &st)
        if directory { rmdir(path) } else { unlink(path) }
        return UInt32(st.st_mode) & 0o7777
    }

    @Test("symbolic and octal modes change bits exactly as chmod(1) does", arguments: modes)
    func matchesChmod(mode: String) throws {
        let dir = TemporaryDirectory()
        let change = try ModeChange(mode)
        for directory in [false, true] {
            for start in Self.starts {
                guard let want = realChmod(mode, start: start, directory: directory, in: dir) else {
                    Issue.record("chmod \(mode) failed")
                    return
                }
                let got = change.apply(to: start, isDirectory: directory, umask: 0o022)
                #expect(got == want, "chmod \(mode) on \(directory ? "dir" : "file") 0\(String(start, radix: 8)): 0\(String(got, radix: 8)) vs chmod's 0\(String(want, radix: 8))")
            }
        }
    }

    @Test("invalid modes are refused", arguments: ["", "8", "u+q", "u", "x+r", "777777", "u+r,", "u=755", "=77777", "=7a"])
    func invalid(mode: String) {
        #expect(throws: VirtFSError.self) { try ModeChange(mode) }
    }

    @Test("chown clears set-user-ID, and set-group-ID with group execute, on non-directories")
    func chownKillsSetID() {
        let file = GuestAttributes(type: .regular, permissions: 0o6755, uid: 0, gid: 0)
        #expect(file.changingOwner(uid: 1, gid: nil).permissions == 0o0755)
        let lockFile = GuestAttributes(type: .regular, permissions: 0o2644, uid: 0, gid: 0)
        #expect(lockFile.changingOwner(uid: 1, gid: 1).permissions == 0o2644)
        let dir = GuestAttributes(type: .directory, permissions: 0o2775, uid: 0, gid: 0)
        #expect(dir.changingOwner(uid: 1, gid: 1).permissions == 0o2775)
    }

    @Test("chmod carries the group bits into the ACL mask")
    func chmodUpdatesACL() throws {
        let acl = try ACL(text: "u::rwx,u:1000:rwx,g::r-x,m::rwx,o::r-x")
        let a = GuestAttributes(type: .regular, permissions: 0o775, uid: 0, gid: 0, accessACL: acl)
        let changed = a.changingPermissions(0o740)
        #expect(try changed.accessACL?.text() == "user::rwx\nuser:1000:rwx\t#effective:r--\ngroup::r-x\t#effective:r--\nmask::r--\nother::---")
    }

    @Test("OWNER[:GROUP] resolves through the guest's own user database")
    func owners() throws {
        var accounts = GuestAccounts(users: [0: "root", 1000: "alice"], groups: [0: "root", 50: "staff", 1000: "alice"])
        accounts.loginGroups = [1000: 1000, 0: 0]
        #expect(try accounts.parseOwner("alice:staff") == (1000, 50))
        #expect(try accounts.parseOwner("root") == (0, nil))
        #expect(try accounts.parseOwner(":staff") == (nil, 50))
        #expect(try accounts.parseOwner("alice:") == (1000, 1000))
        #expect(try accounts.parseOwner("1234:5678") == (1234, 5678))
        #expect(try accounts.parseOwner("alice.staff") == (1000, 50))
        #expect(throws: VirtFSError.self) { try accounts.parseOwner("mallory") }
        #expect(throws: VirtFSError.self) { try accounts.parseOwner("alice:wheel") }
    }

    @Test("a tree's etc/passwd gives each user the login group of its first line with a numeric one")
    func loginGroups() throws {
        let tree = TemporaryDirectory()
        let file = fopen(tree.sub("etc") + "/passwd", "w")
        let passwd = "# comment\nroot:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:::\nalias:x:1000:200:::\nbob:x:1001\ncarol:x:1002:staff:::\ncarol2:x:1002:300:::\n"
        fputs(passwd, file)
        fclose(file)
        let accounts = GuestAccounts.load(root: try Walker.exportRoot(tree.bytes).directory)
        #expect(accounts.loginGroups == [0: 0, 1000: 100, 1002: 300])
        #expect(accounts.users == [0: "root", 1000: "alice", 1001: "bob", 1002: "carol"])
        #expect(try accounts.parseOwner("alice:") == (1000, 100))
        #expect(throws: VirtFSError.self) { try accounts.parseOwner("bob:") }
    }
}
