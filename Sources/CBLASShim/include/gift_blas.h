// OpenBLAS behind dlopen, with its kernel chosen for this CPU before it loads.
//
// Debian's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernel from the CPU model when the library is
// loaded, and falls back to a generic SSE3 one ("Prescott", 5-8x slower) on CPUs newer than itself.
// It reads OPENBLAS_CORETYPE at that moment only, so gift does not link it: on first use it chooses a
// core from the instruction sets cpuid reports (unless OPENBLAS_CORETYPE is set: a user's choice is
// kept), then loads the library. GIFT_BLAS_LIB names another OpenBLAS build to load (a path); its
// symbols may carry a prefix (GIFT_BLAS_PREFIX, e.g. "scipy_" for PyPI's scipy-openblas32).
#ifndef GIFT_BLAS_H
#define GIFT_BLAS_H

// Loads the library (once, thread-safe). 0 on success; else gift_blas_error() says why.
int gift_blas_load(void);
const char *gift_blas_error(void);

// Row-major cblas_sgemm: C[m×n] = alpha · op(A) · op(B) + beta · C.
void gift_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                const float *b, int ldb, float beta, float *c, int ldc);
void gift_blas_set_threads(int n);
int gift_blas_get_threads(void);

// The core OpenBLAS runs ("Haswell", "SkylakeX", ...), its build line ("OpenBLAS 0.3.21 DYNAMIC_ARCH
// ..."), the library file loaded, the core gift asked for ("" when none), and why.
const char *gift_blas_corename(void);
const char *gift_blas_config(void);
const char *gift_blas_path(void);
const char *gift_blas_requested_core(void);
const char *gift_blas_choice_reason(void);

// The core gift would ask for on this CPU ("" where it leaves OpenBLAS's own choice), and whether a
// core name is one of OpenBLAS's generic pre-AVX kernels.
const char *gift_blas_best_core(void);
int gift_blas_core_is_generic(const char *core);
// Whether this CPU can run a core's kernels (AVX-512 cores need AVX-512; 0 for unknown names).
int gift_blas_core_supported(const char *core);

#endif
