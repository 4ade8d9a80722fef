// shim.h: a thin C layer over the Vulkan API for the Go package. The
// Vulkan loader is opened with dlopen at run time (no link-time
// dependency on libvulkan), so a machine without a loader gets a clear
// error instead of a plugin that cannot start.
#ifndef REALM_VK_SHIM_H
#define REALM_VK_SHIM_H

#include <stdint.h>
#include <stddef.h>

typedef struct rv_ctx rv_ctx;
typedef struct rv_dev rv_dev;
typedef struct rv_buf rv_buf;
typedef struct rv_pipe rv_pipe;

// Result codes besides VkResult values (which are passed through).
#define RV_OK 0
#define RV_ERR_NOLOADER -100000
#define RV_ERR_NOMEMTYPE -100001
#define RV_ERR_POOL -100002
#define RV_ERR_TIMEOUT -100003
#define RV_ERR_ARG -100004

typedef struct rv_devinfo {
	char name[256];
	char driver_name[256];
	char driver_info[256];
	int type;           // VkPhysicalDeviceType
	uint32_t api_version;
	uint32_t driver_version;
	uint32_t vendor_id;
	uint64_t device_local_bytes; // sum of DEVICE_LOCAL heaps
	uint64_t heap_bytes[16];
	uint32_t heap_flags[16];
	uint32_t heap_count;
	uint32_t subgroup_size;
	int fp16;           // shaderFloat16
	int int8;           // shaderInt8
	int storage16;      // storageBuffer16BitAccess
	int has_compute;    // a queue family with compute
	uint64_t max_storage_range;
	uint64_t max_alloc;
	uint32_t max_shared;
	uint32_t max_wg_count[3];
	uint32_t max_wg_invocations;
	uint32_t min_storage_align;
	uint32_t max_push;
} rv_devinfo;

int rv_init(rv_ctx **out, char *err, int errlen);
void rv_free(rv_ctx *c);
int rv_device_count(rv_ctx *c);
int rv_device_info(rv_ctx *c, int idx, rv_devinfo *info);

int rv_dev_open(rv_ctx *c, int idx, rv_dev **out, char *err, int errlen);
void rv_dev_close(rv_dev *d);

// rv_buf_create allocates a buffer; host != 0 asks for host-visible
// coherent memory (mapped), otherwise device-local memory (mapped too
// when the device-local type is host-visible, as on lavapipe).
int rv_buf_create(rv_dev *d, uint64_t size, int host, rv_buf **out);
void rv_buf_destroy(rv_dev *d, rv_buf *b);
void *rv_buf_map(rv_buf *b);
uint64_t rv_buf_size(rv_buf *b);

int rv_pipe_create(rv_dev *d, const uint32_t *code, size_t size, int nbind, int push_size, rv_pipe **out);
void rv_pipe_destroy(rv_dev *d, rv_pipe *p);

int rv_begin(rv_dev *d);
int rv_dispatch(rv_dev *d, rv_pipe *p, rv_buf **bufs, int nbuf, const void *push, int push_size, uint32_t gx, uint32_t gy, uint32_t gz);
int rv_copy(rv_dev *d, rv_buf *src, uint64_t soff, rv_buf *dst, uint64_t doff, uint64_t size);
int rv_fill(rv_dev *d, rv_buf *dst, uint64_t off, uint64_t size, uint32_t value);
// rv_submit ends the command buffer, submits it and waits (timeout in ms).
int rv_submit(rv_dev *d, uint64_t timeout_ms);

#endif
