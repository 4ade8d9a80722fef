package core

import (
	"errors"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/internal/gen"
	"github.com/realmrt/realm/internal/grammar"
	"github.com/realmrt/realm/tokenizer"
)

// constraint returns a matcher at the start of the grammar or JSON
// schema of sp over tok, and the grammar's text; nil when sp has
// neither. Compiled grammars and their mask tables are shared through
// the host's cache, so a schema used again is cheap.
func (in *instance) constraint(tok *tokenizer.Tokenizer, sp abi.SampleParams) (*grammar.Matcher, string, error) {
	text := sp.Grammar
	if len(sp.JSONSchema) > 0 && string(sp.JSONSchema) != "null" {
		if text != "" {
			return nil, "", errf(abi.ErrnoInval, "sample params: grammar and json_schema are exclusive")
		}
		var err error
		if text, err = grammar.FromJSONSchema(sp.JSONSchema); err != nil {
			return nil, "", errf(abi.ErrnoInval, "%v", err)
		}
	}
	if text == "" {
		return nil, "", nil
	}
	m, err := in.host.grammars.Matcher(tok, text)
	if err != nil {
		if errors.Is(err, grammar.ErrSyntax) || errors.Is(err, grammar.ErrTooComplex) {
			return nil, "", errf(abi.ErrnoInval, "%v", err)
		}
		return nil, "", err
	}
	return m, text, nil
}

// asConstraint keeps a nil matcher a nil interface.
func asConstraint(m *grammar.Matcher) gen.Constraint {
	if m == nil {
		return nil
	}
	return m
}
