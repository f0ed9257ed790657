# Shared by the QEMU suites: boot a guest on an export and compare what it lists with what
# virtfs-stat predicts. Sourced after tests/lib/preamble.sh (need_qemu does it), whose $repo,
# $bin and verdict it uses; scripts/test sources it alone for rootfs_tarball.
qemu_user() { # MODEL: the command prefix that runs as the user QEMU runs as for MODEL
    case $1 in
        mapped-xattr|mapped-file) echo "setpriv --reuid=65534 --regid=65534 --clear-groups" ;;
    esac
}

# NUL-separated names as hex lines, for line-oriented tools.
hexlines() { perl -0 -ne 'chomp; print unpack("H*", $_), "\n"'; }

# Compares the guest's listing in OUT with virtfs-stat's prediction for EXPORT.
compare() {
    local model=$1 export=$2 out=$3 label=$4
    local fmt='%n|%u|%g|%f|%t|%T|%s|%b|%h|%Y|%Z'
    local stat
    read -ra stat <<<"$(qemu_user "$model")"
    stat+=("$bin/virtfs-stat" --model "$model" --root .)
    local n
    n=$(tr -cd '\0' <"$out/paths.nul" | wc -c)
    if ((n < 2)); then
        verdict "$label: the guest listed its export" no "paths.nul has $n names" "$(cat "$out/stderr" 2>/dev/null)"
        return
    fi
    (
        cd "$export" || exit 1
        xargs -0 -a "$out/paths.nul" "${stat[@]}" -c "$fmt" >"$out/host.stat" 2>"$out/host.err"
        xargs -0 -a "$out/nonlinks.nul" "${stat[@]}" --acl >"$out/host.acl" 2>>"$out/host.err"
        xargs -0 -a "$out/nonlinks.nul" "${stat[@]}" --xattrs >"$out/host.xattr" 2>>"$out/host.err"
        "${stat[@]}" -R --printf '%n\0' . 2>>"$out/host.err" | sort -z >"$out/host.walk"
        sort -z "$out/paths.nul" >"$out/guest.walk"
        : >"$out/host.links"
        while read -r hexpath _; do
            p=$(printf '%s' "$hexpath" | perl -ne 'print pack("H*", $_)')
            if "${stat[@]}" --json "$p" 2>/dev/null | grep -q '"symlink_readable":false'; then
                echo "$hexpath FAIL"
            else
                echo "$hexpath $("${stat[@]}" --printf '%L' "$p" | od -An -tx1 | tr -d ' \n')"
            fi
        done <"$out/links.txt" >"$out/host.links"
    )
    local what
    for what in stat acl xattr links walk; do
        local guest=$out/$what.txt host=$out/host.$what
        [[ $what == walk ]] && guest=$out/guest.walk
        if [[ -n ${NO_TIMES:-} && $what == stat ]]; then
            # Two copies of a tree differ in their times only: compare the rest.
            sed -i 's/|[^|]*|[^|]*$//' "$guest" "$host"
        fi
        if cmp -s "$guest" "$host"; then
            verdict "$label: $what matches the guest ($n entries)" yes
        else
            verdict "$label: $what matches the guest ($n entries)" no \
                "$(diff <(tr '\0' '\n' <"$guest") <(tr '\0' '\n' <"$host") | head -20)" "host stderr: $(head -5 "$out/host.err")"
        fi
    done
    # Unexpected stderr from virtfs-stat is a failure too, except the documented host-symlink warning.
    local noise
    noise=$(grep -v 'warning: .*host symlink' "$out/host.err")
    [[ -z $noise ]] && verdict "$label: virtfs-stat reported no errors" yes || verdict "$label: virtfs-stat reported no errors" no "$noise"
}

boot() { # MODEL EXPORT SCENARIO OUT
    local model=$1 export=$2 scenario=$3 out=$4 as_root=()
    case $model in passthrough|none) as_root=(--as-root) ;; esac
    mkdir -p "$out"
    tests/qemu/boot-guest --model "$model" --export "$export" --scenario "$scenario" --out "$out" \
        --timeout "${VIRTFS_BOOT_TIMEOUT:-900}" "${as_root[@]}"
}

new_export() { # MODEL DIR: empty, owned by the user QEMU runs as
    local model=$1 dir=$2
    mkdir -p "$dir"
    case $model in mapped-xattr|mapped-file) chown 65534:65534 "$dir"; chmod 755 "$dir" ;; esac
}


# The Debian bookworm minbase root filesystem tarball (mmdebstrap, as root), made once and cached
# in $VIRTFS_ROOTFS (default /tmp). Prints its path.
rootfs_tarball() {
    command -v mmdebstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; } >&2
    local tarball=${VIRTFS_ROOTFS:-/tmp/virtfs-rootfs-bookworm-minbase.tar}
    if [[ ! -s $tarball ]]; then
        mmdebstrap --quiet --variant=minbase --format=tar bookworm "$tarball.tmp" >&2 && mv "$tarball.tmp" "$tarball" || return 1
    fi
    chmod 644 "$tarball"
    echo "$tarball"
}

# What a chroot into the guest's export shows: dpkg's package list and the setuid passwd.
chroot_checks() { # appended to a scenario
    echo 'chroot /mnt /usr/bin/dpkg -l >/scn/out/dpkg.txt 2>&1; echo "dpkg exit $?" >>/scn/out/dpkg.txt'
    echo 'chroot /mnt /bin/ls -ln /usr/bin/passwd >/scn/out/passwd.txt 2>&1'
}

verdict_chroot() { # OUT LABEL
    local out=$1 label=$2 packages
    packages=$(grep -c '^ii ' "$out/dpkg.txt")
    grep -q 'dpkg exit 0' "$out/dpkg.txt" && ((packages > 50)) \
        && verdict "$label, chroot runs dpkg -l ($packages packages)" yes \
        || verdict "$label, chroot runs dpkg -l" no "$(tail -5 "$out/dpkg.txt")"
    grep -q '^-rwsr-xr-x 1 0 0 .*/usr/bin/passwd$' "$out/passwd.txt" \
        && verdict "$label, /usr/bin/passwd is set-user-ID root" yes \
        || verdict "$label, /usr/bin/passwd is set-user-ID root" no "$(cat "$out/passwd.txt")"
}
