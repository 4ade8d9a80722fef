// Host functions of the models group: load by name, unload, list, info.

package core

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/realmrt/realm/abi"
	"github.com/realmrt/realm/tokenizer"
)

func loadModelByName(in *instance, mem api.Memory, p []uint64) (int32, error) {
	name, err := readString(mem, u32(p[0]), u32(p[1]), abi.MaxNameLen, "model name")
	if err != nil {
		return 0, err
	}
	if why := abi.CheckModelName(name); why != "" {
		return 0, errf(abi.ErrnoInval, "invalid model name %q: %s", name, why)
	}
	if !in.allowed(name) {
		return 0, errf(abi.ErrnoAcces, "model %q is not allowed for this app (allowed: %s)", name, strings.Join(in.policy.ModelPatterns, ", "))
	}
	m, err := in.host.cfg.Models.Acquire(in.ctx, name)
	if err != nil {
		return 0, fmt.Errorf("load model %q: %w", name, err)
	}
	h, ok := in.models.add(&modelHandle{m: m})
	if !ok {
		in.host.cfg.Models.Release(m)
		return 0, errf(abi.ErrnoNomem, "too many open models (%d)", maxHandles)
	}
	return h, nil
}

func (in *instance) model(h int32) (*modelHandle, error) {
	m, ok := in.models.get(h)
	if !ok {
		return nil, errf(abi.ErrnoBadf, "bad model handle %d", h)
	}
	return m, nil
}

func unloadModel(in *instance, _ api.Memory, p []uint64) (int32, error) {
	h := i32(p[0])
	mh, err := in.model(h)
	if err != nil {
		return 0, err
	}
	for sh, s := range in.sessions.m {
		if s.model == h {
			if err := s.m.Backend.CloseSession(in.ctx, s.id); err != nil {
				in.host.log.Debug("closing session on unload", "error", err)
			}
			in.dropSession(sh, s)
		}
	}
	for th, t := range in.tensors.m {
		if t.model == h {
			in.tensorBytes -= t.nbytes
			in.tensors.del(th)
		}
	}
	in.models.del(h)
	in.host.cfg.Models.Release(mh.m)
	return 0, nil
}

func listModels(in *instance, mem api.Memory, p []uint64) (int32, error) {
	names, err := in.host.cfg.Models.List(in.ctx)
	if err != nil {
		return 0, fmt.Errorf("list models: %w", err)
	}
	out := []string{}
	for _, n := range names {
		if in.allowed(n) {
			out = append(out, n)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return 0, fmt.Errorf("list models: %w", err)
	}
	return writeOut(mem, u32(p[0]), u32(p[1]), b, "list models")
}

func modelInfo(in *instance, mem api.Memory, p []uint64) (int32, error) {
	mh, err := in.model(i32(p[0]))
	if err != nil {
		return 0, err
	}
	m := mh.m
	info := abi.ModelInfo{
		Name: m.Name, Arch: m.Info.Arch, Backend: m.serving(),
		NCtxTrain: m.Info.NCtxTrain, NVocab: m.Info.NVocab, NEmbd: m.Info.NEmbd,
		NLayer: m.Info.NLayer, NHead: m.Info.NHead, NHeadKV: m.Info.NHeadKV, NFF: m.Info.NFF,
		TensorTypes: m.Info.TensorTypes, WeightBytes: m.Info.WeightBytes, EOG: []int32{},
	}
	if m.Meta != nil {
		info.ChatTemplate, _ = m.Meta.String("tokenizer.chat_template")
	}
	if t := m.Tokenizer; t != nil {
		info.BOS, info.EOS, info.AddBOS = t.BOS(), t.EOS(), t.AddBOSDefault()
		info.EOG = t.EOGs()
	}
	b, err := json.Marshal(info)
	if err != nil {
		return 0, fmt.Errorf("model info: %w", err)
	}
	return writeOut(mem, u32(p[1]), u32(p[2]), b, "model info")
}

// --- tokens ---

func (mh *modelHandle) tokenizer() (*tokenizer.Tokenizer, error) {
	if mh.m.Tokenizer == nil {
		return nil, errf(abi.ErrnoNotsup, "model %q has no tokenizer", mh.m.Name)
	}
	return mh.m.Tokenizer, nil
}
