// The system calls of `virtfs-convert --from passthrough --to mapped-xattr` in place, and nothing
// else: what the kernel alone spends on that conversion, for `scripts/bench` to time beside it.
//
//   bench-floor ROOT JOBS
//
// A bench reference, not a tool: it checks nothing, refuses nothing, cannot resume, and trusts
// the tree (the bench's own, fresh). It makes the calls the conversion makes per entry, in the
// same order, on JOBS threads (each directory's entries by one thread):
//   - a pass that reads every entry before anything changes: stat, listxattr, and a symlink's
//     target;
//   - then, per entry: stat, listxattr; a file or directory gets user.virtfs.uid, .gid and .mode
//     (mode last) and the host owner and mode QEMU's user needs (the caller's, 0600 or 0700); a
//     symlink, device, fifo or socket is rebuilt as a file under a temporary name (its target as
//     data, the xattrs, rdev for devices, its times) and renamed over its old name;
//   - each directory's times given back when its entries are done, and one syncfs at the end.
// Where the kernel has no setxattrat/listxattrat (before 6.13), the l*xattr calls on a
// /proc/self/fd path, as the toolkit falls back to. Exits 1 if any call failed.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif

struct xattr_args { uint64_t value; uint32_t size; uint32_t flags; };

static int failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void failed(const char *call, const char *name) {
    fprintf(stderr, "bench-floor: %s %s: %s\n", call, name, strerror(errno));
    __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
}

// The directories still to do: a stack shared by the threads.
static int *todo, ntodo, capacity, busy;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;

static void push(int fd) {
    pthread_mutex_lock(&lock);
    if (ntodo == capacity) {
        capacity = capacity ? capacity * 2 : 64;
        todo = realloc(todo, sizeof *todo * capacity);
    }
    todo[ntodo++] = fd;
    pthread_cond_signal(&ready);
    pthread_mutex_unlock(&lock);
}

static int pop(void) {
    pthread_mutex_lock(&lock);
    while (ntodo == 0 && busy > 0) pthread_cond_wait(&ready, &lock);
    int fd = -1;
    if (ntodo > 0) {
        fd = todo[--ntodo];
        busy++;
    } else {
        pthread_cond_broadcast(&ready);
    }
    pthread_mutex_unlock(&lock);
    return fd;
}

static void done(void) {
    pthread_mutex_lock(&lock);
    busy--;
    pthread_cond_broadcast(&ready);
    pthread_mutex_unlock(&lock);
}

// Set by whichever thread first meets ENOSYS, read by all.
static _Atomic int legacy;

// NAME below DIR as a path the l*xattr calls take.
static void procPath(char *path, size_t size, int dir, const char *name) {
    snprintf(path, size, "/proc/self/fd/%d/%s", dir, name);
}

static void setxattrat(int dir, const char *name, const char *attr, const void *value,
                       size_t size) {
    struct xattr_args args = { (uint64_t)(uintptr_t)value, (uint32_t)size, 0 };
    if (!legacy && syscall(SYS_setxattrat, dir, name, AT_SYMLINK_NOFOLLOW, attr, &args,
                           sizeof args) == 0)
        return;
    if (!legacy && errno != ENOSYS) { failed("setxattrat", name); return; }
    legacy = 1;
    char path[4200];
    procPath(path, sizeof path, dir, name);
    if (lsetxattr(path, attr, value, size, 0) != 0) failed("lsetxattr", name);
}

static void listxattrat(int dir, const char *name, char *list, size_t size) {
    if (!legacy && syscall(SYS_listxattrat, dir, name, AT_SYMLINK_NOFOLLOW, list, size) >= 0)
        return;
    if (!legacy && errno != ENOSYS) { failed("listxattrat", name); return; }
    legacy = 1;
    char path[4200];
    procPath(path, sizeof path, dir, name);
    if (llistxattr(path, list, size) < 0) failed("llistxattr", name);
}

static void readEntry(int dir, const char *name, const struct stat *st) {
    char list[1024], target[4096];
    listxattrat(dir, name, list, sizeof list);
    if (S_ISLNK(st->st_mode) && readlinkat(dir, name, target, sizeof target) < 0)
        failed("readlinkat", name);
}

