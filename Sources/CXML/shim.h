#ifndef VIRTFS_XML_SHIM_H
#define VIRTFS_XML_SHIM_H

/* libxml2: libvirt domain XML, read by virtfs-qemu check --libvirt. */
#include <libxml/parser.h>
#include <libxml/tree.h>

/* xmlFree is a global function pointer, which Swift 6 does not call from safe code. */
static inline void virtfs_xml_free(void *string) { xmlFree(string); }

#endif
