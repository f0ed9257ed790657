#ifndef VIRTFS_FUSE_SHIM_H
#define VIRTFS_FUSE_SHIM_H

#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <sys/statvfs.h>

/* fuse_main is a macro (it passes sizeof the operations table), which Swift cannot call. */
static inline int virtfs_fuse_main(int argc, char **argv, const struct fuse_operations *op, void *data) {
    return fuse_main(argc, argv, op, data);
}

#endif
