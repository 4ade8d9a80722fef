package server

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestUTF8ChunkerByteByByte feeds multi-byte text one byte at a time
// (and in every split of two writes) and checks that no piece splits a
// sequence and that the pieces add up to the input.
func TestUTF8ChunkerByteByByte(t *testing.T) {
	texts := []string{
		"plain ascii",
		"héllo wörld",
		"日本語のテキスト",
		"emoji 🦙🚀 and 👩‍👩‍👧 family",
		"mixed: ñ 中 😀 é",
		"\U0010FFFF max",
	}
	for _, text := range texts {
		var c UTF8Chunker
		var got strings.Builder
		for i := 0; i < len(text); i++ {
			piece := c.Add([]byte{text[i]})
			if !utf8.ValidString(piece) {
				t.Fatalf("%q: piece %q after byte %d is not valid UTF-8", text, piece, i)
			}
			got.WriteString(piece)
		}
		got.WriteString(c.Flush())
		if got.String() != text {
			t.Errorf("reassembled %q, want %q", got.String(), text)
		}
		for cut := 0; cut <= len(text); cut++ {
			var c UTF8Chunker
			a, b := c.Add([]byte(text[:cut])), c.Add([]byte(text[cut:]))
			if !utf8.ValidString(a) || !utf8.ValidString(b) || a+b+c.Flush() != text {
				t.Errorf("%q cut at %d: %q + %q", text, cut, a, b)
			}
		}
	}
}

// TestUTF8ChunkerInvalid checks that bytes that can never complete a
// sequence are passed on, not held forever.
func TestUTF8ChunkerInvalid(t *testing.T) {
	cases := []struct {
		in   []byte
		want string // returned by Add
		held string // returned by Flush
	}{
		{[]byte{0xff, 'a'}, "\xffa", ""},
		{[]byte{'a', 0x80}, "a\x80", ""},           // a lone continuation byte
		{[]byte{'a', 0xE6, 0x97}, "a", "\xE6\x97"}, // cut short: held
		{[]byte{0xE6, 'a'}, "\xE6a", ""},           // a broken sequence
		{[]byte{0xC0}, "\xC0", ""},                 // never valid as a lead
	}
	for _, c := range cases {
		var ch UTF8Chunker
		if got := ch.Add(c.in); got != c.want {
			t.Errorf("Add(% x) = %q, want %q", c.in, got, c.want)
		}
		if got := ch.Flush(); got != c.held {
			t.Errorf("Flush after % x = %q, want %q", c.in, got, c.held)
		}
	}
}

// TestChatPrompt checks the fallback format of models without a
// template and how template failures map to API errors (the rendering
// itself is tested against llama.cpp in package chat).
func TestChatPrompt(t *testing.T) {
	msgs := []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "U1"}, {Role: "assistant", Content: "A1"}, {Role: "user", Content: "U2"}}
	cases := []struct {
		name, tmpl, want string
		status           int
		code             string
	}{
		{"no template", "", "S\n\nUser: U1\nAssistant: A1\nUser: U2\nAssistant:", 200, ""},
		{"template", "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
			"<system>S<user>U1<assistant>A1<user>U2<assistant>", 200, ""},
		{"template refuses", "{{ raise_exception('no system messages') }}", "", 400, "chat_template_rejected"},
		{"template does not compile", "{% if %}", "", 500, "chat_template_error"},
		{"template fails", "{{ messages[0].content.nosuchmethod() }}", "", 500, "chat_template_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, e := chatPrompt(context.Background(), c.tmpl, "<s>", "</s>", true, msgs)
			if c.status == 200 {
				if e != nil || got != c.want {
					t.Fatalf("got %q, %v; want %q", got, e, c.want)
				}
				return
			}
			if e == nil || e.status != c.status || e.code != c.code || !strings.Contains(e.message, "chat template") {
				t.Fatalf("error %+v, want status %d code %s", e, c.status, c.code)
			}
		})
	}
}

