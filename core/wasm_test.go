package core

import "encoding/binary"

// A tiny WebAssembly module builder for hostile and trace tests: one
// _start function whose body calls imports with constant arguments, a
// memory and data segments at fixed offsets, so every pointer in a
// trace is known in advance (and can be out of bounds on purpose).

type wasmImport struct {
	module, name    string
	params, results int
}

type wasmData struct {
	off  uint32
	data []byte
}

type wasmBuilder struct {
	imports  []wasmImport
	idx      map[string]int
	code     []byte
	data     []wasmData
	minPages uint32
	maxPages int64 // -1: none
}

func newWasm() *wasmBuilder {
	return &wasmBuilder{idx: map[string]int{}, minPages: 1, maxPages: -1}
}

// paramCount returns the parameter and result counts of an import.
func paramCount(module, name string) (int, int) {
	if module == "env" {
		for _, f := range hostFuncs() {
			if f.name == name {
				return len(f.params), 1
			}
		}
		return 1, 1 // unknown function: used by the unknown-import case
	}
	switch name {
	case "fd_write":
		return 4, 1
	case "proc_exit":
		return 1, 0
	case "poll_oneoff", "fd_read":
		return 4, 1
	}
	panic("unknown import " + name)
}

func (b *wasmBuilder) fn(module, name string) int {
	key := module + "." + name
	if i, ok := b.idx[key]; ok {
		return i
	}
	p, r := paramCount(module, name)
	b.imports = append(b.imports, wasmImport{module, name, p, r})
	b.idx[key] = len(b.imports) - 1
	return len(b.imports) - 1
}

// importAs declares an import with an explicit signature (for guests
// that get it wrong on purpose) and calls it with no arguments.
func (b *wasmBuilder) importAs(module, name string, params, results int) *wasmBuilder {
	b.imports = append(b.imports, wasmImport{module, name, params, results})
	b.idx[module+"."+name] = len(b.imports) - 1
	return b
}

// i32 emits i32.const v.
func (b *wasmBuilder) i32(v int64) *wasmBuilder {
	b.code = append(b.code, 0x41)
	b.code = appendSLEB(b.code, int64(int32(uint32(v)))) // wrap to 32 bits
	return b
}

// call emits a call to env.name with constant arguments, dropping the result.
func (b *wasmBuilder) call(name string, args ...int64) *wasmBuilder {
	return b.callIn("env", name, args...)
}

func (b *wasmBuilder) callIn(module, name string, args ...int64) *wasmBuilder {
	i := b.fn(module, name)
	for _, a := range args {
		b.i32(a)
	}
	b.code = append(b.code, 0x10)
	b.code = appendULEB(b.code, uint64(i))
	if b.imports[i].results > 0 {
		b.code = append(b.code, 0x1a) // drop
	}
	return b
}

// raw appends instructions.
func (b *wasmBuilder) raw(ops ...byte) *wasmBuilder {
	b.code = append(b.code, ops...)
	return b
}

func (b *wasmBuilder) put(off uint32, data []byte) *wasmBuilder {
	b.data = append(b.data, wasmData{off, data})
	return b
}

func (b *wasmBuilder) putString(off uint32, s string) *wasmBuilder {
	return b.put(off, []byte(s))
}

// putI32s stores little-endian i32 values.
func (b *wasmBuilder) putI32s(off uint32, vals ...int32) *wasmBuilder {
	buf := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(v))
	}
	return b.put(off, buf)
}

// Control-flow helpers.
const (
	opUnreachable = 0x00
	opLoop        = 0x03
	opEnd         = 0x0b
	opBr          = 0x0c
	opBrIf        = 0x0d
	opDrop        = 0x1a
	opMemoryGrow  = 0x40
	opI32Ne       = 0x47
	blockVoid     = 0x40
)

func (b *wasmBuilder) bytes() []byte {
	var out []byte
	out = append(out, 0, 'a', 's', 'm', 1, 0, 0, 0)
	section := func(id byte, body []byte) {
		out = append(out, id)
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
	}
	// types: one per import, then () -> ()
	var types []byte
	types = appendULEB(types, uint64(len(b.imports)+1))
	for _, im := range b.imports {
		types = append(types, 0x60)
		types = appendULEB(types, uint64(im.params))
		for range im.params {
			types = append(types, 0x7f)
		}
		types = appendULEB(types, uint64(im.results))
		for range im.results {
			types = append(types, 0x7f)
		}
	}
	types = append(types, 0x60, 0, 0)
	section(1, types)
	var imps []byte
	imps = appendULEB(imps, uint64(len(b.imports)))
	for i, im := range b.imports {
		imps = appendName(imps, im.module)
		imps = appendName(imps, im.name)
		imps = append(imps, 0x00)
		imps = appendULEB(imps, uint64(i))
	}
	section(2, imps)
	section(3, appendULEB([]byte{1}, uint64(len(b.imports))))
	mem := []byte{1}
	if b.maxPages >= 0 {
		mem = append(mem, 1)
		mem = appendULEB(mem, uint64(b.minPages))
		mem = appendULEB(mem, uint64(b.maxPages))
	} else {
		mem = append(mem, 0)
		mem = appendULEB(mem, uint64(b.minPages))
	}
	section(5, mem)
	var exp []byte
	exp = appendULEB(exp, 2)
	exp = appendName(exp, "_start")
	exp = append(exp, 0x00)
	exp = appendULEB(exp, uint64(len(b.imports)))
	exp = appendName(exp, "memory")
	exp = append(exp, 0x02, 0)
	section(7, exp)
	body := append([]byte{0}, b.code...) // no locals
	body = append(body, opEnd)
	var code []byte
	code = appendULEB(code, 1)
	code = appendULEB(code, uint64(len(body)))
	code = append(code, body...)
	section(10, code)
	if len(b.data) > 0 {
		var d []byte
		d = appendULEB(d, uint64(len(b.data)))
		for _, seg := range b.data {
			d = append(d, 0, 0x41)
			d = appendSLEB(d, int64(seg.off))
			d = append(d, opEnd)
			d = appendULEB(d, uint64(len(seg.data)))
			d = append(d, seg.data...)
		}
		section(11, d)
	}
	return out
}

func appendName(b []byte, s string) []byte {
	b = appendULEB(b, uint64(len(s)))
	return append(b, s...)
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
