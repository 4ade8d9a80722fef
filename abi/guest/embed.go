//go:build wasip1

package guest

import (
	"runtime"

	"github.com/realmrt/realm/abi"
)

// Embed returns the pooled embedding of each token sequence (tokenized
// with the model's special tokens) of an embedding model, computed in
// one batch; flags: abi.Embed*. The first call with no room only asks
// for the size, so the model runs once.
func (m *Model) Embed(inputs [][]int32, flags uint32) ([][]float32, error) {
	var ids []int32
	lens := make([]int32, len(inputs))
	for i, in := range inputs {
		ids = append(ids, in...)
		lens[i] = int32(len(in))
	}
	flat, err := f32sOut(abi.FuncEmbed, nil, func(p, c uint32) int32 {
		return hostEmbed(m.h, i32Ptr(ids), uint32(len(ids)), i32Ptr(lens), uint32(len(lens)), flags, p, c)
	})
	runtime.KeepAlive(ids)
	runtime.KeepAlive(lens)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(inputs))
	if len(inputs) == 0 {
		return out, nil
	}
	d := len(flat) / len(inputs)
	for i := range out {
		out[i] = flat[i*d : (i+1)*d : (i+1)*d]
	}
	return out, nil
}
