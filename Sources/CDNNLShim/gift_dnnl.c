// oneDNN behind dlopen: see include/gift_dnnl.h.
#define _GNU_SOURCE
#include "gift_dnnl.h"
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __has_include(<oneapi/dnnl/dnnl.h>)
#include <oneapi/dnnl/dnnl.h>
#define GIFT_HAVE_DNNL_HEADERS 1
#endif

#ifndef GIFT_HAVE_DNNL_HEADERS
int gift_dnnl_available(void) { return 0; }
const char *gift_dnnl_description(void) { return "oneDNN unavailable: gift was built without oneDNN headers (install libdnnl-dev and rebuild)"; }
const char *gift_dnnl_warning(void) { return ""; }
int gift_dnnl_api(void) { return 0; }
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

// The functions whose C signature is the same in oneDNN 2.x and 3.x (handles and pointers only; a
// memory descriptor is a struct pointer in 2.x and an opaque pointer in 3.x, both passed as pointers).
#define GIFT_DNNL_COMMON(X) \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy) \
    X(dnnl_post_ops_create) X(dnnl_post_ops_destroy) X(dnnl_primitive_attr_set_post_ops) \
    X(dnnl_primitive_desc_destroy) X(dnnl_primitive_desc_query_md) X(dnnl_primitive_create) \
    X(dnnl_primitive_destroy) X(dnnl_memory_create) X(dnnl_memory_destroy) X(dnnl_memory_set_data_handle) \
    X(dnnl_primitive_execute) X(dnnl_stream_wait) X(dnnl_get_effective_cpu_isa) X(dnnl_version)
// 2.x only (the headers gift compiles against): operation descriptors, output scales, a sum of one scale.
#define GIFT_DNNL_V2(X) \
    X(dnnl_memory_desc_init_by_strides) X(dnnl_matmul_desc_init) X(dnnl_primitive_attr_set_output_scales) \
    X(dnnl_post_ops_append_sum) X(dnnl_primitive_desc_create)

#define DECLARE(f) static __typeof__(f) *p_##f;
GIFT_DNNL_COMMON(DECLARE)
GIFT_DNNL_V2(DECLARE)

// 3.x only, declared here from oneDNN 3.x's dnnl.h (gift builds against 2.x headers). In 3.x a memory
// descriptor is an opaque object created and destroyed by the library; alpha is a source scale given
// at execution (DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC); the sum post-op takes a zero point and a type.
typedef struct gift_dnnl3_md *md3_t;
#define GIFT_DNNL_ARG_ATTR_SCALES 4096   // DNNL_ARG_ATTR_SCALES (3.x)
static struct {
    dnnl_status_t (*memory_desc_create_with_strides)(md3_t *, int, const dnnl_dims_t, dnnl_data_type_t, const dnnl_dims_t);
    dnnl_status_t (*memory_desc_destroy)(md3_t);
    dnnl_status_t (*matmul_primitive_desc_create)(dnnl_primitive_desc_t *, dnnl_engine_t, md3_t src, md3_t weights,
                                                  md3_t bias, md3_t dst, const_dnnl_primitive_attr_t);
    dnnl_status_t (*primitive_attr_set_scales_mask)(dnnl_primitive_attr_t, int arg, int mask);
    dnnl_status_t (*post_ops_append_sum)(dnnl_post_ops_t, float scale, int32_t zero_point, dnnl_data_type_t);
} v3;

// Threads: oneDNN's OpenMP runtime (Debian's 2.6 and PyPI's onednn-cpu-gomp), per calling thread.
static void (*p_omp_set_num_threads)(int);
static int (*p_omp_get_max_threads)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int available, api;
static int nativeBF16, amx;
static dnnl_engine_t engine;
static char description[PATH_MAX + 256] = "oneDNN not loaded yet";
static char warning[PATH_MAX + 256];

