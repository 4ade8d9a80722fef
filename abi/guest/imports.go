//go:build wasip1

package guest

// The raw host imports. Pointers are addresses in the guest's linear
// memory; see package abi for each function's contract.

//go:wasmimport env realm_host_load_model_by_name
func hostLoadModelByName(namePtr, nameLen uint32) int32

//go:wasmimport env realm_host_unload_model
func hostUnloadModel(model int32) int32

//go:wasmimport env realm_host_list_models
func hostListModels(outPtr, outCap uint32) int32

//go:wasmimport env realm_host_model_info
func hostModelInfo(model int32, outPtr, outCap uint32) int32

//go:wasmimport env realm_host_tokenize
func hostTokenize(model int32, textPtr, textLen, flags, outPtr, outCap uint32) int32

//go:wasmimport env realm_host_detokenize
func hostDetokenize(model int32, idsPtr, nIDs, flags, outPtr, outCap uint32) int32

//go:wasmimport env realm_host_session_open
func hostSessionOpen(model int32, nCtx uint32) int32

//go:wasmimport env realm_host_session_decode
func hostSessionDecode(session int32, idsPtr, nIDs uint32) int32

//go:wasmimport env realm_host_session_logits
func hostSessionLogits(session int32, outPtr, outCap uint32) int32

//go:wasmimport env realm_host_session_sample
func hostSessionSample(session int32, paramsPtr, paramsLen uint32) int32

//go:wasmimport env realm_host_session_truncate
func hostSessionTruncate(session int32, n uint32) int32

//go:wasmimport env realm_host_session_close
func hostSessionClose(session int32) int32

//go:wasmimport env realm_host_generate
func hostGenerate(model int32, promptPtr, promptLen, paramsPtr, paramsLen uint32) int32

//go:wasmimport env realm_host_tensor_from_weight
func hostTensorFromWeight(model int32, namePtr, nameLen uint32) int32

//go:wasmimport env realm_host_tensor_from_data
func hostTensorFromData(dataPtr, n, shapePtr, nDims uint32) int32

//go:wasmimport env realm_host_tensor_op
func hostTensorOp(opPtr, opLen, inputsPtr, nInputs, paramsPtr, paramsLen uint32) int32

//go:wasmimport env realm_host_tensor_shape
func hostTensorShape(tensor int32, outPtr, outCap uint32) int32

//go:wasmimport env realm_host_tensor_read
func hostTensorRead(tensor int32, outPtr, outCap uint32) int32

//go:wasmimport env realm_host_tensor_free
func hostTensorFree(tensor int32) int32

//go:wasmimport env realm_host_log
func hostLog(level int32, msgPtr, msgLen uint32) int32

//go:wasmimport env realm_host_last_error
func hostLastError(outPtr, outCap uint32) int32
