package backends_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/realmrt/realm/backends"
	"github.com/realmrt/realm/backends/backendtest"
	"github.com/realmrt/realm/gguf"
)

// connect serves impl through go-plugin's in-process gRPC pair and
// returns the host-side client: every call crosses a real gRPC
// connection.
func connect(t *testing.T, impl backends.Backend) *backends.GRPCClient {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, backends.PluginMap(impl))
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(backends.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := raw.(*backends.GRPCClient)
	if !ok {
		t.Fatalf("Dispense returned %T", raw)
	}
	return c
}

func modelFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := connect(t, backendtest.New(40))

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "fake" || info.ProtocolVersion != backends.ProtocolVersion || !slices.Equal(info.Ops, []string{backends.OpAdd}) {
		t.Fatalf("info = %+v", info)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	mi, err := c.LoadModel(ctx, backends.LoadRequest{Path: modelFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	if mi.NVocab != 40 || mi.Arch != "fake" || mi.TensorTypes["F32"] != 1 || !slices.Equal(mi.TensorShapes["w"], []int{2, 3}) {
		t.Fatalf("model info = %+v", mi)
	}
	sid, err := c.OpenSession(ctx, mi.ID, 16)
	if err != nil {
		t.Fatal(err)
	}
	toks := []int32{1, 5, 9}
	res, err := c.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: toks, Want: backends.WantLogits})
	if err != nil {
		t.Fatal(err)
	}
	if res.NPast != 3 || !slices.Equal(res.Logits, backendtest.Logits(toks, 40)) {
		t.Fatalf("decode = %+v", res)
	}
	res, err = c.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{2}, Want: backends.WantSample})
	if err != nil {
		t.Fatal(err)
	}
	want := backendtest.Logits([]int32{1, 5, 9, 2}, 40)
	if res.NPast != 4 || res.Logits != nil || want[res.Token] != slices.Max(want) {
		t.Fatalf("sample = %+v", res)
	}
	if err := c.Truncate(ctx, sid, 1); err != nil {
		t.Fatal(err)
	}
	res, err = c.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{3}, Want: backends.WantNone})
	if err != nil || res.NPast != 2 || res.Logits != nil {
		t.Fatalf("decode after truncate = %+v, %v", res, err)
	}
	op, err := c.TensorOp(ctx, backends.TensorOpRequest{Op: backends.OpAdd, Inputs: []backends.TensorRef{
		{Shape: []int{3}, Data: gguf.F32Bytes([]float32{1, 2, 3})},
		{Shape: []int{3}, Data: gguf.F32Bytes([]float32{10, 20, 30})},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(op.Shape, []int{3}) || !slices.Equal(op.Data, []float32{11, 22, 33}) {
		t.Fatalf("tensor op = %+v", op)
	}
	if err := c.CloseSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if err := c.UnloadModel(ctx, mi.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenSession(ctx, mi.ID, 16); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("open on unloaded model: %v", err)
	}
	if _, err := c.Decode(ctx, backends.DecodeRequest{Session: sid, Tokens: []int32{1}, Want: backends.Want(7)}); !errors.Is(err, backends.ErrInvalidArgument) {
		t.Fatalf("bad want: %v", err)
	}
}

// TestErrorMapping checks that every sentinel survives the wire, with
// its message, and is not confused with another one.
func TestErrorMapping(t *testing.T) {
	sentinels := []error{
		backends.ErrNotFound, backends.ErrInvalidArgument, backends.ErrContextFull, backends.ErrUnsupported,
		backends.ErrInvalidModel, backends.ErrOutOfMemory, backends.ErrBackendCrashed, backends.ErrStaleHandle,
		backends.ErrProtocolMismatch, context.Canceled, context.DeadlineExceeded,
	}
	fake := backendtest.New(8)
	var inject error
	fake.Hook = func(_ context.Context, m string) error {
		if m == "Info" {
			return inject
		}
		return nil
	}
	c := connect(t, fake)
	for _, s := range sentinels {
		t.Run(s.Error(), func(t *testing.T) {
			inject = fmt.Errorf("plugin detail for %q: %w", s.Error(), s)
			_, err := c.Info(context.Background())
			if !errors.Is(err, s) {
				t.Fatalf("got %v (%T), want errors.Is %v", err, err, s)
			}
			if err.Error() != inject.Error() {
				t.Errorf("message %q, want %q", err.Error(), inject.Error())
			}
			for _, other := range sentinels {
				if other != s && errors.Is(err, other) {
					t.Errorf("%v also matches %v", err, other)
				}
			}
		})
	}
	t.Run("plain", func(t *testing.T) {
		inject = errors.New("something else")
		_, err := c.Info(context.Background())
		if err == nil || err.Error() != "something else" {
			t.Fatalf("got %v", err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				t.Errorf("plain error matches %v", s)
			}
		}
	})
}

// TestErrorFromBareStatus covers statuses made by gRPC itself (no
// ErrorDetail): the code alone picks the sentinel.
func TestErrorFromBareStatus(t *testing.T) {
	for _, tc := range []struct {
		code codes.Code
		want error
	}{
		{codes.NotFound, backends.ErrNotFound},
		{codes.InvalidArgument, backends.ErrInvalidArgument},
		{codes.ResourceExhausted, backends.ErrOutOfMemory},
		{codes.Unimplemented, backends.ErrUnsupported},
		{codes.FailedPrecondition, backends.ErrInvalidModel},
		{codes.Unavailable, backends.ErrBackendCrashed},
		{codes.Canceled, context.Canceled},
		{codes.DeadlineExceeded, context.DeadlineExceeded},
		{codes.Aborted, backends.ErrStaleHandle},
	} {
		err := backends.ErrorFromStatus(status.Error(tc.code, "msg"))
		if !errors.Is(err, tc.want) || err.Error() != "msg" {
			t.Errorf("%v: got %v, want %v", tc.code, err, tc.want)
		}
	}
	if backends.ErrorFromStatus(nil) != nil || backends.StatusFromError(nil) != nil {
		t.Error("nil must map to nil")
	}
	if st, _ := status.FromError(backends.StatusFromError(fmt.Errorf("x: %w", backends.ErrContextFull))); st.Code() != codes.ResourceExhausted {
		t.Errorf("ErrContextFull → %v", st.Code())
	}
}

// TestContextReachesPlugin checks that the caller's deadline and
// cancellation reach the plugin's handler.
func TestContextReachesPlugin(t *testing.T) {
	fake := backendtest.New(8)
	type seen struct {
		hasDeadline bool
		err         error
	}
	ch := make(chan seen, 1)
	fake.Hook = func(ctx context.Context, m string) error {
		if m != "Decode" {
			return nil
		}
		_, ok := ctx.Deadline()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		ch <- seen{ok, ctx.Err()}
		return ctx.Err()
	}
	c := connect(t, fake)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Decode(ctx, backends.DecodeRequest{Session: 1, Tokens: []int32{1}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("decode with deadline: %v", err)
	}
	s := <-ch
	if !s.hasDeadline || s.err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("plugin saw deadline=%v err=%v after %v", s.hasDeadline, s.err, time.Since(start))
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err = c.Decode(ctx, backends.DecodeRequest{Session: 1, Tokens: []int32{1}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("decode cancelled: %v", err)
	}
	if s := <-ch; !errors.Is(s.err, context.Canceled) {
		t.Fatalf("plugin saw %v, want context.Canceled", s.err)
	}
}
