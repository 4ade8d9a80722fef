//go:build wasip1

// Command pipeline switches models mid-run: two models (which must share
// a vocabulary, e.g. the F32 and Q8_0 builds of one model) take turns
// writing a story, CHUNK tokens each, each reading everything written
// so far. The host keeps both loaded at once.
//
//	realm run pipeline.wasm -- MODEL_A MODEL_B PROMPT [TOKENS [CHUNK]]
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/abi/guest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

type writer struct {
	name string
	m    *guest.Model
	s    *guest.Session
	fed  int // tokens of the shared text this session has decoded
}

func run(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: pipeline MODEL_A MODEL_B PROMPT [TOKENS [CHUNK]]")
	}
	total, chunk := 48, 8
	var err error
	if len(args) > 3 {
		if total, err = strconv.Atoi(args[3]); err != nil || total <= 0 {
			return fmt.Errorf("TOKENS must be a positive integer")
		}
	}
	if len(args) > 4 {
		if chunk, err = strconv.Atoi(args[4]); err != nil || chunk <= 0 {
			return fmt.Errorf("CHUNK must be a positive integer")
		}
	}
	var ws []*writer
	var nVocab int
	for _, name := range args[:2] {
		m, err := guest.LoadModel(name)
		if err != nil {
			return err
		}
		defer m.Unload()
		info, err := m.Info()
		if err != nil {
			return err
		}
		if nVocab != 0 && info.NVocab != nVocab {
			return fmt.Errorf("%s has %d tokens, the other model %d: they must share a vocabulary", name, info.NVocab, nVocab)
		}
		nVocab = info.NVocab
		ws = append(ws, &writer{name: name, m: m})
	}
	text, err := ws[0].m.Tokenize(args[2], abi.TokenizeDefaultBOS|abi.TokenizeParseSpecial)
	if err != nil {
		return err
	}
	info, err := ws[0].m.Info()
	if err != nil {
		return err
	}
	eog := map[int32]bool{}
	for _, id := range info.EOG {
		eog[id] = true
	}
	for _, w := range ws {
		if w.s, err = w.m.NewSession(len(text) + total + 1); err != nil {
			return err
		}
		defer w.s.Close()
	}
	written := 0
	for turn := 0; written < total; turn++ {
		w := ws[turn%2]
		fmt.Fprintf(os.Stderr, "[%s writes]\n", w.name)
		for i := 0; i < chunk && written < total; i++ {
			if w.fed < len(text) {
				if _, err := w.s.Decode(text[w.fed:]); err != nil {
					return err
				}
				w.fed = len(text)
			}
			id, err := w.s.Sample(abi.SampleParams{})
			if err != nil {
				return err
			}
			if eog[id] {
				written = total
				break
			}
			piece, err := w.m.Piece(id)
			if err != nil {
				return err
			}
			os.Stdout.Write(piece)
			text = append(text, id)
			written++
		}
	}
	fmt.Println()
	return nil
}
