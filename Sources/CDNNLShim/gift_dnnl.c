// oneDNN behind dlopen: see include/gift_dnnl.h.
#define _GNU_SOURCE
#include "gift_dnnl.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if __has_include(<oneapi/dnnl/dnnl.h>)
#include <oneapi/dnnl/dnnl.h>
#define GIFT_HAVE_DNNL_HEADERS 1
#endif

#ifndef GIFT_HAVE_DNNL_HEADERS
int gift_dnnl_available(void) { return 0; }
const char *gift_dnnl_description(void) { return "oneDNN unavailable: gift was built without oneDNN headers (install libdnnl-dev and rebuild)"; }
int gift_dnnl_native_bf16(void) { return 0; }
int gift_dnnl_amx(void) { return 0; }
void gift_dnnl_set_threads(int n) { (void)n; }
int gift_dnnl_get_threads(void) { return 1; }
int gift_dnnl_gemm(int dtype, int transA, int transB, long m, long n, long k, float alpha,
                   const void *a, long lda, const void *b, long ldb, float beta, float *c, long ldc) {
    (void)dtype; (void)transA; (void)transB; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    return -1;
}
#else

// The functions we call, resolved from libdnnl.so.2 (and libgomp, which it loads).
#define GIFT_DNNL_FUNCS(X) \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_memory_desc_init_by_strides) \
    X(dnnl_matmul_desc_init) X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy) \
    X(dnnl_primitive_attr_set_output_scales) X(dnnl_post_ops_create) X(dnnl_post_ops_destroy) \
    X(dnnl_post_ops_append_sum) X(dnnl_primitive_attr_set_post_ops) X(dnnl_primitive_desc_create) \
    X(dnnl_primitive_desc_destroy) X(dnnl_primitive_desc_query) X(dnnl_primitive_create) \
    X(dnnl_primitive_destroy) X(dnnl_memory_create) X(dnnl_memory_destroy) \
    X(dnnl_memory_set_data_handle) X(dnnl_primitive_execute) X(dnnl_stream_wait) \
    X(dnnl_get_effective_cpu_isa) X(dnnl_version) X(dnnl_primitive_desc_query_md)

#define DECLARE(f) static __typeof__(f) *p_##f;
GIFT_DNNL_FUNCS(DECLARE)
static void (*p_omp_set_num_threads)(int);
static int (*p_omp_get_max_threads)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int available;
static int nativeBF16, amx;
static dnnl_engine_t engine;
static char description[256] = "oneDNN not loaded yet";