// The export root, through its descriptor.
static void convertRoot(int fd) {
    struct stat st;
    char list[1024];
    if (fstat(fd, &st) != 0) { failed("fstat", "."); return; }
    if (flistxattr(fd, list, sizeof list) < 0) failed("flistxattr", ".");
    uint32_t uid = st.st_uid, gid = st.st_gid, mode = st.st_mode;
    if (fsetxattr(fd, "user.virtfs.uid", &uid, 4, 0) != 0) failed("fsetxattr", ".");
    if (fsetxattr(fd, "user.virtfs.gid", &gid, 4, 0) != 0) failed("fsetxattr", ".");
    if (fsetxattr(fd, "user.virtfs.mode", &mode, 4, 0) != 0) failed("fsetxattr", ".");
    if (fchown(fd, geteuid(), getegid()) != 0) failed("fchown", ".");
    if (fchmod(fd, 0700) != 0) failed("fchmod", ".");
}

static void convertEntry(int dir, const char *name) {
    struct stat st;
    char list[1024], target[4096];
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) { failed("fstatat", name); return; }
    listxattrat(dir, name, list, sizeof list);
    uint32_t uid = st.st_uid, gid = st.st_gid, mode = st.st_mode;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        setxattrat(dir, name, "user.virtfs.uid", &uid, 4);
        setxattrat(dir, name, "user.virtfs.gid", &gid, 4);
        setxattrat(dir, name, "user.virtfs.mode", &mode, 4);
        if (fchownat(dir, name, geteuid(), getegid(), AT_SYMLINK_NOFOLLOW) != 0)
            failed("fchownat", name);
        if (fchmodat(dir, name, S_ISDIR(st.st_mode) ? 0700 : 0600, 0) != 0)
            failed("fchmodat", name);
        return;
    }
    ssize_t length = 0;
    if (S_ISLNK(st.st_mode) && (length = readlinkat(dir, name, target, sizeof target)) < 0) {
        failed("readlinkat", name);
        return;
    }
    const char *temporary = ".bench-floor.tmp";
    int fd = openat(dir, temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) { failed("openat", temporary); return; }
    if (length > 0 && write(fd, target, length) != length) failed("write", temporary);
    if (fsetxattr(fd, "user.virtfs.uid", &uid, 4, 0) != 0) failed("fsetxattr", temporary);
    if (fsetxattr(fd, "user.virtfs.gid", &gid, 4, 0) != 0) failed("fsetxattr", temporary);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        uint64_t rdev = st.st_rdev;
        if (fsetxattr(fd, "user.virtfs.rdev", &rdev, 8, 0) != 0) failed("fsetxattr", temporary);
    }
    if (fsetxattr(fd, "user.virtfs.mode", &mode, 4, 0) != 0) failed("fsetxattr", temporary);
    struct timespec times[2] = { st.st_atim, st.st_mtim };
    if (futimens(fd, times) != 0) failed("futimens", temporary);
    close(fd);
    if (renameat(dir, temporary, dir, name) != 0) failed("renameat", name);
}

static int converting;

// One directory: its entries (subdirectories pushed for any thread), then its times back.
static void directory(int fd) {
    struct stat self;
    if (fstat(fd, &self) != 0) failed("fstat", ".");
    DIR *d = fdopendir(dup(fd));
    if (!d) { failed("fdopendir", "."); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        struct stat st;
        if (!converting) {
            if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                failed("fstatat", e->d_name);
                continue;
            }
            readEntry(fd, e->d_name, &st);
        } else {
            convertEntry(fd, e->d_name);
        }
        if (e->d_type == DT_DIR) {
            int child = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child < 0) failed("openat", e->d_name);
            else push(child);
        }
    }
    closedir(d);
    if (converting) {
        struct timespec times[2] = { self.st_atim, self.st_mtim };
        if (futimens(fd, times) != 0) failed("futimens", ".");
    }
    close(fd);
}

static void *worker(void *unused) {
    (void)unused;
    for (int fd; (fd = pop()) >= 0;) {
        directory(fd);
        done();
    }
    return NULL;
}

static void pass(const char *root, int jobs) {
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) { failed("open", root); exit(1); }
    if (converting) convertRoot(fd);
    push(fd);
    pthread_t threads[64];
    for (int i = 0; i < jobs; i++) pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < jobs; i++) pthread_join(threads[i], NULL);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench-floor ROOT JOBS\n");
        return 2;
    }
    int jobs = atoi(argv[2]);
    if (jobs < 1 || jobs > 64) jobs = 1;
    pass(argv[1], jobs);
    converting = 1;
    pass(argv[1], jobs);
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0) failed("syncfs", argv[1]);
    return failures ? 1 : 0;
}
