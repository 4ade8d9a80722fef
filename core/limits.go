package core

import "path"

// DefaultContext is the context size of a model whose file names none.
const DefaultContext = 4096

// ContextLimit is the largest session a run under p may open on a model
// trained for nCtxTrain positions: the model's training context (or
// DefaultContext when it names none), capped by p.MaxContext. The
// server checks requests against the same rule that sessions follow.
func ContextLimit(nCtxTrain int, p Policy) int {
	limit := nCtxTrain
	if limit <= 0 {
		limit = DefaultContext
	}
	if p.MaxContext > 0 && p.MaxContext < limit {
		limit = p.MaxContext
	}
	return limit
}

// AllowsModel reports whether a run under p may load the model called
// name: one of p.ModelPatterns (path.Match) matches it, or the list is
// nil. The server checks requests against the same rule that
// realm_model_load follows.
func (p Policy) AllowsModel(name string) bool {
	if p.ModelPatterns == nil {
		return true
	}
	for _, pat := range p.ModelPatterns {
		if ok, err := path.Match(pat, name); err == nil && ok {
			return true
		}
	}
	return false
}

// MaxTokensFor is the max_tokens of a generation that asks for
// requested (0: DefaultMaxTokens) under p: capped by p.MaxTokens, the
// run's whole budget. The server sets a request's max_tokens by it.
func (p Policy) MaxTokensFor(requested int) int {
	n := requested
	if n <= 0 {
		n = DefaultMaxTokens
	}
	if p.MaxTokens > 0 && p.MaxTokens < n {
		n = p.MaxTokens
	}
	return n
}
