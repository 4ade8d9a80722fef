package server

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxKeysFile caps the size of an API keys file.
const maxKeysFile = 1 << 20

// ReadAPIKeys reads an API keys file: one key per line; blank lines and
// lines starting with # are ignored, surrounding spaces trimmed.
func ReadAPIKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("server: api keys: %w", err)
	}
	defer f.Close()
	return ParseAPIKeys(io.LimitReader(f, maxKeysFile))
}

// ParseAPIKeys parses the content of an API keys file (see ReadAPIKeys).
func ParseAPIKeys(r io.Reader) ([]string, error) {
	var keys []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("server: api keys: a key must not contain spaces (line %q...)", line[:min(len(line), 4)])
		}
		keys = append(keys, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("server: api keys: %w", err)
	}
	return keys, nil
}

// keySet checks bearer tokens in constant time: every key is compared
// (by SHA-256, so keys of different lengths take the same time) on every
// check.
type keySet struct {
	sums [][32]byte
}

func newKeySet(keys []string) *keySet {
	ks := &keySet{}
	for _, k := range keys {
		ks.sums = append(ks.sums, sha256.Sum256([]byte(k)))
	}
	return ks
}

// enabled reports whether keys are required.
func (ks *keySet) enabled() bool { return ks != nil && len(ks.sums) > 0 }

// valid reports whether key is one of the keys.
func (ks *keySet) valid(key string) bool {
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for i := range ks.sums {
		ok |= subtle.ConstantTimeCompare(sum[:], ks.sums[i][:])
	}
	return ok == 1
}
