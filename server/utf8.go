package server

import "unicode/utf8"

// UTF8Chunker cuts a byte stream into pieces that never split a UTF-8
// sequence: Add returns the complete sequences seen so far and holds
// back a trailing incomplete one (at most 3 bytes) until the next Add or
// Flush. Bytes that can never become valid UTF-8 are passed on (JSON
// encoding turns them into U+FFFD).
type UTF8Chunker struct {
	held []byte
}

// Add appends p and returns the text that is ready to send (possibly
// empty). The result does not alias p.
func (c *UTF8Chunker) Add(p []byte) string {
	buf := append(c.held, p...)
	cut := len(buf) - incompleteTail(buf)
	out := string(buf[:cut])
	c.held = append(c.held[:0:0], buf[cut:]...)
	return out
}

// Flush returns what is held back (an incomplete sequence at the end of
// the stream) and empties the chunker.
func (c *UTF8Chunker) Flush() string {
	s := string(c.held)
	c.held = nil
	return s
}

// incompleteTail returns how many bytes at the end of b start a UTF-8
// sequence whose remaining bytes have not arrived yet.
func incompleteTail(b []byte) int {
	// A sequence is at most 4 bytes: look at the last 3 for its lead byte.
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0 // ASCII: nothing pending
		}
		if c >= 0xC0 { // a lead byte: hold it back if its sequence is cut short
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
		// a continuation byte: keep looking for its lead
	}
	return 0
}