// Resolves every function of the library's API generation; 0 with `why` naming one that is missing.
static int resolve(void *h, const char *path, char *why, size_t whySize) {
    char missing[160] = "";
#define RESOLVE(f) if (!(p_##f = (__typeof__(f) *)dlsym(h, #f)) && !*missing) snprintf(missing, sizeof missing, "%s", #f);
    GIFT_DNNL_COMMON(RESOLVE)
    if (!*missing && p_dnnl_version()->major >= 3) {
        api = 3;
#define RESOLVE3(f) if (!(*(void **)&v3.f = dlsym(h, "dnnl_" #f)) && !*missing) snprintf(missing, sizeof missing, "dnnl_%s", #f);
        RESOLVE3(memory_desc_create_with_strides) RESOLVE3(memory_desc_destroy) RESOLVE3(matmul_primitive_desc_create)
        RESOLVE3(primitive_attr_set_scales_mask) RESOLVE3(post_ops_append_sum)
#undef RESOLVE3
    } else if (!*missing) {
        api = 2;
        GIFT_DNNL_V2(RESOLVE)
    }
#undef RESOLVE
    if (*missing) { snprintf(why, whySize, "%s lacks %s: not a oneDNN 2.x or 3.x library", path, missing); return 0; }
    p_omp_set_num_threads = (void (*)(int))dlsym(h, "omp_set_num_threads");
    p_omp_get_max_threads = (int (*)(void))dlsym(h, "omp_get_max_threads");
    if (!p_omp_set_num_threads || !p_omp_get_max_threads) {
        snprintf(why, whySize, "%s has no OpenMP runtime: gift sets oneDNN's threads through it (a TBB, SYCL or"
                 " threadpool build is not supported)", path);
        return 0;
    }
    return 1;
}

