#ifndef VIRTFS_FUSE_SHIM_H
#define VIRTFS_FUSE_SHIM_H

#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <sys/statvfs.h>
#include <errno.h>
#include <stdlib.h>

/* fuse_main is a macro (it passes sizeof the operations table), which Swift cannot call. */
static inline int virtfs_fuse_main(int argc, char **argv, const struct fuse_operations *op, void *data) {
    return fuse_main(argc, argv, op, data);
}

/* A read answered with the backing file's descriptor and offset, not its bytes: libfuse splices
   them from the file to /dev/fuse where the kernel can, as libfuse's passthrough_fh example does.
   libfuse frees the vector with free(). */
static inline int virtfs_read_from_fd(struct fuse_bufvec **bufp, size_t size, off_t offset, int fd) {
    struct fuse_bufvec *vec = malloc(sizeof(struct fuse_bufvec));
    if (vec == NULL) return -ENOMEM;
    *vec = (struct fuse_bufvec) FUSE_BUFVEC_INIT(size);
    vec->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    vec->buf[0].fd = fd;
    vec->buf[0].pos = offset;
    *bufp = vec;
    return 0;
}

#endif
