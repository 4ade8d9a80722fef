package tests

import (
	"context"
	"testing"
	"time"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/internal/backend/reference"
	"github.com/realmrt/realm/internal/engine"
)

// The decode benchmarks measure one single-token Decode on stories260K
// (sampled in the backend, as the generation loop does), so that
// Plugin − InProcess is the per-token cost of the plugin boundary.

func BenchmarkDecodeStories_InProcess(b *testing.B) {
	b.Run("sample", func(b *testing.B) {
		pluginBenchDecode(b, engine.NewBackend(reference.New(), engine.Options{Name: "reference", ProtocolVersion: backends.ProtocolVersion, Threads: 1}), backends.WantSample)
	})
	b.Run("logits", func(b *testing.B) {
		pluginBenchDecode(b, engine.NewBackend(reference.New(), engine.Options{Name: "reference", ProtocolVersion: backends.ProtocolVersion, Threads: 1}), backends.WantLogits)
	})
}

func BenchmarkDecodeStories_Plugin(b *testing.B) {
	s := pluginSupervisor(b, pluginBuildReference(b))
	b.Run("sample", func(b *testing.B) { pluginBenchDecode(b, s, backends.WantSample) })
	b.Run("logits", func(b *testing.B) { pluginBenchDecode(b, s, backends.WantLogits) })
}

func pluginBenchDecode(b *testing.B, be backends.Backend, want backends.Want) {
	path, _, ref := pluginStories(b)
	ctx := context.Background()
	mi, err := be.LoadModel(ctx, backends.LoadRequest{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	defer be.UnloadModel(ctx, mi.ID)
	const nCtx = 256
	sid, err := be.OpenSession(ctx, mi.ID, nCtx)
	if err != nil {
		b.Fatal(err)
	}
	n := len(ref.PromptIDs)
	if _, err := be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: ref.PromptIDs, Want: backends.WantNone}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if n == nCtx {
			b.StopTimer()
			if err := be.Truncate(ctx, sid, len(ref.PromptIDs)); err != nil {
				b.Fatal(err)
			}
			n = len(ref.PromptIDs)
			b.StartTimer()
		}
		if _, err := be.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{ref.GenIDs[i%len(ref.GenIDs)]}, Want: want}); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkPluginStartup measures a plugin's start: spawn, go-plugin
// handshake, gRPC connection and Info (NewSupervisor), plus its Close.
func BenchmarkPluginStartup(b *testing.B) {
	bin := pluginBuildReference(b)
	var startup time.Duration
	for b.Loop() {
		t0 := time.Now()
		s := pluginSupervisor(b, bin)
		startup += time.Since(t0)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(startup.Microseconds())/float64(b.N)/1000, "ms-to-Info")
}