// The CPU ISA oneDNN dispatches to. The enum's values for AMX moved in 3.0 (0x3e7 → 0xfef).
static const char *isaName(dnnl_cpu_isa_t isa) {
    unsigned amxBits = api == 3 ? 0xfefu : 0x3e7u;
    amx = ((unsigned)isa & amxBits) == amxBits;
    nativeBF16 = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    return amx ? "avx512_core_amx" : nativeBF16 ? "avx512_core_bf16"
        : (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? "avx512_core (no native bf16)"
        : (isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2 ? "avx2 (no native bf16)" : "other";
}

// Loads one library by name or path: 1 when it is a usable oneDNN (functions resolved, a CPU engine
// made; the description then names it with the file the loader found), else 0 with `why`. A library
// that fails stays loaded (unloading one that may have started threads is not safe) but unused.
static int loadLibrary(const char *name, char *why, size_t whySize) {
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) { snprintf(why, whySize, "%s", dlerror()); return 0; }
    char path[PATH_MAX];
    Dl_info info;
    void *sym = dlsym(h, "dnnl_version");
    snprintf(path, sizeof path, "%s", sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : name);
    if (!resolve(h, path, why, whySize)) return 0;
    if (p_dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        snprintf(why, whySize, "%s has no CPU engine: a SYCL build such as PyPI's `onednn` needs a SYCL CPU device", path);
        return 0;
    }
    const char *isa = isaName(p_dnnl_get_effective_cpu_isa());
    const dnnl_version_t *v = p_dnnl_version();
    snprintf(description, sizeof description, "oneDNN %d.%d.%d (%s), CPU ISA %s", v->major, v->minor, v->patch, path, isa);
    return 1;
}

// GIFT_ONEDNN_LIB when set, else Debian's libdnnl.so.2 (the default: a 3.x build measured no faster,
// see README); a library GIFT_ONEDNN_LIB names that cannot be used is reported (gift_dnnl_warning) and
// the default is loaded instead.
static void loadLibraries(const char *env, char *why, size_t whySize) {
    if (env && *env) {
        if ((available = loadLibrary(env, why, whySize))) return;
        snprintf(warning, sizeof warning, "GIFT_ONEDNN_LIB=%s could not be used (%s); using the default oneDNN", env, why);
    }
    if (!(available = loadLibrary("libdnnl.so.2", why, whySize)))
        snprintf(description, sizeof description, "oneDNN unavailable: %s", why);
}

// libgomp's idle workers spin after each parallel region (300000 pause loops by default: milliseconds on
// a Zen 2) waiting for the next one. Between two GEMMs gift runs attention and the elementwise passes
// on its own threads (libdispatch, OpenBLAS), which those spinning workers then deprive of their cores.
// Unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT set), idle workers sleep at once: libgomp
// reads the variable when it is loaded, here with oneDNN; it is unset again so children choose anew.
static void load(void) {
    char why[PATH_MAX + 256] = "";
    const char *user = getenv("OMP_WAIT_POLICY") ? "OMP_WAIT_POLICY" : getenv("GOMP_SPINCOUNT") ? "GOMP_SPINCOUNT" : NULL;
    if (!user) setenv("OMP_WAIT_POLICY", "passive", 1);
    loadLibraries(getenv("GIFT_ONEDNN_LIB"), why, sizeof why);
    if (!user) unsetenv("OMP_WAIT_POLICY");
    if (available) {
        size_t used = strlen(description);
        if (user) snprintf(description + used, sizeof description - used, ", OpenMP waits as %s=%s says", user, getenv(user));
        else snprintf(description + used, sizeof description - used, ", OpenMP waits passive (set by gift)");
    }
}

// One cached primitive: a shape and the memory objects it runs on (their data handles are set per call).
typedef struct {
    int used;
    unsigned long stamp;
    int dtype, transA, transB, threads;
    long m, n, k, lda, ldb, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t ma, mb, mc, ms;   // ms: 3.x's alpha (a one-float source scale), NULL when alpha = 1
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
    if (e->ms) p_dnnl_memory_destroy(e->ms);
    e->used = 0; e->ms = NULL;
}

// A GEMM's shape as oneDNN sees it: A [m×k], B [k×n], C [m×n] with strides (a transpose swaps them).
typedef struct { dnnl_dims_t da, db, dc, sa, sb, sc; dnnl_data_type_t dt; } Layout;

static Layout layout(int dtype, int transA, int transB, long m, long n, long k, long lda, long ldb, long ldc) {
    Layout l = {{m, k}, {k, n}, {m, n}, {transA ? 1 : lda, transA ? lda : 1}, {transB ? 1 : ldb, transB ? ldb : 1},
                {ldc, 1}, dtype == 1 ? dnnl_bf16 : dnnl_f32};
    return l;
}

// beta ≠ 0: a sum post-op (C = result + beta · C), in either API's form.
static dnnl_status_t addSum(dnnl_primitive_attr_t attr, float beta) {
    if (beta == 0.0f) return dnnl_success;
    dnnl_post_ops_t po;
    dnnl_status_t s = p_dnnl_post_ops_create(&po);
    if (s) return s;
    s = api == 3 ? v3.post_ops_append_sum(po, beta, 0, dnnl_data_type_undef) : p_dnnl_post_ops_append_sum(po, beta);
    if (!s) s = p_dnnl_primitive_attr_set_post_ops(attr, po);
    p_dnnl_post_ops_destroy(po);
    return s;
}

static dnnl_status_t describe2(Layout *l, dnnl_primitive_attr_t attr, float alpha, dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t a, b, c;
    dnnl_status_t s;
    if ((s = p_dnnl_memory_desc_init_by_strides(&a, 2, l->da, l->dt, l->sa))) return s;
    if ((s = p_dnnl_memory_desc_init_by_strides(&b, 2, l->db, l->dt, l->sb))) return s;
    if ((s = p_dnnl_memory_desc_init_by_strides(&c, 2, l->dc, dnnl_f32, l->sc))) return s;
    dnnl_matmul_desc_t md;
    if ((s = p_dnnl_matmul_desc_init(&md, &a, &b, NULL, &c))) return s;
    if (alpha != 1.0f && (s = p_dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha))) return s;
    return p_dnnl_primitive_desc_create(pd, &md, attr, engine, NULL);
}

// 3.x: alpha scales the source (dst = alpha · (A·B) + beta · C: one f32 multiplication of the
// accumulator, as 2.x's output scale); its value is a runtime argument (Entry.ms).
static dnnl_status_t describe3(Layout *l, dnnl_primitive_attr_t attr, float alpha, dnnl_primitive_desc_t *pd) {
    md3_t a = NULL, b = NULL, c = NULL;
    dnnl_status_t s = v3.memory_desc_create_with_strides(&a, 2, l->da, l->dt, l->sa);
    if (!s) s = v3.memory_desc_create_with_strides(&b, 2, l->db, l->dt, l->sb);
    if (!s) s = v3.memory_desc_create_with_strides(&c, 2, l->dc, dnnl_f32, l->sc);
    if (!s && alpha != 1.0f) s = v3.primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0);
    if (!s) s = v3.matmul_primitive_desc_create(pd, engine, a, b, NULL, c, attr);
    if (a) v3.memory_desc_destroy(a);
    if (b) v3.memory_desc_destroy(b);
    if (c) v3.memory_desc_destroy(c);
    return s;
}

