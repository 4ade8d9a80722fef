//go:build !cgo

package vulkan

import (
	"context"
	"testing"
)

func TestBuiltWithoutVulkan(t *testing.T) {
	b := New(Options{})
	info, err := b.Info(context.Background())
	if err != nil || info.Name != Name || len(info.Devices) != 0 {
		t.Fatalf("Info = %+v, %v; want the vulkan backend with no devices", info, err)
	}
	if _, err := b.OpenSession(context.Background(), 1, 0); err == nil {
		t.Fatal("OpenSession succeeded without Vulkan")
	}
	t.Log("built without cgo: the device tests are not compiled in this build")
}
