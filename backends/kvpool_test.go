package backends_test

import (
	"context"
	"errors"
	"testing"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
	"github.com/realmrt/realm/internal/refdata"
)

// TestKVPoolOverGRPC runs the CPU engine behind the plugin protocol:
// the KV budget reaches it in LoadRequest, prefix reuse shows in
// Info.KVPools, and a full pool fails Decode with ErrOutOfMemory.
func TestKVPoolOverGRPC(t *testing.T) {
	ctx := context.Background()
	path, err := refdata.Path("models", "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	c := connect(t, engine.NewBackend(reference.New(), engine.Options{Name: "reference"}))
	const block = 5 * 2 * 32 * 32 * 2 // stories260K: 5 layers, K and V of 32 f16 values, 32 positions
	mi, err := c.LoadModel(ctx, backends.LoadRequest{Path: path, KVBudget: 6 * block})
	if err != nil {
		t.Fatal(err)
	}
	if mi.KVBudgetBytes != 6*block {
		t.Errorf("KVBudgetBytes = %d, want %d", mi.KVBudgetBytes, 6*block)
	}
	toks := make([]int32, 80)
	for i := range toks {
		toks[i] = int32(10 + i)
	}
	var sids []backends.SessionID
	for range 2 {
		sid, err := c.OpenSession(ctx, mi.ID, 256)
		if err != nil {
			t.Fatal(err)
		}
		sids = append(sids, sid)
		if _, err := c.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantNone}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := backends.KVPoolStats{Model: mi.ID, BudgetBytes: 6 * block, AllocatedBytes: 4 * block, UsedBytes: 4 * block,
		BlockTokens: engine.KVBlockSize, Hits: 2, Misses: 2}
	if len(info.KVPools) != 1 || info.KVPools[0] != want {
		t.Fatalf("KVPools = %+v, want [%+v]", info.KVPools, want)
	}
	// 2 shared + 1 + 1 blocks in use; another 80-token prompt needs 3.
	sid, err := c.OpenSession(ctx, mi.ID, 256)
	if err != nil {
		t.Fatal(err)
	}
	other := make([]int32, 80)
	for i := range other {
		other[i] = int32(200 + i)
	}
	if _, err := c.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: other, Want: backends.WantNone}); !errors.Is(err, backends.ErrOutOfMemory) {
		t.Fatalf("Decode beyond the pool: %v, want ErrOutOfMemory", err)
	}
	if err := c.CloseSession(ctx, sids[0]); err != nil {
		t.Fatal(err)
	}
	res, err := c.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: other, Want: backends.WantNone})
	if err != nil || res.NPast != 80 {
		t.Fatalf("Decode after a session closed: %+v, %v", res, err)
	}
}
