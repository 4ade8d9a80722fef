package loaderhost

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/loader"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want abi.Errno
	}{
		{loader.ErrInvalidName, abi.ErrnoInval},
		{loader.ErrNotFound, abi.ErrnoNoent},
		{loader.ErrOutsideModelsDir, abi.ErrnoAcces},
		{loader.ErrChecksum, abi.ErrnoBadmodel},
		{loader.ErrOverBudget, abi.ErrnoNomem},
		{loader.ErrWrongBackend, abi.ErrnoUnavail},
	} {
		err := classify(fmt.Errorf("acquire x: %w", c.err))
		var en interface{ Errno() abi.Errno }
		if !errors.As(err, &en) || en.Errno() != c.want || !errors.Is(err, c.err) {
			t.Errorf("classify(%v) = %v", c.err, err)
		}
	}
	other := errors.New("other")
	if classify(other) != other {
		t.Error("unknown errors must pass through")
	}
}

func TestPolicy(t *testing.T) {
	if p := Policy(nil); p.ModelPatterns != nil {
		t.Errorf("no app: %+v", p)
	}
	p := Policy(&loader.AppConfig{Models: []string{"stories*"}, MaxTokens: 7, Context: 64, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 99})
	if len(p.ModelPatterns) != 1 || p.MaxTokens != 7 || p.MaxContext != 64 || p.Timeout != time.Second || p.MemoryBytes != 1<<20 || p.MaxOutput != 99 {
		t.Errorf("policy = %+v", p)
	}
	if p := Policy(&loader.AppConfig{}); p.ModelPatterns == nil || len(p.ModelPatterns) != 0 {
		t.Errorf("an app without models allows none: %+v", p)
	}
}
