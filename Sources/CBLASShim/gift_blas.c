// OpenBLAS loaded at run time with a core chosen for the CPU: see include/gift_blas.h.
#define _GNU_SOURCE
#include "gift_blas.h"
#include "gift_cpu.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static sgemm_fn p_sgemm;
static void (*p_set_threads)(int);
static int (*p_get_threads)(void);
static char *(*p_corename)(void);
static char *(*p_config)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char error[512] = "";
static char path[512] = "";
static char requested[64] = "";
static char reason[256] = "";

// OpenBLAS's pre-AVX kernels (names as openblas_get_corename returns them, compared without case).
static const char *generic[] = {"Unknown", "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom",
    "Core2", "Penryn", "Dunnington", "Nehalem", "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Nano",
    "Bobcat", NULL};

int gift_blas_core_is_generic(const char *core) {
    for (int i = 0; generic[i]; i++) if (strcasecmp(core, generic[i]) == 0) return 1;
    return 0;
}

int gift_blas_core_supported(const char *core) {
    const gift_cpu_info *c = gift_cpu();
    if (gift_blas_core_is_generic(core)) return 1;
    if (!strcasecmp(core, "SkylakeX")) return c->avx512;
    if (!strcasecmp(core, "Cooperlake")) return c->avx512_bf16;
    if (!strcasecmp(core, "SapphireRapids")) return c->avx512_bf16 && c->avx512_fp16;
    if (!strcasecmp(core, "Haswell") || !strcasecmp(core, "Zen") || !strcasecmp(core, "Excavator"))
        return c->avx2 && c->fma;
    if (!strcasecmp(core, "Sandybridge") || !strcasecmp(core, "Bulldozer") || !strcasecmp(core, "Piledriver")
        || !strcasecmp(core, "Steamroller")) return 1;   // AVX(1): every CPU with AVX2 has it
    return 0;
}

// The best kernel OpenBLAS 0.3.21 has for an instruction set (as its own detection maps the CPUs it
// knows: Cooper Lake / Sapphire Rapids / Zen 4 -> Cooperlake, Skylake-SP -> SkylakeX, Haswell and
// Zen 1-3 -> Haswell-class). Its sgemm kernel is the same for the three AVX-512 cores.
const char *gift_blas_best_core(void) {
    const gift_cpu_info *c = gift_cpu();
    if (c->avx512_bf16) return "Cooperlake";
    if (c->avx512) return "SkylakeX";
    if (c->avx2 && c->fma) return "Haswell";
    return "";
}

static void *resolve(void *h, const char *prefix, const char *name) {
    char full[128];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return dlsym(h, full);
}

static void load(void) {
    const char *lib = getenv("GIFT_BLAS_LIB");
    if (!lib || !*lib) lib = "libopenblas.so.0";
    const char *prefix = getenv("GIFT_BLAS_PREFIX");
    if (!prefix) prefix = "";
    snprintf(path, sizeof path, "%s", lib);
    if (dlopen(lib, RTLD_NOW | RTLD_NOLOAD)) {
        snprintf(reason, sizeof reason, "%s was already loaded by this process: its own choice stands", lib);
    } else {
        const char *user = getenv("OPENBLAS_CORETYPE");
        if (user && *user) {
            if (!gift_blas_core_supported(user)) {
                snprintf(error, sizeof error, "OPENBLAS_CORETYPE=%s: this CPU (%s, %s) cannot run that kernel "
                         "(it would stop with an illegal instruction); unset it or name one of: %s%sSandybridge, Prescott",
                         user, gift_cpu()->brand, gift_cpu_flags(), gift_blas_best_core(), *gift_blas_best_core() ? ", " : "");
                return;
            }
            snprintf(reason, sizeof reason, "OPENBLAS_CORETYPE=%s set by the user", user);
        } else if (*gift_blas_best_core()) {
            snprintf(requested, sizeof requested, "%s", gift_blas_best_core());
            snprintf(reason, sizeof reason, "chosen by gift for %s (%s)", gift_cpu()->brand, gift_cpu_flags());
            setenv("OPENBLAS_CORETYPE", requested, 1);
        } else {
            snprintf(reason, sizeof reason, "OpenBLAS's own choice (no AVX2 on this CPU)");
        }
    }
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (*requested) unsetenv("OPENBLAS_CORETYPE");   // children decide for themselves, as this process did
    if (!h) { snprintf(error, sizeof error, "cannot load the BLAS library %s: %s", lib, dlerror()); return; }
    p_sgemm = (sgemm_fn)resolve(h, prefix, "cblas_sgemm");
    p_set_threads = (void (*)(int))resolve(h, prefix, "openblas_set_num_threads");
    p_get_threads = (int (*)(void))resolve(h, prefix, "openblas_get_num_threads");
    p_corename = (char *(*)(void))resolve(h, prefix, "openblas_get_corename");
    p_config = (char *(*)(void))resolve(h, prefix, "openblas_get_config");
    if (!p_sgemm || !p_set_threads || !p_get_threads || !p_corename || !p_config) {
        snprintf(error, sizeof error, "%s lacks %scblas_sgemm or the openblas_* queries (not an OpenBLAS build, "
                 "or its symbols carry another prefix: GIFT_BLAS_PREFIX)", lib, prefix);
        return;
    }
    __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
}

int gift_blas_load(void) {
    if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return 0;
    pthread_once(&once, load);
    return loaded ? 0 : -1;
}
const char *gift_blas_error(void) { gift_blas_load(); return error; }

void gift_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                const float *b, int ldb, float beta, float *c, int ldc) {
    if (gift_blas_load() != 0) {   // commands load it first and report this as an error; this is the backstop
        fprintf(stderr, "gift: %s\n", error);
        abort();
    }
    // 101 row-major, 111 no transpose, 112 transpose (cblas.h's values)
    p_sgemm(101, transA ? 112 : 111, transB ? 112 : 111, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gift_blas_set_threads(int n) { if (gift_blas_load() == 0) p_set_threads(n); }
int gift_blas_get_threads(void) { return gift_blas_load() == 0 ? p_get_threads() : 1; }
const char *gift_blas_corename(void) { return gift_blas_load() == 0 ? p_corename() : "not loaded"; }
const char *gift_blas_config(void) { return gift_blas_load() == 0 ? p_config() : "not loaded"; }
const char *gift_blas_path(void) { gift_blas_load(); return path; }
const char *gift_blas_requested_core(void) { gift_blas_load(); return requested; }
const char *gift_blas_choice_reason(void) { gift_blas_load(); return reason; }