static void load(void) {
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) { snprintf(description, sizeof description, "oneDNN unavailable: %s", dlerror()); return; }
#define RESOLVE(f) p_##f = (__typeof__(f) *)dlsym(h, #f); \
    if (!p_##f) { snprintf(description, sizeof description, "oneDNN unavailable: libdnnl.so.2 lacks %s", #f); return; }
    GIFT_DNNL_FUNCS(RESOLVE)
    p_omp_set_num_threads = (void (*)(int))dlsym(h, "omp_set_num_threads");
    p_omp_get_max_threads = (int (*)(void))dlsym(h, "omp_get_max_threads");
    if (!p_omp_set_num_threads || !p_omp_get_max_threads) {
        snprintf(description, sizeof description, "oneDNN unavailable: its OpenMP runtime (omp_set_num_threads) was not found");
        return;
    }
    if (p_dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        snprintf(description, sizeof description, "oneDNN unavailable: no CPU engine");
        return;
    }
    dnnl_cpu_isa_t isa = p_dnnl_get_effective_cpu_isa();
    nativeBF16 = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    amx = (isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
    const dnnl_version_t *v = p_dnnl_version();
    const char *isaName = (isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx ? "avx512_core_amx"
        : nativeBF16 ? "avx512_core_bf16"
        : (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? "avx512_core (no native bf16)"
        : (isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2 ? "avx2 (no native bf16)" : "other";
    snprintf(description, sizeof description, "oneDNN %d.%d.%d, CPU ISA %s", v->major, v->minor, v->patch, isaName);
    available = 1;
}

// One cached primitive: a shape and the memory objects it runs on (their data handles are set per call).
typedef struct {
    int used;
    unsigned long stamp;
    int dtype, transA, transB, threads;
    long m, n, k, lda, ldb, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t ma, mb, mc;
} Entry;

enum { CACHE = 96 };
// Per thread: attention runs GEMMs from several threads at once, and oneDNN streams and our memory
// objects are not to be shared between concurrent executions.
static __thread Entry cache[CACHE];
static __thread unsigned long clock_;
static __thread dnnl_stream_t stream;

static void release(Entry *e) {
    if (!e->used) return;
    p_dnnl_primitive_destroy(e->prim);
    p_dnnl_memory_destroy(e->ma); p_dnnl_memory_destroy(e->mb); p_dnnl_memory_destroy(e->mc);
    e->used = 0;
}

static dnnl_status_t describe(int dtype, int transA, int transB, long m, long n, long k, long lda, long ldb, long ldc,
                              float alpha, float beta, dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t a, b, c;
    dnnl_data_type_t dt = dtype == 1 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t da = {m, k}, db = {k, n}, dc = {m, n};
    dnnl_dims_t sa = {transA ? 1 : lda, transA ? lda : 1};
    dnnl_dims_t sb = {transB ? 1 : ldb, transB ? ldb : 1};
    dnnl_dims_t sc = {ldc, 1};
    dnnl_status_t s;
    if ((s = p_dnnl_memory_desc_init_by_strides(&a, 2, da, dt, sa))) return s;
    if ((s = p_dnnl_memory_desc_init_by_strides(&b, 2, db, dt, sb))) return s;
    if ((s = p_dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc))) return s;
    dnnl_matmul_desc_t md;
    if ((s = p_dnnl_matmul_desc_init(&md, &a, &b, NULL, &c))) return s;
    dnnl_primitive_attr_t attr;
    if ((s = p_dnnl_primitive_attr_create(&attr))) return s;
    if (alpha != 1.0f) p_dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
    if (beta != 0.0f) {
        dnnl_post_ops_t po;
        p_dnnl_post_ops_create(&po);
        p_dnnl_post_ops_append_sum(po, beta);
        p_dnnl_primitive_attr_set_post_ops(attr, po);
        p_dnnl_post_ops_destroy(po);
    }
    s = p_dnnl_primitive_desc_create(pd, &md, attr, engine, NULL);
    p_dnnl_primitive_attr_destroy(attr);
    return s;
}

static Entry *lookup(int dtype, int transA, int transB, long m, long n, long k, long lda, long ldb, long ldc,
                     float alpha, float beta) {
    int threads = p_omp_get_max_threads();
    Entry *victim = &cache[0];
    for (int i = 0; i < CACHE; i++) {
        Entry *e = &cache[i];
        if (e->used && e->dtype == dtype && e->transA == transA && e->transB == transB && e->m == m && e->n == n
            && e->k == k && e->lda == lda && e->ldb == ldb && e->ldc == ldc && e->alpha == alpha && e->beta == beta
            && e->threads == threads) {
            e->stamp = ++clock_;
            return e;
        }
        if (!e->used) victim = e;
        else if (victim->used && e->stamp < victim->stamp) victim = e;
    }
    dnnl_primitive_desc_t pd;
    if (describe(dtype, transA, transB, m, n, k, lda, ldb, ldc, alpha, beta, &pd) != dnnl_success) return NULL;
    release(victim);
    Entry *e = victim;
    dnnl_status_t s = p_dnnl_primitive_create(&e->prim, pd);
    if (s == dnnl_success) {
        // Memory objects with no data yet: the handles are set to the caller's pointers on every call.
        const dnnl_memory_desc_t *a = p_dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        const dnnl_memory_desc_t *b = p_dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *c = p_dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        p_dnnl_memory_create(&e->ma, a, engine, DNNL_MEMORY_NONE);
        p_dnnl_memory_create(&e->mb, b, engine, DNNL_MEMORY_NONE);
        p_dnnl_memory_create(&e->mc, c, engine, DNNL_MEMORY_NONE);
        e->used = 1; e->stamp = ++clock_;
        e->dtype = dtype; e->transA = transA; e->transB = transB; e->threads = threads;
        e->m = m; e->n = n; e->k = k; e->lda = lda; e->ldb = ldb; e->ldc = ldc; e->alpha = alpha; e->beta = beta;
    }
    p_dnnl_primitive_desc_destroy(pd);
    return s == dnnl_success ? e : NULL;
}

int gift_dnnl_available(void) {
    pthread_once(&once, load);
    return available;
}

const char *gift_dnnl_description(void) {
    pthread_once(&once, load);
    return description;
}

int gift_dnnl_native_bf16(void) { return gift_dnnl_available() && nativeBF16; }
int gift_dnnl_amx(void) { return gift_dnnl_available() && amx; }

void gift_dnnl_set_threads(int n) { if (gift_dnnl_available()) p_omp_set_num_threads(n < 1 ? 1 : n); }

int gift_dnnl_get_threads(void) { return gift_dnnl_available() ? p_omp_get_max_threads() : 1; }

int gift_dnnl_gemm(int dtype, int transA, int transB, long m, long n, long k, float alpha,
                   const void *a, long lda, const void *b, long ldb, float beta, float *c, long ldc) {
    if (!gift_dnnl_available()) return -1;
    if (!stream && p_dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) return -2;
    Entry *e = lookup(dtype, transA, transB, m, n, k, lda, ldb, ldc, alpha, beta);
    if (!e) return -3;
    p_dnnl_memory_set_data_handle(e->ma, (void *)a);
    p_dnnl_memory_set_data_handle(e->mb, (void *)b);
    p_dnnl_memory_set_data_handle(e->mc, c);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->ma}, {DNNL_ARG_WEIGHTS, e->mb}, {DNNL_ARG_DST, e->mc}};
    if (p_dnnl_primitive_execute(e->prim, stream, 3, args) != dnnl_success) return -4;
    return p_dnnl_stream_wait(stream) == dnnl_success ? 0 : -5;
}

#endif