func TestLimiterFIFO(t *testing.T) {
	l := newLimiter(1, 2)
	ctx := context.Background()
	if err := l.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 2)
	for i := range 2 {
		go func() {
			if err := l.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			order <- i
			time.Sleep(10 * time.Millisecond)
			l.release()
		}()
		// wait until it is queued, so the order is known
		for {
			if _, q := l.state(); q == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := l.acquire(ctx); !errors.Is(err, errQueueFull) {
		t.Fatalf("acquire on a full queue: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.acquire(cctx); !errors.Is(err, errQueueFull) {
		t.Fatalf("full queue answers before the context: %v", err)
	}
	l.release()
	if a, b := <-order, <-order; a != 0 || b != 1 {
		t.Errorf("served %d then %d, want FIFO", a, b)
	}
	// A waiter that gives up leaves the queue.
	if err := l.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer wcancel()
	if err := l.acquire(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter: %v", err)
	}
	if r, q := l.state(); r != 1 || q != 0 {
		t.Errorf("state %d running %d queued", r, q)
	}
	l.release()
	if r, _ := l.state(); r != 0 {
		t.Errorf("running %d after release", r)
	}
}

func TestParseRequest(t *testing.T) {
	p, err := parseRequest([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stop":"x","temperature":0,"top_p":1,"seed":7,"max_completion_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if p.messages[0].Content != "ab" || len(p.guest.Stop) != 1 || p.guest.Temperature != 0 || p.guest.TopP != 0 || p.guest.Seed != 7 || p.maxTokens != 5 || !p.includeUsage || !p.guest.Stream {
		t.Errorf("%+v", p)
	}
	p, err = parseRequest([]byte(`{"model":"m","prompt":["only"]}`), false)
	if err != nil || p.prompt != "only" || p.guest.Temperature != 1 {
		t.Errorf("%+v %v", p, err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}]}`), true)
	f.Add([]byte(`{"model":"m","prompt":"x","stop":["a"],"n":1}`), false)
	f.Fuzz(func(t *testing.T, b []byte, chat bool) {
		p, err := parseRequest(b, chat)
		if (p == nil) == (err == nil) {
			t.Fatalf("result %v and error %v", p, err)
		}
		if err != nil && (err.status != 400 || err.message == "") {
			t.Fatalf("error %+v", err)
		}
	})
}

func TestAPIKeys(t *testing.T) {
	keys, err := ParseAPIKeys(strings.NewReader("# c\n\nk1\n  k2  \n"))
	if err != nil || len(keys) != 2 {
		t.Fatalf("%v %v", keys, err)
	}
	ks := newKeySet(keys)
	for key, want := range map[string]bool{"k1": true, "k2": true, "k": false, "k12": false, "": false, "# c": false} {
		if ks.valid(key) != want {
			t.Errorf("valid(%q) = %v", key, !want)
		}
	}
	if _, err := ParseAPIKeys(strings.NewReader("a b\n")); err == nil {
		t.Error("a key with a space was accepted")
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`loader: model "x": /tmp/realm-1/models/x.gguf: invalid model file`, `loader: model "x": x.gguf: invalid model file`},
		{`open /home/u/m.gguf: no such file`, `open m.gguf: no such file`},
		{`backend crashed: plugin "reference" (pid 4242) died during decode: EOF`, `backend crashed: plugin "reference" died during decode: EOF`},
		{`plugin pid 4242 exited`, `plugin pid exited`},
		{`path=/var/lib/realm/sock, next`, `path=sock, next`},
		{`a / b and 3/4`, `a / b and 3/4`},
		{`no path here`, `no path here`},
	} {
		if got := redact(c.in); got != c.want {
			t.Errorf("redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := redact(strings.Repeat("x", 10000)); len(got) > maxErrorText+8 {
		t.Errorf("redact kept %d bytes", len(got))
	}
}

func TestQuote(t *testing.T) {
	if got := quote("short"); got != `"short"` {
		t.Errorf("quote = %s", got)
	}
	long := strings.Repeat("é", 1000) // 2000 bytes
	got := quote(long)
	if len(got) > maxNameInError+32 || !strings.HasSuffix(got, "… (2000 bytes)") || !utf8.ValidString(got) {
		t.Errorf("quote(2000 bytes) = %s", got)
	}
}

// TestLimitListener: the caps hold per address and in all, and a
// closed connection gives its place back.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, 3, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	// dial connects from 127.0.0.ip; a connection reset while
	// connecting (a refusal faster than connect returned) is a closed
	// connection.
	dial := func(ip byte) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}, Timeout: time.Second}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			return nil
		}
		return c
	}
	// closedWithin reports whether the server closed c within d.
	closedWithin := func(c net.Conn, d time.Duration) bool {
		if c == nil {
			return true
		}
		c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		ne, ok := err.(net.Error)
		return err != nil && !(ok && ne.Timeout())
	}
	refused := func(c net.Conn) bool { return closedWithin(c, 5*time.Second) }
	kept := func(c net.Conn) bool { return !closedWithin(c, 200*time.Millisecond) }
	a1, a2, a3 := dial(1), dial(1), dial(1)
	s1, s2 := <-accepted, <-accepted
	if !refused(a3) {
		t.Error("a third connection from one address was kept (per-address cap 2)")
	}
	if !kept(a1) || !kept(a2) {
		t.Error("connections within the cap were closed")
	}
	b1, b2 := dial(2), dial(2)
	<-accepted
	if !refused(b2) {
		t.Error("a fourth connection in all was kept (cap 3)")
	}
	s1.Close() // a place frees up
	a4 := dial(1)
	s4 := <-accepted
	if !kept(a4) {
		t.Error("a connection after a close was refused")
	}
	for _, c := range []net.Conn{a1, a2, a3, a4, b1, b2, s2, s4} {
		if c != nil {
			c.Close()
		}
	}
}

func TestHostOf(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.UnixAddr{Name: "@x", Net: "unix"}, "@x"},
	} {
		if got := hostOf(c.addr); got != c.want {
			t.Errorf("hostOf(%v) = %q, want %q", c.addr, got, c.want)
		}
	}
}
