//go:build cgo && vulkan_headers

// shim_vulkan.c implements shim.h over a dlopen'ed Vulkan loader. It
// needs the Vulkan headers at build time (Debian: libvulkan-dev); where
// they are missing it compiles to a shim whose rv_init reports that, so
// the package and the plugin build everywhere cgo does.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

// RV_NO_VULKAN (CGO_CFLAGS=-DRV_NO_VULKAN) builds the header-less shim
// on purpose (to test that path).
#if defined(__has_include) && !defined(RV_NO_VULKAN)
#if __has_include(<vulkan/vulkan.h>)
#define RV_HAVE_VULKAN 1
#endif
#endif

#ifdef RV_HAVE_VULKAN
#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>
#include <dlfcn.h>

#define RV_FUNCS(X) \
	X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties) \
	X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceFeatures2) \
	X(vkGetPhysicalDeviceMemoryProperties) X(vkGetPhysicalDeviceQueueFamilyProperties) \
	X(vkCreateDevice) X(vkDestroyDevice) X(vkGetDeviceQueue) \
	X(vkCreateBuffer) X(vkDestroyBuffer) X(vkGetBufferMemoryRequirements) \
	X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory) X(vkUnmapMemory) \
	X(vkCreateShaderModule) X(vkDestroyShaderModule) \
	X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) \
	X(vkCreatePipelineLayout) X(vkDestroyPipelineLayout) \
	X(vkCreateComputePipelines) X(vkDestroyPipeline) \
	X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool) X(vkResetDescriptorPool) \
	X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets) \
	X(vkCreateCommandPool) X(vkDestroyCommandPool) X(vkAllocateCommandBuffers) \
	X(vkResetCommandBuffer) X(vkBeginCommandBuffer) X(vkEndCommandBuffer) \
	X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets) X(vkCmdPushConstants) X(vkCmdDispatch) \
	X(vkCmdPipelineBarrier) X(vkCmdCopyBuffer) X(vkCmdFillBuffer) \
	X(vkCreateFence) X(vkDestroyFence) X(vkResetFences) X(vkWaitForFences) \
	X(vkQueueSubmit) X(vkDeviceWaitIdle)

struct rv_ctx {
	void *lib;
	VkInstance inst;
	uint32_t ndev;
	VkPhysicalDevice devs[16];
	PFN_vkGetInstanceProcAddr gipa;
#define DECL(n) PFN_##n n;
	RV_FUNCS(DECL)
#undef DECL
};

#define RV_MAXBIND 8
#define RV_POOL_SETS 4096

struct rv_dev {
	rv_ctx *c;
	VkPhysicalDevice pd;
	VkDevice dev;
	VkQueue queue;
	uint32_t qfam;
	VkPhysicalDeviceMemoryProperties mem;
	VkDescriptorPool pool;
	VkCommandPool cpool;
	VkCommandBuffer cmd;
	VkFence fence;
	int recording;
};

struct rv_buf {
	VkBuffer buf;
	VkDeviceMemory mem;
	void *map;
	uint64_t size;
};

struct rv_pipe {
	VkDescriptorSetLayout dsl;
	VkPipelineLayout layout;
	VkPipeline pipe;
	int nbind;
	int push;
};

int rv_init(rv_ctx **out, char *err, int errlen) {
	*out = NULL;
	void *lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "no Vulkan loader: %s", dlerror());
		return RV_ERR_NOLOADER;
	}
	rv_ctx *c = calloc(1, sizeof *c);
	c->lib = lib;
	c->gipa = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
	if (!c->gipa) {
		snprintf(err, errlen, "libvulkan has no vkGetInstanceProcAddr");
		dlclose(lib);
		free(c);
		return RV_ERR_NOLOADER;
	}
	PFN_vkCreateInstance create = (PFN_vkCreateInstance)c->gipa(NULL, "vkCreateInstance");
	PFN_vkEnumerateInstanceVersion ver = (PFN_vkEnumerateInstanceVersion)c->gipa(NULL, "vkEnumerateInstanceVersion");
	uint32_t api = VK_API_VERSION_1_0;
	if (ver) ver(&api);
	if (!create || api < VK_API_VERSION_1_1) {
		snprintf(err, errlen, "Vulkan loader is older than 1.1");
		dlclose(lib);
		free(c);
		return RV_ERR_NOLOADER;
	}
	VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
		.pApplicationName = "realm", .pEngineName = "realm", .apiVersion = VK_API_VERSION_1_2};
	VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
	VkResult r = create(&ici, NULL, &c->inst);
	if (r != VK_SUCCESS) {
		snprintf(err, errlen, "vkCreateInstance failed: %d%s", r,
			r == VK_ERROR_INCOMPATIBLE_DRIVER ? " (no Vulkan driver/ICD installed)" : "");
		dlclose(lib);
		free(c);
		return r;
	}
	const char *missing = NULL;
