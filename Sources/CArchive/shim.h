#ifndef VIRTFS_ARCHIVE_SHIM_H
#define VIRTFS_ARCHIVE_SHIM_H

/* libarchive: every archive format and compression filter virtfs-import reads and
   virtfs-export writes, and the mtree(5) manifests. */
#include <archive.h>
#include <archive_entry.h>

/* libcrypto's SHA-256, for the content digests of mtree manifests. */
#include <openssl/evp.h>

#endif
