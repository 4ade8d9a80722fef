// Package loader turns a plugins.hcl file and the machine it runs on into
// a running backend and a cache of models loaded by name.
//
// The pieces are kept separate so that each can be tested on its own:
//
//   - ParseConfig / LoadConfig parse plugins.hcl once into a Config value
//     that is passed down; nothing in this package reads the environment.
//   - Detect fingerprints the CPU (and, as a hint, GPUs) into a Machine value.
//   - Select is a pure function of (Machine, Config, probe results, pin) that
//     ranks every declared backend and explains each decision.
//   - Registry maps model names to validated files inside the models
//     directory.
//   - ModelCache loads models through a backends.Backend, coalescing
//     concurrent loads, counting references and evicting idle models
//     least-recently-used when a memory budget would be exceeded.
//   - Open wires all of them together with the plugin supervisor.
package loader