#define LOAD(n) c->n = (PFN_##n)c->gipa(c->inst, #n); \
	if (!c->n && !missing) missing = #n;
	RV_FUNCS(LOAD)
#undef LOAD
	if (missing) {
		snprintf(err, errlen, "Vulkan function %s missing", missing);
		PFN_vkDestroyInstance destroy = (PFN_vkDestroyInstance)c->gipa(c->inst, "vkDestroyInstance");
		if (destroy) destroy(c->inst, NULL);
		free(c);
		return RV_ERR_NOLOADER;
	}
	c->ndev = 16;
	r = c->vkEnumeratePhysicalDevices(c->inst, &c->ndev, c->devs);
	if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
		snprintf(err, errlen, "vkEnumeratePhysicalDevices failed: %d", r);
		c->vkDestroyInstance(c->inst, NULL);
		dlclose(lib);
		free(c);
		return r;
	}
	*out = c;
	return RV_OK;
}

void rv_free(rv_ctx *c) {
	if (!c) return;
	c->vkDestroyInstance(c->inst, NULL);
	// The loader stays loaded: drivers may have registered atexit hooks.
	free(c);
}

int rv_device_count(rv_ctx *c) { return (int)c->ndev; }

static int compute_family(rv_ctx *c, VkPhysicalDevice pd, uint32_t *fam) {
	VkQueueFamilyProperties q[32];
	uint32_t n = 32;
	c->vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
	for (uint32_t i = 0; i < n; i++) {
		if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) { *fam = i; return 1; }
	}
	return 0;
}

int rv_device_info(rv_ctx *c, int idx, rv_devinfo *info) {
	if (idx < 0 || (uint32_t)idx >= c->ndev) return RV_ERR_ARG;
	VkPhysicalDevice pd = c->devs[idx];
	memset(info, 0, sizeof *info);
	VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
	VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &drv};
	VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sub};
	VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
	VkPhysicalDeviceProperties base;
	c->vkGetPhysicalDeviceProperties(pd, &base);
	int v12 = base.apiVersion >= VK_API_VERSION_1_2;
	if (!v12) sub.pNext = NULL; // driver properties are core only from 1.2
	c->vkGetPhysicalDeviceProperties2(pd, &p2);
	VkPhysicalDeviceProperties *p = &p2.properties;
	snprintf(info->name, sizeof info->name, "%s", p->deviceName);
	if (v12) {
		snprintf(info->driver_name, sizeof info->driver_name, "%s", drv.driverName);
		snprintf(info->driver_info, sizeof info->driver_info, "%s", drv.driverInfo);
	}
	info->type = p->deviceType;
	info->api_version = p->apiVersion;
	info->driver_version = p->driverVersion;
	info->vendor_id = p->vendorID;
	info->subgroup_size = sub.subgroupSize;
	info->max_storage_range = p->limits.maxStorageBufferRange;
	info->max_alloc = m3.maxMemoryAllocationSize;
	info->max_shared = p->limits.maxComputeSharedMemorySize;
	for (int i = 0; i < 3; i++) info->max_wg_count[i] = p->limits.maxComputeWorkGroupCount[i];
	info->max_wg_invocations = p->limits.maxComputeWorkGroupInvocations;
	info->min_storage_align = (uint32_t)p->limits.minStorageBufferOffsetAlignment;
	info->max_push = p->limits.maxPushConstantsSize;

	VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
	VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES, .pNext = &f16};
	VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s16};
	c->vkGetPhysicalDeviceFeatures2(pd, &f2);
	info->fp16 = f16.shaderFloat16;
	info->int8 = f16.shaderInt8;
	info->storage16 = s16.storageBuffer16BitAccess;

	VkPhysicalDeviceMemoryProperties mem;
	c->vkGetPhysicalDeviceMemoryProperties(pd, &mem);
	info->heap_count = mem.memoryHeapCount > 16 ? 16 : mem.memoryHeapCount;
	for (uint32_t i = 0; i < info->heap_count; i++) {
		info->heap_bytes[i] = mem.memoryHeaps[i].size;
		info->heap_flags[i] = mem.memoryHeaps[i].flags;
		if (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) info->device_local_bytes += mem.memoryHeaps[i].size;
	}
	uint32_t fam;
	info->has_compute = compute_family(c, pd, &fam);
	return RV_OK;
}

