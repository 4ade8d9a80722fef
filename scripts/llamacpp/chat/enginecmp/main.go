// Command enginecmp renders chat/testdata with each candidate Go Jinja
// engine and counts the outputs equal to llama.cpp's (RATIONALE.md, "Why
// this Jinja engine?"). Run: go run . ../../../../chat/testdata
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
	"github.com/flosch/pongo2/v6"
	gonja "github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/exec"
)

type msg = map[string]any

type cas struct {
	name, tmpl, bos, eos string
	msgs                 []msg
	tools                any
	agp                  bool
	want                 string
}

type engine struct {
	name   string
	render func(src string, vars map[string]any) (string, error)
}

func raise(args ...any) (any, error) { return nil, fmt.Errorf("raise: %v", args) }

func main() {
	td := os.Args[1]
	var cases []cas
	var rf struct {
		Cases []struct {
			Template, Conversation, Bos, Eos string
			Add_generation_prompt            bool `json:"add_generation_prompt"`
			Messages                         []msg
			Tools                            any
			Want                             string
		}
	}
	b, _ := os.ReadFile(filepath.Join(td, "rendered.json"))
	json.Unmarshal(b, &rf)
	for _, c := range rf.Cases {
		src, _ := os.ReadFile(filepath.Join(td, "templates", c.Template+".jinja"))
		cases = append(cases, cas{c.Template + "/" + c.Conversation, string(src), c.Bos, c.Eos, c.Messages, c.Tools, c.Add_generation_prompt, c.Want})
	}
	var lt []struct {
		Name, Template, Bos, Eos, Want string
		Messages                       []msg
	}
	b, _ = os.ReadFile(filepath.Join(td, "llamacpp_tests.json"))
	json.Unmarshal(b, &lt)
	for _, c := range lt {
		cases = append(cases, cas{"test:" + c.Name, c.Template, c.Bos, c.Eos, c.Messages, nil, true, c.Want})
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	engines := []engine{
		{"ardanlabs/jinja v1.8.0", func(src string, vars map[string]any) (string, error) {
			t, err := jinja.Compile(src)
			if err != nil {
				return "", err
			}
			return t.Render(vars)
		}},
		{"nikolalohinski/gonja/v2 v2.9.1", func(src string, vars map[string]any) (string, error) {
			t, err := gonja.FromString(src)
			if err != nil {
				return "", err
			}
			vars["raise_exception"] = func(s string) (string, error) { return "", fmt.Errorf("raise: %s", s) }
			vars["strftime_now"] = func(f string) string { return now.Format("02 Jan 2006") }
			return t.ExecuteToString(exec.NewContext(vars))
		}},
		{"flosch/pongo2/v6 v6.0.0", func(src string, vars map[string]any) (string, error) {
			t, err := pongo2.FromString(src)
			if err != nil {
				return "", err
			}
			vars["raise_exception"] = func(s string) (string, error) { return "", fmt.Errorf("raise: %s", s) }
			vars["strftime_now"] = func(f string) string { return now.Format("02 Jan 2006") }
			return t.Execute(pongo2.Context(vars))
		}},
	}
	for _, e := range engines {
		ok, compileFail, renderFail, wrong := 0, 0, 0, 0
		var failed []string
		for _, c := range cases {
			msgs := make([]any, 0, len(c.msgs))
			for _, m := range c.msgs {
				mm := msg{}
				for k, v := range m {
					mm[k] = v
				}
				if mm["role"] == "developer" {
					mm["role"] = "system"
				}
				msgs = append(msgs, mm)
			}
			vars := func(ms []any) map[string]any {
				v := map[string]any{"messages": ms, "bos_token": c.bos, "eos_token": c.eos, "enable_thinking": true,
					"date_string": "04 Dec 2026", "datetime": "Dec 04 2026"}
				if c.agp {
					v["add_generation_prompt"] = true
				}
				if c.tools != nil {
					v["tools"] = c.tools
				}
				return v
			}
			// system-role probe as llama.cpp's caps check
			probe, perr := func() (s string, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic %v", r)
					}
				}()
				return e.render(c.tmpl, vars([]any{msg{"role": "system", "content": "SYSMARK"}, msg{"role": "user", "content": "u"}}))
			}()
			if perr != nil || !strings.Contains(probe, "SYSMARK") {
				if len(msgs) > 0 && msgs[0].(msg)["role"] == "system" {
					if len(msgs) > 1 {
						msgs[1].(msg)["content"] = msgs[0].(msg)["content"].(string) + "\n" + msgs[1].(msg)["content"].(string)
					}
					msgs = msgs[1:]
				}
			}
			got, err := func() (s string, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic %v", r)
					}
				}()
				return e.render(c.tmpl, vars(msgs))
			}()
			switch {
			case err != nil && (strings.Contains(err.Error(), "pars") || strings.Contains(err.Error(), "scan") || strings.Contains(err.Error(), "token")):
				compileFail++
				failed = append(failed, c.name+" (compile: "+trunc(err.Error())+")")
			case err != nil:
				renderFail++
				failed = append(failed, c.name+" (render: "+trunc(err.Error())+")")
			case got != c.want:
				wrong++
				failed = append(failed, c.name+" (differs)")
			default:
				ok++
			}
		}
		fmt.Printf("== %s: %d/%d equal to llama.cpp; compile errors %d, render errors %d, different output %d\n", e.name, ok, len(cases), compileFail, renderFail, wrong)
		for _, f := range failed {
			fmt.Println("   ", f)
		}
	}
}

func trunc(s string) string {
	if len(s) > 90 {
		return s[:90]
	}
	return s
}
