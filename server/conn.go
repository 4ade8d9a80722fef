package server

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTPLimits bounds what one connection, one client address and all
// clients together may hold of the server. The zero value of a field
// takes its default (DefaultHTTPLimits).
type HTTPLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. A
	// completion handler lifts it once the body is read, so that the
	// generation that follows is not cut by it.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. A completion lifts it
	// while the app runs and grants it afresh to every write, so a
	// stream lives as long as its client keeps reading.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// MaxConns caps the connections open at once; MaxConnsPerAddr caps
	// those of one client IP address. A connection over a cap is closed
	// as soon as it is accepted.
	MaxConns, MaxConnsPerAddr int
	// MaxBodyBytes caps the request bodies being read and parsed at
	// once, in bytes (a body of unknown length counts as the largest
	// allowed). A request that would pass it is answered 503 at once:
	// thousands of connections each sending 8 MiB must not add up to
	// gigabytes.
	MaxBodyBytes int64
}

// DefaultHTTPLimits are the limits realm serve runs with.
var DefaultHTTPLimits = HTTPLimits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       60 * time.Second,
	WriteTimeout:      60 * time.Second,
	IdleTimeout:       60 * time.Second,
	MaxConns:          4096,
	MaxConnsPerAddr:   256,
	MaxBodyBytes:      128 << 20,
}

// withDefaults fills the zero fields of l from DefaultHTTPLimits.
func (l HTTPLimits) withDefaults() HTTPLimits {
	d := DefaultHTTPLimits
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	set(&l.ReadTimeout, d.ReadTimeout)
	set(&l.WriteTimeout, d.WriteTimeout)
	set(&l.IdleTimeout, d.IdleTimeout)
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxConnsPerAddr <= 0 {
		l.MaxConnsPerAddr = d.MaxConnsPerAddr
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	return l
}

// HTTPServer returns an http.Server for the API with the timeouts of
// the server's HTTPLimits. Serve it on a listener from Listen (or one
// wrapped by LimitListener) so that the connection caps hold too.
func (s *Server) HTTPServer() *http.Server {
	l := s.limits
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// Listen wraps ln in the connection caps of the server's HTTPLimits;
// refused connections are counted in realm_connections_refused_total.
func (s *Server) Listen(ln net.Listener) net.Listener {
	l := newLimitListener(ln, s.limits.MaxConns, s.limits.MaxConnsPerAddr)
	l.onRefuse = s.metrics.connRefused
	return l
}

// LimitListener returns a listener that holds at most total connections
// at once, and at most perAddr from one client IP address (IPv6: one
// /64 network). A connection
// over a cap is closed at once (its file descriptor never lingers); the
// client sees a reset or EOF and may retry.
func LimitListener(ln net.Listener, total, perAddr int) net.Listener {
	return newLimitListener(ln, total, perAddr)
}

func newLimitListener(ln net.Listener, total, perAddr int) *limitListener {
	return &limitListener{Listener: ln, total: total, perAddr: perAddr, byAddr: map[string]int{}}
}

type limitListener struct {
	net.Listener
	total, perAddr int
	onRefuse       func(reason string) // nil: not counted

	mu     sync.Mutex
	open   int
	byAddr map[string]int
}

// Accept returns the next connection within the caps.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := hostOf(c.RemoteAddr())
		l.mu.Lock()
		reason := ""
		switch {
		case l.open >= l.total:
			reason = "total"
		case l.byAddr[addr] >= l.perAddr:
			reason = "per_address"
		}
		if reason != "" {
			l.mu.Unlock()
			if l.onRefuse != nil {
				l.onRefuse(reason)
			}
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset: no TIME_WAIT kept for a refused client
			}
			c.Close()
			continue
		}
		l.open++
		l.byAddr[addr]++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l, addr: addr}, nil
	}
}

func (l *limitListener) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
		delete(l.byAddr, addr)
	}
}

// hostOf returns the client a remote address counts for: its IPv4
// address, or the /64 network of an IPv6 address (one host usually
// holds a whole /64), or the whole address when it is neither.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ta.IP.To4() == nil && len(ta.IP) == net.IPv6len {
			return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
		}
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitConn gives its place back once, on the first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	addr string
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}

// lift removes the read deadline of a request whose body has been read
// (a long generation must not be cut by ReadTimeout: net/http watches
// the connection with a background read that would fail at it and
// cancel the request) and the write deadline until the next write (see
// deadlineWriter). A ResponseWriter without deadlines (a test
// recorder) runs without them.
func lift(rc *http.ResponseController) {
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

// deadlineWriter grants every write of a response d from when it
// starts: a stream lives as long as its client keeps reading, and a
// client that stops reading is cut off d later.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) grant() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

// WriteHeader implements http.ResponseWriter.
func (w *deadlineWriter) WriteHeader(code int) {
	w.grant()
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.grant()
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// byteBudget counts bytes held against a cap.
type byteBudget struct {
	mu        sync.Mutex
	max, used int64
}

// take reserves n bytes, or reports false when they do not fit.
func (b *byteBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// give returns n bytes.
func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}