int rv_dev_open(rv_ctx *c, int idx, rv_dev **out, char *err, int errlen) {
	*out = NULL;
	if (idx < 0 || (uint32_t)idx >= c->ndev) {
		snprintf(err, errlen, "no device %d", idx);
		return RV_ERR_ARG;
	}
	rv_dev *d = calloc(1, sizeof *d);
	d->c = c;
	d->pd = c->devs[idx];
	if (!compute_family(c, d->pd, &d->qfam)) {
		snprintf(err, errlen, "device has no compute queue");
		free(d);
		return RV_ERR_ARG;
	}
	c->vkGetPhysicalDeviceMemoryProperties(d->pd, &d->mem);
	float prio = 1.0f;
	VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
		.queueFamilyIndex = d->qfam, .queueCount = 1, .pQueuePriorities = &prio};
	VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
		.queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
	VkResult r = c->vkCreateDevice(d->pd, &dci, NULL, &d->dev);
	if (r != VK_SUCCESS) {
		snprintf(err, errlen, "vkCreateDevice failed: %d", r);
		free(d);
		return r;
	}
	c->vkGetDeviceQueue(d->dev, d->qfam, 0, &d->queue);
	VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = RV_POOL_SETS * RV_MAXBIND};
	VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
		.maxSets = RV_POOL_SETS, .poolSizeCount = 1, .pPoolSizes = &ps};
	if ((r = c->vkCreateDescriptorPool(d->dev, &dpi, NULL, &d->pool)) != VK_SUCCESS) goto fail;
	VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = d->qfam};
	if ((r = c->vkCreateCommandPool(d->dev, &cpi, NULL, &d->cpool)) != VK_SUCCESS) goto fail;
	VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
		.commandPool = d->cpool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
	if ((r = c->vkAllocateCommandBuffers(d->dev, &cai, &d->cmd)) != VK_SUCCESS) goto fail;
	VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
	if ((r = c->vkCreateFence(d->dev, &fci, NULL, &d->fence)) != VK_SUCCESS) goto fail;
	*out = d;
	return RV_OK;
fail:
	snprintf(err, errlen, "device setup failed: %d", r);
	rv_dev_close(d);
	return r;
}

void rv_dev_close(rv_dev *d) {
	if (!d) return;
	rv_ctx *c = d->c;
	if (d->dev) {
		c->vkDeviceWaitIdle(d->dev);
		if (d->fence) c->vkDestroyFence(d->dev, d->fence, NULL);
		if (d->cpool) c->vkDestroyCommandPool(d->dev, d->cpool, NULL);
		if (d->pool) c->vkDestroyDescriptorPool(d->dev, d->pool, NULL);
		c->vkDestroyDevice(d->dev, NULL);
	}
	free(d);
}

// find_type picks a memory type allowed by bits with all of want, and
// prefers one that also has all of prefer.
static int find_type(rv_dev *d, uint32_t bits, uint32_t want, uint32_t prefer) {
	int best = -1;
	for (uint32_t i = 0; i < d->mem.memoryTypeCount; i++) {
		if (!(bits & (1u << i))) continue;
		uint32_t f = d->mem.memoryTypes[i].propertyFlags;
		if ((f & want) != want) continue;
		if ((f & prefer) == prefer) return (int)i;
		if (best < 0) best = (int)i;
	}
	return best;
}

