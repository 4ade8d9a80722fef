// Package proto holds the generated gRPC code of the backend plugin
// protocol (backend.proto, package realm.backend.v1).
//
// Regenerate with `go generate ./backends/proto` after installing the
// pinned generators:
//
//	protoc              3.21.12 (Debian: apt-get install protobuf-compiler)
//	protoc-gen-go       v1.36.12 (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12)
//	protoc-gen-go-grpc  v1.5.1   (go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1)
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative backend.proto
