package core

import "testing"

// TestPolicyAllowsModel: the patterns realm_model_load and the server
// both apply.
func TestPolicyAllowsModel(t *testing.T) {
	for _, c := range []struct {
		patterns []string
		name     string
		want     bool
	}{
		{nil, "anything", true},
		{[]string{}, "anything", false},
		{[]string{"stories*"}, "stories15M", true},
		{[]string{"stories*"}, "llama", false},
		{[]string{"llama", "qwen?"}, "qwen3", true},
		{[]string{"[bad"}, "[bad", false}, // a malformed pattern matches nothing
	} {
		if got := (Policy{ModelPatterns: c.patterns}).AllowsModel(c.name); got != c.want {
			t.Errorf("patterns %q, %q: got %v, want %v", c.patterns, c.name, got, c.want)
		}
	}
}

// TestPolicyMaxTokensFor: the request's max_tokens, DefaultMaxTokens
// when it sets none, capped by the policy.
func TestPolicyMaxTokensFor(t *testing.T) {
	for _, c := range []struct {
		policy, requested, want int
	}{
		{0, 0, DefaultMaxTokens},
		{0, 1000, 1000},
		{100, 0, 100},
		{100, 50, 50},
		{100, 500, 100},
		{1000, 0, DefaultMaxTokens},
	} {
		if got := (Policy{MaxTokens: c.policy}).MaxTokensFor(c.requested); got != c.want {
			t.Errorf("policy %d, requested %d: got %d, want %d", c.policy, c.requested, got, c.want)
		}
	}
}