// find_device_type picks a device-local memory type in the largest
// device-local heap (not a small host-visible BAR window), preferring a
// host-visible coherent one within that heap (integrated GPUs, lavapipe,
// resizable BAR) so that uploads need no staging copy.
static int find_device_type(rv_dev *d, uint32_t bits) {
	int best = -1;
	VkDeviceSize best_heap = 0;
	int best_hv = 0;
	uint32_t hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
	for (uint32_t i = 0; i < d->mem.memoryTypeCount; i++) {
		if (!(bits & (1u << i))) continue;
		uint32_t f = d->mem.memoryTypes[i].propertyFlags;
		if (!(f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)) continue;
		VkDeviceSize heap = d->mem.memoryHeaps[d->mem.memoryTypes[i].heapIndex].size;
		int is_hv = (f & hv) == hv;
		if (best < 0 || heap > best_heap || (heap == best_heap && is_hv && !best_hv)) {
			best = (int)i;
			best_heap = heap;
			best_hv = is_hv;
		}
	}
	return best;
}

int rv_buf_create(rv_dev *d, uint64_t size, int host, rv_buf **out) {
	rv_ctx *c = d->c;
	*out = NULL;
	if (size == 0) size = 16;
	rv_buf *b = calloc(1, sizeof *b);
	b->size = size;
	VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
		.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
		.sharingMode = VK_SHARING_MODE_EXCLUSIVE};
	VkResult r = c->vkCreateBuffer(d->dev, &bci, NULL, &b->buf);
	if (r != VK_SUCCESS) { free(b); return r; }
	VkMemoryRequirements req;
	c->vkGetBufferMemoryRequirements(d->dev, b->buf, &req);
	int t;
	if (host) {
		t = find_type(d, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
			VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
	} else {
		t = find_device_type(d, req.memoryTypeBits);
		if (t < 0) t = find_type(d, req.memoryTypeBits, 0, 0);
	}
	if (t < 0) {
		c->vkDestroyBuffer(d->dev, b->buf, NULL);
		free(b);
		return RV_ERR_NOMEMTYPE;
	}
	VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size, .memoryTypeIndex = (uint32_t)t};
	r = c->vkAllocateMemory(d->dev, &mai, NULL, &b->mem);
	if (r != VK_SUCCESS) {
		c->vkDestroyBuffer(d->dev, b->buf, NULL);
		free(b);
		return r;
	}
	c->vkBindBufferMemory(d->dev, b->buf, b->mem, 0);
	uint32_t f = d->mem.memoryTypes[t].propertyFlags;
	uint32_t hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
	if ((f & hv) == hv) {
		r = c->vkMapMemory(d->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
		if (r != VK_SUCCESS) b->map = NULL;
	}
	*out = b;
	return RV_OK;
}

void rv_buf_destroy(rv_dev *d, rv_buf *b) {
	if (!b) return;
	rv_ctx *c = d->c;
	if (b->map) c->vkUnmapMemory(d->dev, b->mem);
	c->vkDestroyBuffer(d->dev, b->buf, NULL);
	c->vkFreeMemory(d->dev, b->mem, NULL);
	free(b);
}

void *rv_buf_map(rv_buf *b) { return b->map; }
uint64_t rv_buf_size(rv_buf *b) { return b->size; }

