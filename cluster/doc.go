// Package cluster runs Realm on more than one machine over NATS.
//
// Front ends (realm serve --cluster) embed a NATS server with JetStream;
// their servers form one NATS cluster through routes, so the key-value
// bucket of worker state and the object store of guest apps are
// replicated. Workers (realm worker --join) connect to it as clients,
// serve requests addressed to them on their own subject and publish their
// state (models loaded and loadable, backend, queue depth, prefixes
// served) to the bucket about once a second under a key that expires
// after StateTTL: a missing key is a gone worker.
//
// A request runs entirely on one worker (guest and plugin); the front end
// picks the worker (model loaded > prefix affinity > least loaded, with a
// guard against piling onto one node) and relays the worker's HTTP
// response, which travels as numbered frames on a per-request subject
// with heartbeats while nothing else is sent and a final status frame.
//
// Nothing here is a home-made membership, consensus or wire protocol:
// membership is the bucket's keys and their TTL, replication is
// JetStream's, transport is NATS request/reply and subjects.
package cluster
