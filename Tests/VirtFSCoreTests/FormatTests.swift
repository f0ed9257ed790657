import Testing
@testable import VirtFSCore

@Suite struct StatFormatting {
    @Test("mode strings follow ls and stat", arguments: [
        (UInt32(0o104755), "-rwsr-xr-x"), (0o102644, "-rw-r-Sr--"), (0o041777, "drwxrwxrwt"),
        (0o041776, "drwxrwxrwT"), (0o020666, "crw-rw-rw-"), (0o120777, "lrwxrwxrwx"), (0o010644, "prw-r--r--"),
    ])
    func modeString(mode: UInt32, expected: String) {
        #expect(StatFormatter.modeString(mode) == expected)
    }

    @Test("%N quotes names the way coreutils stat does", arguments: [
        ("a", "'a'"), ("x y", "'x y'"), ("n\nl", "'n'$'\\n''l'"), ("it's", "\"it's\""), ("a\\b", "'a\\b'"),
    ])
    func quoting(name: String, expected: String) {
        #expect(String(decoding: StatFormatter.shellQuote(Array(name.utf8)), as: UTF8.self) == expected)
    }

    @Test("invalid UTF-8 is quoted as an octal escape")
    func invalidUTF8() {
        #expect(String(decoding: StatFormatter.shellQuote([0x75, 0xff, 0x76]), as: UTF8.self) == "'u'$'\\377''v'")
    }

    @Test("--printf escapes and printf-style widths")
    func printfEscapes() {
        var out: [UInt8] = []
        var i = 0
        let format = Array("\\t\\101\\x42\\\\".utf8)
        while i < format.count { i = StatFormatter.escape(format, at: i, into: &out) }
        #expect(out == [0x09, 0x41, 0x42, 0x5c])
    }
}

@Suite struct GetfaclNames {
    @Test("getfacl's file-name display: leading ./ and / dropped, backslash doubled, newline octal", arguments: [
        ("./x y", "x y"), (".///x", "x"), ("././x", "./x"), ("/abs", "abs"), (".", "."), ("a\\b", "a\\\\b"), ("n\nl", "n\\012l"),
    ])
    func names(path: String, expected: String) {
        let shown = GetfaclFormat.quote(GetfaclFormat.displayName(Array(path.utf8)))
        #expect(String(decoding: shown, as: UTF8.self) == expected)
    }
}

/// Expected strings are what `ls --quoting-style=shell-escape` (coreutils 9.1) printed for the
/// same names; tests/cli/repair compares against ls itself.
let lsShellEscaped: [([UInt8], String)] = [
    (Array("plain".utf8), "plain"),
    (Array("new\nline".utf8), "'new'$'\\n''line'"),
    (Array("esc\u{1b}[2Jx".utf8), "'esc'$'\\033''[2Jx'"),
    ([0x62, 0x61, 0x64, 0xff, 0x6e, 0x61, 0x6d, 0x65], "'bad'$'\\377''name'"),
    (Array("tab\tx".utf8), "'tab'$'\\t''x'"),
    (Array("a b".utf8), "'a b'"),
    (Array("it's".utf8), "\"it's\""),
    (Array("é".utf8), "é"),
]

@Test("names are shown quoted as ls --quoting-style=shell-escape shows them", arguments: lsShellEscaped)
func shellEscapedNames(name: [UInt8], shown: String) {
    #expect(Bytes.shellEscaped(name) == shown)
}

@Test("invisible format characters are escaped, and always-quoting quotes plain names")
func shellEscapedInvisible() {
    #expect(Bytes.shellEscaped(Array("\u{202e}rev".utf8)) == "$'\\342\\200\\256''rev'")
    #expect(Bytes.shellEscaped(Array("plain".utf8), always: true) == "'plain'")
}
