// Package vulkan is Realm's GPU backend: the engine's forward-pass graph
// of every architecture (internal/engine/arch_*.go) is recorded into
// command buffers, one compute-shader dispatch per node (GLSL in
// shaders/, compiled to the committed SPIR-V in spv/ by `go generate`).
// Weights and norm vectors are uploaded once at load into device buffers
// (split where a device limits the size of one storage-buffer binding),
// activations and the f16 KV cache stay on the device, and only the
// logits come back. One pass may carry several sessions (DecodeBatch).
//
// Vulkan is reached through a thin cgo shim (shim.h, shim_vulkan.c) that
// opens the loader with dlopen, so the plugin starts, and its probe
// reports why it cannot run, on a machine without Vulkan. The shim needs
// the Vulkan headers (libvulkan-dev) and builds only with the
// vulkan_headers tag, which the Makefile sets when it finds them (so the
// Go build cache never reuses a build made before they were installed);
// without cgo or without the tag the package builds a stand-in (stub.go)
// that reports no device and says why.
package vulkan

//go:generate ./gen.sh
