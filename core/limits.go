package core

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