static dnnl_status_t describe(int dtype, int transA, int transB, long m, long n, long k, long lda, long ldb, long ldc,
                              float alpha, float beta, dnnl_primitive_desc_t *pd) {
    Layout l = layout(dtype, transA, transB, m, n, k, lda, ldb, ldc);
    dnnl_primitive_attr_t attr;
    dnnl_status_t s = p_dnnl_primitive_attr_create(&attr);
    if (s) return s;
    s = addSum(attr, beta);
    if (!s) s = api == 3 ? describe3(&l, attr, alpha, pd) : describe2(&l, attr, alpha, pd);
    p_dnnl_primitive_attr_destroy(attr);
    return s;
}

// 3.x's alpha: a memory object of one float holding it (the entry's own field, so its address is stable).
static dnnl_status_t scaleMemory(Entry *e) {
    if (api != 3 || e->alpha == 1.0f) return dnnl_success;
    md3_t d = NULL;
    dnnl_dims_t one = {1}, stride = {1};
    dnnl_status_t s = v3.memory_desc_create_with_strides(&d, 1, one, dnnl_f32, stride);
    if (!s) s = p_dnnl_memory_create(&e->ms, (const void *)d, engine, &e->alpha);
    if (d) v3.memory_desc_destroy(d);
    return s;
}

static Entry *find(int dtype, int transA, int transB, long m, long n, long k, long lda, long ldb, long ldc,
                   float alpha, float beta, int threads, Entry **victim) {
    *victim = &cache[0];
    for (int i = 0; i < CACHE; i++) {
        Entry *e = &cache[i];
        if (e->used && e->dtype == dtype && e->transA == transA && e->transB == transB && e->m == m && e->n == n
            && e->k == k && e->lda == lda && e->ldb == ldb && e->ldc == ldc && e->alpha == alpha && e->beta == beta
            && e->threads == threads) {
            e->stamp = ++clock_;
            return e;
        }
        if (!e->used) *victim = e;
        else if ((*victim)->used && e->stamp < (*victim)->stamp) *victim = e;
    }
    return NULL;
}

static Entry *lookup(int dtype, int transA, int transB, long m, long n, long k, long lda, long ldb, long ldc,
                     float alpha, float beta) {
    int threads = p_omp_get_max_threads();
    Entry *e;
    Entry *hit = find(dtype, transA, transB, m, n, k, lda, ldb, ldc, alpha, beta, threads, &e);
    if (hit) return hit;
    dnnl_primitive_desc_t pd;
    if (describe(dtype, transA, transB, m, n, k, lda, ldb, ldc, alpha, beta, &pd) != dnnl_success) return NULL;
    release(e);
    dnnl_status_t s = p_dnnl_primitive_create(&e->prim, pd);
    if (s == dnnl_success) {
        // Memory objects with no data yet: the handles are set to the caller's pointers on every call.
        p_dnnl_memory_create(&e->ma, p_dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), engine, DNNL_MEMORY_NONE);
        p_dnnl_memory_create(&e->mb, p_dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), engine, DNNL_MEMORY_NONE);
        p_dnnl_memory_create(&e->mc, p_dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), engine, DNNL_MEMORY_NONE);
        e->used = 1; e->stamp = ++clock_;
        e->dtype = dtype; e->transA = transA; e->transB = transB; e->threads = threads;
        e->m = m; e->n = n; e->k = k; e->lda = lda; e->ldb = ldb; e->ldc = ldc; e->alpha = alpha; e->beta = beta;
        if (scaleMemory(e) != dnnl_success) { release(e); s = dnnl_runtime_error; }
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

const char *gift_dnnl_warning(void) {
    pthread_once(&once, load);
    return warning;
}

int gift_dnnl_api(void) { return gift_dnnl_available() ? api : 0; }
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
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->ma}, {DNNL_ARG_WEIGHTS, e->mb}, {DNNL_ARG_DST, e->mc},
                               {GIFT_DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, e->ms}};
    if (p_dnnl_primitive_execute(e->prim, stream, e->ms ? 4 : 3, args) != dnnl_success) return -4;
    return p_dnnl_stream_wait(stream) == dnnl_success ? 0 : -5;
}

#endif
