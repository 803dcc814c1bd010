// A plain-C facade over the oneDNN matmul gift needs. oneDNN is loaded at run time (dlopen), so gift
// builds and runs without it; the headers are only needed to compile the real bodies (Debian's
// libdnnl-dev 2.x, which launch/install-deps.sh installs). Without them every call reports
// "unavailable" and the GEMM interface stays on OpenBLAS.
// Which library: GIFT_ONEDNN_LIB=/path/libdnnl.so.N when set (a 2.x or 3.x build with the OpenMP
// runtime; one that cannot be loaded is reported by gift_dnnl_warning and the default is used), else
// Debian's libdnnl.so.2. Both API generations are driven, with the same results.
#ifndef GIFT_DNNL_H
#define GIFT_DNNL_H

// 1 when oneDNN was found and a first f32 matmul ran; loads it on first call (thread-safe).
int gift_dnnl_available(void);
// One line for humans: version, the library file loaded and CPU ISA, or why oneDNN is not available.
const char *gift_dnnl_description(void);
// Why GIFT_ONEDNN_LIB was not used (it could not be loaded), or "".
const char *gift_dnnl_warning(void);
// The API generation of the loaded library (2 or 3), 0 when none is loaded.
int gift_dnnl_api(void);
// 1 when the CPU has bf16 dot-product instructions (AVX512_BF16 or AMX) that oneDNN uses.
int gift_dnnl_native_bf16(void);
// 1 when the ISA oneDNN uses includes AMX (tile matrix multiply: its bf16 matmul is fast only there).
int gift_dnnl_amx(void);
// The OpenMP thread count of the calling thread (oneDNN's CPU runtime here is OpenMP).
void gift_dnnl_set_threads(int n);
int gift_dnnl_get_threads(void);

// Row-major C[m×n] = alpha · op(A) · op(B) + beta · C, op(X) = X or Xᵀ, with leading dimensions as in
// BLAS. dtype 0: A and B are float; dtype 1: A and B are bf16 bits (uint16), accumulation and C in
// float. Primitives are created once per shape and thread and reused (a per-thread LRU cache).
// Returns 0 on success, nonzero when oneDNN refused the shape (the caller falls back).
int gift_dnnl_gemm(int dtype, int transA, int transB, long m, long n, long k, float alpha,
                   const void *a, long lda, const void *b, long ldb, float beta, float *c, long ldc);

#endif
