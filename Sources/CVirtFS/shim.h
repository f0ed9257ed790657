#ifndef VIRTFS_SHIM_H
#define VIRTFS_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/acl.h>
#include <acl/libacl.h>
#include <unistd.h>

/* The kernel's struct statx (include/uapi/linux/stat.h), declared here because glibc only
   exposes it under _GNU_SOURCE, which Swift's Glibc module is not built with. The layout is
   kernel ABI and never changes. */
struct virtfs_statx_timestamp {
    int64_t tv_sec;
    uint32_t tv_nsec;
    int32_t reserved;
};

struct virtfs_statx {
    uint32_t stx_mask;
    uint32_t stx_blksize;
    uint64_t stx_attributes;
    uint32_t stx_nlink;
    uint32_t stx_uid;
    uint32_t stx_gid;
    uint16_t stx_mode;
    uint16_t spare0;
    uint64_t stx_ino;
    uint64_t stx_size;
    uint64_t stx_blocks;
    uint64_t stx_attributes_mask;
    struct virtfs_statx_timestamp stx_atime;
    struct virtfs_statx_timestamp stx_btime;
    struct virtfs_statx_timestamp stx_ctime;
    struct virtfs_statx_timestamp stx_mtime;
    uint32_t stx_rdev_major;
    uint32_t stx_rdev_minor;
    uint32_t stx_dev_major;
    uint32_t stx_dev_minor;
    uint64_t spare2[14];
};

#define VIRTFS_STATX_BASIC_STATS 0x000007ffU
#define VIRTFS_STATX_BTIME 0x00000800U
#define VIRTFS_AT_STATX_SYNC_AS_STAT 0x0000
#define VIRTFS_AT_SYMLINK_NOFOLLOW 0x100
#define VIRTFS_AT_EMPTY_PATH 0x1000

/* statx(2) without following symlinks. Returns 0 or -1 with errno set. */
static inline int virtfs_statx(int dirfd, const char *path, int flags, struct virtfs_statx *out) {
    return (int)syscall(SYS_statx, dirfd, path, flags | VIRTFS_AT_SYMLINK_NOFOLLOW,
                        VIRTFS_STATX_BASIC_STATS | VIRTFS_STATX_BTIME, out);
}

/* flock(2): Swift sees the name as glibc's struct flock and cannot call the function. */
static inline int virtfs_flock(int fd, int operation) { return flock(fd, operation); }

/* glibc's makedev/major/minor are macros, which Swift cannot import. */
static inline uint64_t virtfs_makedev(uint32_t major, uint32_t minor) {
    return ((uint64_t)(major & 0x00000fffU) << 8) | ((uint64_t)(major & 0xfffff000U) << 32) |
           ((uint64_t)(minor & 0x000000ffU)) | ((uint64_t)(minor & 0xffffff00U) << 12);
}
static inline uint32_t virtfs_major(uint64_t dev) {
    return (uint32_t)(((dev >> 8) & 0x00000fffU) | ((dev >> 32) & 0xfffff000U));
}
static inline uint32_t virtfs_minor(uint64_t dev) {
    return (uint32_t)((dev & 0x000000ffU) | ((dev >> 12) & 0xffffff00U));
}

/* copy_file_range(2) is declared only under _GNU_SOURCE. */
static inline long virtfs_copy_file_range(int in, int out, size_t length) {
    return syscall(SYS_copy_file_range, in, (void *)0, out, (void *)0, length, 0U);
}

/* syncfs(2), which glibc declares only under _GNU_SOURCE. */
static inline int virtfs_syncfs(int fd) { return (int)syscall(SYS_syncfs, fd); }

static inline int virtfs_errno(void) { return errno; }
static inline void virtfs_set_errno(int value) { errno = value; }

/* O_* and AT_* values Swift sees only as macros on some glibc versions. */
/* O_PATH is only declared under _GNU_SOURCE; its value is fixed kernel ABI on Linux. */
#ifdef O_PATH
static const int VIRTFS_O_PATH = O_PATH;
#else
static const int VIRTFS_O_PATH = 010000000;
#endif
static const int VIRTFS_O_NOFOLLOW = O_NOFOLLOW;
static const int VIRTFS_O_DIRECTORY = O_DIRECTORY;
static const int VIRTFS_O_CLOEXEC = O_CLOEXEC;
static const int VIRTFS_O_NONBLOCK = O_NONBLOCK;
static const int VIRTFS_O_NOCTTY = O_NOCTTY;
static const int VIRTFS_AT_REMOVEDIR = AT_REMOVEDIR;

