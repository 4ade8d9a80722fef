package server

// n > 1: several choices for one request. Each choice is one run of the
// app on the same rendered prompt, run one after the other under the
// request's slot of the model queue; the usage counts the prompt once
// and every choice's completion tokens. What the runs share is the
// prompt's text and its tokenization by the host; the prompt's KV is
// shared where the backend keeps a finished session's prefix (each run
// opens its own session: a backend with prefix reuse prefills choice 0
// and finds the prompt cached for the others).

// Limits of n.
const (
	// defaultMaxN is an app's max_n when its block sets none.
	defaultMaxN = 8
	// hardMaxN is OpenAI's limit of n, which no policy exceeds.
	hardMaxN = 128
)

// maxNOf is the most choices app a serves per request.
func maxNOf(a *app) int {
	if a.maxN > 0 {
		return min(a.maxN, hardMaxN)
	}
	return defaultMaxN
}

// checkN refuses n beyond the app's policy.
func checkN(n int, a *app) *apiError {
	if m := maxNOf(a); n > m {
		return badRequest("n", "n must be at most %d for app %q, got %d", m, a.name, n)
	}
	return nil
}

// parseN validates the request's n (nil: 1) against OpenAI's bounds;
// the app's policy is checked once the app is known (checkN).
func parseN(n *int, tools bool) (int, *apiError) {
	if n == nil {
		return 1, nil
	}
	switch {
	case *n < 1 || *n > hardMaxN:
		return 0, badRequest("n", "n must be between 1 and %d, got %d", hardMaxN, *n)
	case *n > 1 && tools:
		return 0, badRequest("n", "n > 1 is not supported with tools (got %d)", *n)
	}
	return *n, nil
}

// choiceSeed is the sampling seed of choice i of a request seeded with
// seed: choice 0 keeps the request's seed (n = 1 answers as before), the
// others get distinct seeds derived from it (SplitMix64 steps), so a
// seeded request gives the same n different choices every time.
func choiceSeed(seed uint64, i int) uint64 {
	if i == 0 {
		return seed
	}
	z := seed + uint64(i)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