int rv_pipe_create(rv_dev *d, const uint32_t *code, size_t size, int nbind, int push_size, rv_pipe **out) {
	rv_ctx *c = d->c;
	*out = NULL;
	if (nbind < 1 || nbind > RV_MAXBIND || push_size < 0 || push_size > 128) return RV_ERR_ARG;
	rv_pipe *p = calloc(1, sizeof *p);
	p->nbind = nbind;
	p->push = push_size;
	VkDescriptorSetLayoutBinding b[RV_MAXBIND];
	for (int i = 0; i < nbind; i++) {
		b[i] = (VkDescriptorSetLayoutBinding){.binding = (uint32_t)i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
			.descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
	}
	VkDescriptorSetLayoutCreateInfo dli = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
		.bindingCount = (uint32_t)nbind, .pBindings = b};
	VkResult r = c->vkCreateDescriptorSetLayout(d->dev, &dli, NULL, &p->dsl);
	if (r != VK_SUCCESS) goto fail;
	VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = (uint32_t)push_size};
	VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
		.setLayoutCount = 1, .pSetLayouts = &p->dsl, .pushConstantRangeCount = push_size > 0 ? 1 : 0, .pPushConstantRanges = &pr};
	if ((r = c->vkCreatePipelineLayout(d->dev, &pli, NULL, &p->layout)) != VK_SUCCESS) goto fail;
	VkShaderModuleCreateInfo smi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = size, .pCode = code};
	VkShaderModule sm;
	if ((r = c->vkCreateShaderModule(d->dev, &smi, NULL, &sm)) != VK_SUCCESS) goto fail;
	VkComputePipelineCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
		.stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
			.module = sm, .pName = "main"},
		.layout = p->layout};
	r = c->vkCreateComputePipelines(d->dev, VK_NULL_HANDLE, 1, &cpi, NULL, &p->pipe);
	c->vkDestroyShaderModule(d->dev, sm, NULL);
	if (r != VK_SUCCESS) goto fail;
	*out = p;
	return RV_OK;
fail:
	rv_pipe_destroy(d, p);
	return r;
}

void rv_pipe_destroy(rv_dev *d, rv_pipe *p) {
	if (!p) return;
	rv_ctx *c = d->c;
	if (p->pipe) c->vkDestroyPipeline(d->dev, p->pipe, NULL);
	if (p->layout) c->vkDestroyPipelineLayout(d->dev, p->layout, NULL);
	if (p->dsl) c->vkDestroyDescriptorSetLayout(d->dev, p->dsl, NULL);
	free(p);
}

int rv_begin(rv_dev *d) {
	rv_ctx *c = d->c;
	VkResult r = c->vkResetDescriptorPool(d->dev, d->pool, 0);
	if (r != VK_SUCCESS) return r;
	if ((r = c->vkResetCommandBuffer(d->cmd, 0)) != VK_SUCCESS) return r;
	VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
		.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
	if ((r = c->vkBeginCommandBuffer(d->cmd, &bi)) != VK_SUCCESS) return r;
	d->recording = 1;
	return RV_OK;
}

static void barrier(rv_dev *d) {
	VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
	d->c->vkCmdPipelineBarrier(d->cmd,
		VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
		VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
		0, 1, &mb, 0, NULL, 0, NULL);
}

int rv_dispatch(rv_dev *d, rv_pipe *p, rv_buf **bufs, int nbuf, const void *push, int push_size, uint32_t gx, uint32_t gy, uint32_t gz) {
	rv_ctx *c = d->c;
	if (!d->recording || nbuf != p->nbind || push_size != p->push) return RV_ERR_ARG;
	VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
		.descriptorPool = d->pool, .descriptorSetCount = 1, .pSetLayouts = &p->dsl};
	VkDescriptorSet set;
	VkResult r = c->vkAllocateDescriptorSets(d->dev, &ai, &set);
	if (r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTED_POOL) return RV_ERR_POOL;
	if (r != VK_SUCCESS) return r;
	VkDescriptorBufferInfo bi[RV_MAXBIND];
	VkWriteDescriptorSet w[RV_MAXBIND];
	for (int i = 0; i < nbuf; i++) {
		bi[i] = (VkDescriptorBufferInfo){.buffer = bufs[i]->buf, .offset = 0, .range = VK_WHOLE_SIZE};
		w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
			.dstBinding = (uint32_t)i, .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
			.pBufferInfo = &bi[i]};
	}
	c->vkUpdateDescriptorSets(d->dev, (uint32_t)nbuf, w, 0, NULL);
	c->vkCmdBindPipeline(d->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
	c->vkCmdBindDescriptorSets(d->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
	if (push_size > 0) c->vkCmdPushConstants(d->cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, (uint32_t)push_size, push);
	c->vkCmdDispatch(d->cmd, gx, gy, gz);
	barrier(d);
	return RV_OK;
}

int rv_copy(rv_dev *d, rv_buf *src, uint64_t soff, rv_buf *dst, uint64_t doff, uint64_t size) {
	if (!d->recording) return RV_ERR_ARG;
	VkBufferCopy bc = {.srcOffset = soff, .dstOffset = doff, .size = size};
	d->c->vkCmdCopyBuffer(d->cmd, src->buf, dst->buf, 1, &bc);
	barrier(d);
	return RV_OK;
}

int rv_fill(rv_dev *d, rv_buf *dst, uint64_t off, uint64_t size, uint32_t value) {
	if (!d->recording) return RV_ERR_ARG;
	d->c->vkCmdFillBuffer(d->cmd, dst->buf, off, size, value);
	barrier(d);
	return RV_OK;
}

int rv_submit(rv_dev *d, uint64_t timeout_ms) {
	rv_ctx *c = d->c;
	if (!d->recording) return RV_ERR_ARG;
	d->recording = 0;
	VkResult r = c->vkEndCommandBuffer(d->cmd);
	if (r != VK_SUCCESS) return r;
	if ((r = c->vkResetFences(d->dev, 1, &d->fence)) != VK_SUCCESS) return r;
	VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &d->cmd};
	if ((r = c->vkQueueSubmit(d->queue, 1, &si, d->fence)) != VK_SUCCESS) return r;
	r = c->vkWaitForFences(d->dev, 1, &d->fence, VK_TRUE, timeout_ms * 1000000ull);
	if (r == VK_TIMEOUT) return RV_ERR_TIMEOUT;
	return r;
}

