package cluster

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"
)

// A request travels to a worker as a request/reply message whose body is
// an envelope; the worker answers with an ack and then publishes the
// response on the envelope's stream subject as frames. Every frame
// carries its kind and a sequence number (from 0, no gaps) in headers.
const (
	hdrKind = "Realm-Kind"
	hdrSeq  = "Realm-Seq"

	kindHead = "head" // body: frameHead
	kindData = "data" // body: response bytes
	kindHB   = "hb"   // heartbeat: nothing to send, still alive
	kindEnd  = "end"  // body: frameEnd; the last frame
)

// envelope is an HTTP request routed to a worker.
type envelope struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
	// Stream is the subject the response frames go to; Stream+".cancel"
	// tells the worker the client went away.
	Stream string `json:"stream"`
}

// ack is a worker's answer to an envelope.
type ack struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// frameHead starts a response.
type frameHead struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
}

// frameEnd ends a response; Error is set when the worker could not
// finish it (the handler panicked, the worker is closing).
type frameEnd struct {
	Error string `json:"error,omitempty"`
}

func newFrame(subject, kind string, seq uint64, body []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(hdrKind, kind)
	m.Header.Set(hdrSeq, strconv.FormatUint(seq, 10))
	m.Data = body
	return m
}

// frameOf reads a frame's kind and sequence number (ok false: not a
// frame).
func frameOf(m *nats.Msg) (kind string, seq uint64, ok bool) {
	kind = m.Header.Get(hdrKind)
	seq, err := strconv.ParseUint(m.Header.Get(hdrSeq), 10, 64)
	return kind, seq, kind != "" && err == nil
}

// mustJSON marshals the package's own plain structs, which cannot fail.
func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