/* The *xattrat(2) calls (Linux 6.13): an xattr of a name below a directory fd, with
   AT_SYMLINK_NOFOLLOW, in one lookup of one component. glibc has no wrappers yet; the numbers are
   the unified syscall table's (the same on x86_64 and the asm-generic architectures). Where they
   are unknown the wrappers fail with ENOSYS and the callers use the /proc/self/fd path. */
#if defined(SYS_getxattrat)
#define VIRTFS_SYS_setxattrat SYS_setxattrat
#define VIRTFS_SYS_getxattrat SYS_getxattrat
#define VIRTFS_SYS_listxattrat SYS_listxattrat
#define VIRTFS_SYS_removexattrat SYS_removexattrat
#elif defined(__x86_64__) || defined(__aarch64__) || defined(__riscv) || defined(__loongarch__)
#define VIRTFS_SYS_setxattrat 463
#define VIRTFS_SYS_getxattrat 464
#define VIRTFS_SYS_listxattrat 465
#define VIRTFS_SYS_removexattrat 466
#else
#define VIRTFS_SYS_setxattrat (-1)
#define VIRTFS_SYS_getxattrat (-1)
#define VIRTFS_SYS_listxattrat (-1)
#define VIRTFS_SYS_removexattrat (-1)
#endif

/* fchmodat2(2) (Linux 6.6): with AT_SYMLINK_NOFOLLOW it changes the mode of a name below a
   directory fd in one call and refuses a symlink, with no window for a swapped-in one. */
#if defined(SYS_fchmodat2)
#define VIRTFS_SYS_fchmodat2 SYS_fchmodat2
#elif defined(__x86_64__) || defined(__aarch64__) || defined(__riscv) || defined(__loongarch__)
#define VIRTFS_SYS_fchmodat2 452
#else
#define VIRTFS_SYS_fchmodat2 (-1)
#endif

static inline int virtfs_fchmodat_nofollow(int dirfd, const char *path, mode_t mode) {
    if (VIRTFS_SYS_fchmodat2 < 0) { errno = ENOSYS; return -1; }
    return (int)syscall(VIRTFS_SYS_fchmodat2, dirfd, path, mode, VIRTFS_AT_SYMLINK_NOFOLLOW);
}

struct virtfs_xattr_args {
    uint64_t value;
    uint32_t size;
    uint32_t flags;
};

/* getxattrat and setxattrat: a value passed through struct xattr_args. */
static inline long virtfs_xattrat_value(long nr, int dirfd, const char *path, const char *name, const void *value, size_t size) {
    if (nr < 0) { errno = ENOSYS; return -1; }
    struct virtfs_xattr_args args = { (uint64_t)(uintptr_t)value, (uint32_t)size, 0 };
    return syscall(nr, dirfd, path, VIRTFS_AT_SYMLINK_NOFOLLOW, name, &args, sizeof args);
}

static inline long virtfs_getxattrat(int dirfd, const char *path, const char *name, void *value, size_t size) {
    return virtfs_xattrat_value(VIRTFS_SYS_getxattrat, dirfd, path, name, value, size);
}

static inline long virtfs_setxattrat(int dirfd, const char *path, const char *name, const void *value, size_t size) {
    return virtfs_xattrat_value(VIRTFS_SYS_setxattrat, dirfd, path, name, value, size);
}

static inline long virtfs_listxattrat(int dirfd, const char *path, char *list, size_t size) {
    if (VIRTFS_SYS_listxattrat < 0) { errno = ENOSYS; return -1; }
    return syscall(VIRTFS_SYS_listxattrat, dirfd, path, VIRTFS_AT_SYMLINK_NOFOLLOW, list, size);
}

static inline long virtfs_removexattrat(int dirfd, const char *path, const char *name) {
    if (VIRTFS_SYS_removexattrat < 0) { errno = ENOSYS; return -1; }
    return syscall(VIRTFS_SYS_removexattrat, dirfd, path, VIRTFS_AT_SYMLINK_NOFOLLOW, name);
}

/* renameat2(2): glibc declares it only under _GNU_SOURCE. */
#define VIRTFS_RENAME_NOREPLACE 1U
#define VIRTFS_RENAME_EXCHANGE 2U
static inline int virtfs_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

#endif