#else // !RV_HAVE_VULKAN

int rv_init(rv_ctx **out, char *err, int errlen) {
	*out = NULL;
	snprintf(err, errlen, "no Vulkan loader: built without the Vulkan headers (install libvulkan-dev and rebuild)");
	return RV_ERR_NOLOADER;
}
void rv_free(rv_ctx *c) { (void)c; }
int rv_device_count(rv_ctx *c) { (void)c; return 0; }
int rv_device_info(rv_ctx *c, int idx, rv_devinfo *info) { (void)c; (void)idx; (void)info; return RV_ERR_ARG; }
int rv_dev_open(rv_ctx *c, int idx, rv_dev **out, char *err, int errlen) {
	(void)c; (void)idx; *out = NULL;
	snprintf(err, errlen, "built without the Vulkan headers");
	return RV_ERR_ARG;
}
void rv_dev_close(rv_dev *d) { (void)d; }
int rv_buf_create(rv_dev *d, uint64_t size, int host, rv_buf **out) { (void)d; (void)size; (void)host; *out = NULL; return RV_ERR_ARG; }
void rv_buf_destroy(rv_dev *d, rv_buf *b) { (void)d; (void)b; }
void *rv_buf_map(rv_buf *b) { (void)b; return NULL; }
uint64_t rv_buf_size(rv_buf *b) { (void)b; return 0; }
int rv_pipe_create(rv_dev *d, const uint32_t *code, size_t size, int nbind, int push_size, rv_pipe **out) {
	(void)d; (void)code; (void)size; (void)nbind; (void)push_size; *out = NULL; return RV_ERR_ARG;
}
void rv_pipe_destroy(rv_dev *d, rv_pipe *p) { (void)d; (void)p; }
int rv_begin(rv_dev *d) { (void)d; return RV_ERR_ARG; }
int rv_dispatch(rv_dev *d, rv_pipe *p, rv_buf **bufs, int nbuf, const void *push, int push_size, uint32_t gx, uint32_t gy, uint32_t gz) {
	(void)d; (void)p; (void)bufs; (void)nbuf; (void)push; (void)push_size; (void)gx; (void)gy; (void)gz; return RV_ERR_ARG;
}
int rv_copy(rv_dev *d, rv_buf *src, uint64_t soff, rv_buf *dst, uint64_t doff, uint64_t size) {
	(void)d; (void)src; (void)soff; (void)dst; (void)doff; (void)size; return RV_ERR_ARG;
}
int rv_fill(rv_dev *d, rv_buf *dst, uint64_t off, uint64_t size, uint32_t value) {
	(void)d; (void)dst; (void)off; (void)size; (void)value; return RV_ERR_ARG;
}
int rv_submit(rv_dev *d, uint64_t timeout_ms) { (void)d; (void)timeout_ms; return RV_ERR_ARG; }

#endif // RV_HAVE_VULKAN
