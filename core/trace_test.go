package core

import (
	"testing"
)

// Memory layout of the trace guest.
const (
	offName   = 1024 // "stories260k"
	offPrompt = 1100 // "Once upon a time"
	offIDs    = 1200 // [1 403 407 261 378]
	offTok    = 2048 // tokenize output
	offOut    = 4096 // text/JSON output, 8 KiB
	offJSON   = 1300 // `{"max_tokens":4}`
	offLogits = 16384
	offShape  = 1400 // [2 2]
	offData   = 1500 // 4 floats
	offOp     = 1600 // "add"
	offIn     = 1620 // input handles
	offWName  = 1700 // "output_norm.weight"
	offMsg    = 1800 // "hello"
)

func TestTraceEveryFunction(t *testing.T) {
	e := newTestEnv(t)
	w := newWasm()
	w.minPages = 2
	w.putString(offName, "stories260k").
		putString(offPrompt, "Once upon a time").
		putI32s(offIDs, 1, 403, 407, 261, 378).
		putString(offJSON, `{"max_tokens":4}`).
		putI32s(offShape, 2, 2).
		put(offData, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40}). // 1 2 3 4
		putString(offOp, "add").
		putI32s(offIn, 1, 1).
		putString(offWName, "output_norm.weight").
		putString(offMsg, "hello")
	w.call("realm_host_load_model_by_name", offName, 11).
		call("realm_host_list_models", offOut, 8192).
		call("realm_host_model_info", 1, offOut, 0).
		call("realm_host_tokenize", 1, offPrompt, 16, 1|2, offTok, 64).
		call("realm_host_detokenize", 1, offIDs, 5, 0, offOut, 8192).
		call("realm_host_detokenize", 1, offIDs, 5, 1, offOut, 2).
		call("realm_host_session_open", 1, 32).
		call("realm_host_session_decode", 1, offIDs, 5).
		call("realm_host_session_logits", 1, offLogits, 512).
		call("realm_host_session_sample", 1, 0, 0).
		call("realm_host_session_truncate", 1, 2).
		call("realm_host_session_close", 1).
		call("realm_host_generate", 1, offPrompt, 16, offJSON, 16).
		call("realm_host_tensor_from_data", offData, 4, offShape, 2).
		call("realm_host_tensor_op", offOp, 3, offIn, 2, 0, 0).
		call("realm_host_tensor_shape", 2, offTok, 4).
		call("realm_host_tensor_read", 2, offLogits, 4).
		call("realm_host_tensor_from_weight", 1, offWName, 18).
		call("realm_host_tensor_read", 3, offLogits, 64).
		call("realm_host_tensor_free", 2).
		call("realm_host_log", 1, offMsg, 5).
		call("realm_host_unload_model", 1).
		call("realm_host_model_info", 1, offOut, 8192).
		call("realm_host_last_error", offOut, 8192)
	out := e.run(t, w.bytes(), Policy{Timeout: testTimeout})
	if out.err != nil {
		t.Fatalf("run: %v", out.err)
	}
	if got := traceLines(out.trace); got != wantTrace {
		t.Errorf("trace:\n%s\nwant:\n%s", got, wantTrace)
	}
	// The one-call generate streamed greedy text through the run's stdout.
	if out.stdout != ", there was a" {
		t.Errorf("stdout = %q", out.stdout)
	}
}

// wantTrace pins every function's success path: 50 is the length of
// ["broken","escape","stories260k","stories260k-q8"], 432 is the reference
// argmax after "Once upon a time", 64 the elements of
// output_norm.weight.
const wantTrace = `==> env.realm_host_load_model_by_name(name_ptr=1024,name_len=11)
<== 1
==> env.realm_host_list_models(out_ptr=4096,out_cap=8192)
<== 50
==> env.realm_host_model_info(model=1,out_ptr=4096,out_cap=0)
<== 242
==> env.realm_host_tokenize(model=1,text_ptr=1100,text_len=16,flags=3,out_ptr=2048,out_cap=64)
<== 5
==> env.realm_host_detokenize(model=1,ids_ptr=1200,n_ids=5,flags=0,out_ptr=4096,out_cap=8192)
<== 17
==> env.realm_host_detokenize(model=1,ids_ptr=1200,n_ids=5,flags=1,out_ptr=4096,out_cap=2)
<== 17
==> env.realm_host_session_open(model=1,n_ctx=32)
<== 1
==> env.realm_host_session_decode(session=1,ids_ptr=1200,n_ids=5)
<== 5
==> env.realm_host_session_logits(session=1,out_ptr=16384,out_cap=512)
<== 512
==> env.realm_host_session_sample(session=1,params_ptr=0,params_len=0)
<== 432
==> env.realm_host_session_truncate(session=1,n=2)
<== 2
==> env.realm_host_session_close(session=1)
<== 0
==> env.realm_host_generate(model=1,prompt_ptr=1100,prompt_len=16,params_ptr=1300,params_len=16)
<== 4
==> env.realm_host_tensor_from_data(data_ptr=1500,n=4,shape_ptr=1400,n_dims=2)
<== 1
==> env.realm_host_tensor_op(op_ptr=1600,op_len=3,inputs_ptr=1620,n_inputs=2,params_ptr=0,params_len=0)
<== 2
==> env.realm_host_tensor_shape(tensor=2,out_ptr=2048,out_cap=4)
<== 2
==> env.realm_host_tensor_read(tensor=2,out_ptr=16384,out_cap=4)
<== 4
==> env.realm_host_tensor_from_weight(model=1,name_ptr=1700,name_len=18)
<== 3
==> env.realm_host_tensor_read(tensor=3,out_ptr=16384,out_cap=64)
<== 64
==> env.realm_host_tensor_free(tensor=2)
<== 0
==> env.realm_host_log(level=1,msg_ptr=1800,msg_len=5)
<== 0
==> env.realm_host_unload_model(model=1)
<== 0
==> env.realm_host_model_info(model=1,out_ptr=4096,out_cap=8192)
<== EBADF
==> env.realm_host_last_error(out_ptr=4096,out_cap=8192)
<== 18
`

// TestSnprintfConvention: an output that does not fit is not written
// (the guest's bytes stay as they were) and its full length is returned;
// with room it is written.
func TestSnprintfConvention(t *testing.T) {
	e := newTestEnv(t)
	w := newWasm()
	w.putString(offOut, "UNTOUCHED").putI32s(64, offOut, 9) // iovec {offOut, 9}
	loaded(w).
		call("realm_host_model_info", 1, offOut, 5).
		callIn("wasi_snapshot_preview1", "fd_write", 1, 64, 1, 80).
		call("realm_host_model_info", 1, offOut, 8192).
		callIn("wasi_snapshot_preview1", "fd_write", 1, 64, 1, 80)
	out := e.run(t, w.bytes(), Policy{Timeout: testTimeout})
	if out.err != nil {
		t.Fatal(out.err)
	}
	if out.stdout != `UNTOUCHED{"name":"` {
		t.Errorf("stdout = %q", out.stdout)
	}
	want := "==> env.realm_host_load_model_by_name(name_ptr=1024,name_len=11)\n<== 1\n" +
		"==> env.realm_host_model_info(model=1,out_ptr=4096,out_cap=5)\n<== 242\n" +
		"==> env.realm_host_model_info(model=1,out_ptr=4096,out_cap=8192)\n<== 242\n"
	if got := traceLines(out.trace); got != want {
		t.Errorf("trace:\n%s\nwant:\n%s", got, want)
	}
}
