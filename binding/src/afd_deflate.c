/*
 * afd_deflate: gzip compression of one chunk with libdeflate, as a Node-API addon.
 *
 * Why: the gzip codec is the one Bacula users know, and it is CPU-bound. libdeflate compresses a
 * whole buffer at once (no streaming state) about twice as fast as zlib at the same level, with
 * output as small or smaller, in the same standard gzip format, so anything (node:zlib, gunzip)
 * decompresses it. agentfd compresses independent 1 MiB chunks, which is exactly libdeflate's model.
 *
 * gzip(input: Uint8Array, level: 1..12): Buffer. One compressor per level is kept per Node
 * environment (each compression worker thread has its own), created on first use.
 *
 * zlib(input, level, headroom): Buffer. The zlib format (RFC 1950) instead, which Bacula's GZIP
 * data streams hold (bacula-fd compresses each block with zlib's compress2 and restores with
 * uncompress, so any valid zlib stream restores); `headroom` bytes are left free before it for the
 * caller (a sparse block's offset), so the record needs no second copy.
 */
#include <libdeflate.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AFD_MAX_LEVEL 12

typedef struct {
    struct libdeflate_compressor *by_level[AFD_MAX_LEVEL + 1];
    void *scratch;
    size_t scratch_size;
} afd_instance;

static void afd_free_instance(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    afd_instance *inst = data;
    for (int i = 0; i <= AFD_MAX_LEVEL; i++) {
        if (inst->by_level[i] != NULL) libdeflate_free_compressor(inst->by_level[i]);
    }
    free(inst->scratch);
    free(inst);
}

static napi_value afd_throw(napi_env env, const char *message) {
    napi_throw_error(env, "E_COMPRESS", message);
    return NULL;
}

typedef size_t (*afd_bound_fn)(struct libdeflate_compressor *, size_t);
typedef size_t (*afd_compress_fn)(struct libdeflate_compressor *, const void *, size_t, void *, size_t);

/* name(input, level[, headroom]) with one of libdeflate's formats. */
static napi_value afd_compress(napi_env env, napi_callback_info info, const char *name, afd_bound_fn bound_of, afd_compress_fn compress) {
    size_t argc = 3;
    napi_value argv[3];
    char message[96];
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
        snprintf(message, sizeof message, "%s(input, level) takes two arguments", name);
        return afd_throw(env, message);
    }
    bool is_typed = false;
    napi_is_typedarray(env, argv[0], &is_typed);
    napi_typedarray_type type;
    size_t length = 0;
    void *data = NULL;
    if (!is_typed || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
        snprintf(message, sizeof message, "%s: input must be a Uint8Array", name);
        return afd_throw(env, message);
    }
    int32_t level = 0;
    if (napi_get_value_int32(env, argv[1], &level) != napi_ok || level < 1 || level > AFD_MAX_LEVEL) {
        snprintf(message, sizeof message, "%s: level must be an integer from 1 to 12", name);
        return afd_throw(env, message);
    }
    int32_t headroom = 0;
    if (argc > 2 && (napi_get_value_int32(env, argv[2], &headroom) != napi_ok || headroom < 0 || headroom > 4096)) {
        snprintf(message, sizeof message, "%s: headroom must be an integer from 0 to 4096", name);
        return afd_throw(env, message);
    }

    afd_instance *inst = NULL;
    napi_get_instance_data(env, (void **)&inst);
    if (inst == NULL) return afd_throw(env, "the afd_deflate addon was not initialised");
    if (inst->by_level[level] == NULL) {
        inst->by_level[level] = libdeflate_alloc_compressor(level);
        if (inst->by_level[level] == NULL) return afd_throw(env, "out of memory for a libdeflate compressor");
    }
    struct libdeflate_compressor *c = inst->by_level[level];

    /* Compress into a scratch buffer kept between calls, then copy out exactly what was made:
     * the result is usually far smaller than the bound, and a Buffer cannot be shrunk. */
    size_t bound = bound_of(c, length);
    if (inst->scratch_size < bound) {
        void *grown = realloc(inst->scratch, bound);
        if (grown == NULL) return afd_throw(env, "out of memory for the compressed output");
        inst->scratch = grown;
        inst->scratch_size = bound;
    }
    size_t made = compress(c, data, length, inst->scratch, inst->scratch_size);
    if (made == 0) return afd_throw(env, "libdeflate could not compress the chunk");
    napi_value result;
    void *out = NULL;
    if (napi_create_buffer(env, (size_t)headroom + made, &out, &result) != napi_ok) {
        return afd_throw(env, "cannot allocate the compressed result");
    }
    memcpy((char *)out + headroom, inst->scratch, made);
    return result;
}

static napi_value afd_gzip(napi_env env, napi_callback_info info) {
    return afd_compress(env, info, "gzip", libdeflate_gzip_compress_bound, libdeflate_gzip_compress);
}

static napi_value afd_zlib(napi_env env, napi_callback_info info) {
    return afd_compress(env, info, "zlib", libdeflate_zlib_compress_bound, libdeflate_zlib_compress);
}

static bool afd_export(napi_env env, napi_value exports, const char *name, napi_callback fn) {
    napi_value value;
    return napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &value) == napi_ok && napi_set_named_property(env, exports, name, value) == napi_ok;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
    afd_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL || napi_set_instance_data(env, inst, afd_free_instance, NULL) != napi_ok) {
        free(inst);
        return NULL;
    }
    if (!afd_export(env, exports, "gzip", afd_gzip) || !afd_export(env, exports, "zlib", afd_zlib)) return NULL;
    return exports;
}
