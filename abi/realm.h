/*
 * realm.h — the Realm guest ABI for C (and anything with a C FFI).
 *
 * The same contract as the Go package github.com/realmrt/realm/abi,
 * which documents each function in full. Conventions:
 *   - every function is imported from module "env";
 *   - the int32_t result is >= 0 on success (a handle, a count, a
 *     length) and -errno on failure; realm_host_last_error() returns the
 *     message of the last failure;
 *   - variable-length outputs take (out, out_cap) and follow snprintf:
 *     the result is the full length, bytes are written only when it
 *     fits, so retry with a larger buffer; capacities of token/float
 *     arrays count elements;
 *   - structured data is UTF-8 JSON; tokens are int32_t arrays, logits
 *     and tensor data float arrays (little-endian, as wasm32 is).
 *
 * Build: clang --target=wasm32-wasi -O2 -I abi -o app.wasm app.c
 */
#ifndef REALM_H
#define REALM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REALM_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))

/* Error numbers (results are -errno). Stable: never renumbered. */
enum realm_errno {
	REALM_ESUCCESS = 0,
	REALM_EINVAL = 1,     /* invalid argument */
	REALM_ENOENT = 2,     /* not found */
	REALM_EACCES = 3,     /* permission denied (app policy) */
	REALM_EBADF = 4,      /* bad handle */
	REALM_E2BIG = 5,      /* argument too large */
	REALM_EFAULT = 6,     /* bad address */
	REALM_ENOMEM = 7,     /* out of memory / budget */
	REALM_EUNAVAIL = 8,   /* backend unavailable */
	REALM_EBACKEND = 9,   /* backend failed */
	REALM_EBADMODEL = 10, /* invalid model file */
	REALM_ECTXFULL = 11,  /* context full */
	REALM_ECANCELED = 12, /* cancelled / deadline */
	REALM_ENOTSUP = 13,   /* not supported */
	REALM_ELIMIT = 14,    /* per-run limit reached */
	REALM_EIO = 15        /* output failed */
};

/* realm_host_tokenize flags */
#define REALM_TOKENIZE_ADD_BOS 1u
#define REALM_TOKENIZE_PARSE_SPECIAL 2u
#define REALM_TOKENIZE_DEFAULT_BOS 4u
/* realm_host_detokenize flags */
#define REALM_DETOKENIZE_PIECES 1u
/* realm_host_log levels */
#define REALM_LOG_DEBUG 0
#define REALM_LOG_INFO 1
#define REALM_LOG_WARN 2
#define REALM_LOG_ERROR 3

REALM_IMPORT(realm_host_load_model_by_name)
int32_t realm_host_load_model_by_name(const char *name, uint32_t name_len);
REALM_IMPORT(realm_host_unload_model)
int32_t realm_host_unload_model(int32_t model);
REALM_IMPORT(realm_host_list_models)
int32_t realm_host_list_models(char *out, uint32_t out_cap);
REALM_IMPORT(realm_host_model_info)
int32_t realm_host_model_info(int32_t model, char *out, uint32_t out_cap);

REALM_IMPORT(realm_host_tokenize)
int32_t realm_host_tokenize(int32_t model, const char *text, uint32_t text_len, uint32_t flags,
                            int32_t *out, uint32_t out_cap);
REALM_IMPORT(realm_host_detokenize)
int32_t realm_host_detokenize(int32_t model, const int32_t *ids, uint32_t n_ids, uint32_t flags,
                              char *out, uint32_t out_cap);

REALM_IMPORT(realm_host_session_open)
int32_t realm_host_session_open(int32_t model, uint32_t n_ctx);
REALM_IMPORT(realm_host_session_decode)
int32_t realm_host_session_decode(int32_t session, const int32_t *ids, uint32_t n_ids);
REALM_IMPORT(realm_host_session_logits)
int32_t realm_host_session_logits(int32_t session, float *out, uint32_t out_cap);
REALM_IMPORT(realm_host_session_sample)
int32_t realm_host_session_sample(int32_t session, const char *params_json, uint32_t params_len);
REALM_IMPORT(realm_host_session_truncate)
int32_t realm_host_session_truncate(int32_t session, uint32_t n);
REALM_IMPORT(realm_host_session_close)
int32_t realm_host_session_close(int32_t session);

REALM_IMPORT(realm_host_generate)
int32_t realm_host_generate(int32_t model, const char *prompt, uint32_t prompt_len,
                            const char *params_json, uint32_t params_len);

REALM_IMPORT(realm_host_tensor_from_weight)
int32_t realm_host_tensor_from_weight(int32_t model, const char *name, uint32_t name_len);
REALM_IMPORT(realm_host_tensor_from_data)
int32_t realm_host_tensor_from_data(const float *data, uint32_t n, const int32_t *shape, uint32_t n_dims);
REALM_IMPORT(realm_host_tensor_op)
int32_t realm_host_tensor_op(const char *op, uint32_t op_len, const int32_t *inputs, uint32_t n_inputs,
                             const char *params_json, uint32_t params_len);
REALM_IMPORT(realm_host_tensor_shape)
int32_t realm_host_tensor_shape(int32_t tensor, int32_t *out, uint32_t out_cap);
REALM_IMPORT(realm_host_tensor_read)
int32_t realm_host_tensor_read(int32_t tensor, float *out, uint32_t out_cap);
REALM_IMPORT(realm_host_tensor_free)
int32_t realm_host_tensor_free(int32_t tensor);

REALM_IMPORT(realm_host_log)
int32_t realm_host_log(int32_t level, const char *msg, uint32_t msg_len);
REALM_IMPORT(realm_host_last_error)
int32_t realm_host_last_error(char *out, uint32_t out_cap);

#undef REALM_IMPORT

#ifdef __cplusplus
}
#endif

#endif /* REALM_H */
