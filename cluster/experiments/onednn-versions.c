// GEMM rate of one oneDNN library through gift's own shim (Sources/CDNNLShim), for onednn-versions.sh:
// the library is the one GIFT_ONEDNN_LIB names (or the shim's default), threads from argv[1].
// Each shape is checked against a float64 reference on sampled entries before it is timed.
// Output: one line per shape and dtype: lib, threads, dtype, shape, GFLOP/s (best of the timed runs).
#include "gift_dnnl.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

static uint16_t bf16(float f) {   // round to nearest even (inputs are finite)
    uint32_t u; memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
static float unbf16(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }

typedef struct { const char *name; int ta, tb; long m, n, k; } Shape;

// Largest |error| / (Σ|a·b| · k · 2^-24) over sampled entries: well below 1 when the product is right.
static double check(const Shape *s, int dtype, const float *a, const float *b, const float *c) {
    double worst = 0;
    for (int t = 0; t < 64; t++) {
        long i = (long)(rand() % s->m), j = (long)(rand() % s->n);
        double sum = 0, mag = 0;
        for (long p = 0; p < s->k; p++) {
            double x = s->ta ? a[p * s->m + i] : a[i * s->k + p], y = s->tb ? b[j * s->k + p] : b[p * s->n + j];
            if (dtype) { x = unbf16(bf16((float)x)); y = unbf16(bf16((float)y)); }
            sum += x * y; mag += fabs(x * y);
        }
        double e = fabs(c[i * s->n + j] - sum) / (mag * s->k * ldexp(1, -24) + 1e-30);
        if (e > worst) worst = e;
    }
    return worst;
}

static void run(const char *lib, int threads, const Shape *s, int dtype, double seconds) {
    long na = s->m * s->k, nb = s->k * s->n;
    float *a = malloc(na * 4), *b = malloc(nb * 4), *c = calloc(s->m * s->n, 4);
    uint16_t *ha = malloc(na * 2), *hb = malloc(nb * 2);
    for (long i = 0; i < na; i++) { a[i] = (float)rand() / RAND_MAX - 0.5f; ha[i] = bf16(a[i]); }
    for (long i = 0; i < nb; i++) { b[i] = (float)rand() / RAND_MAX - 0.5f; hb[i] = bf16(b[i]); }
    const void *pa = dtype ? (const void *)ha : a, *pb = dtype ? (const void *)hb : b;
    long lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    double t0 = now();
    int rc = gift_dnnl_gemm(dtype, s->ta, s->tb, s->m, s->n, s->k, 1, pa, lda, pb, ldb, 0, c, s->n);
    double first = now() - t0, best = first;
    double err = rc ? NAN : check(s, dtype, a, b, c);
    for (double spent = first; rc == 0 && spent < seconds;) {
        double t = now();
        gift_dnnl_gemm(dtype, s->ta, s->tb, s->m, s->n, s->k, 1, pa, lda, pb, ldb, 0, c, s->n);
        t = now() - t; spent += t;
        if (t < best) best = t;
    }
    double gf = rc ? 0 : 2.0 * s->m * s->n * s->k / best * 1e-9;
    printf("%-14s threads=%d %-4s %-12s %ldx%ldx%ld  %7.1f GFLOP/s  (first call %.3f s, max err/bound %.3f)%s\n",
           lib, threads, dtype ? "bf16" : "f32", s->name, s->m, s->n, s->k, gf, first, err, rc ? "  REFUSED" : "");
    fflush(stdout);
    free(a); free(b); free(c); free(ha); free(hb);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    const char *lib = argc > 2 ? argv[2] : "default";
    double seconds = argc > 3 ? atof(argv[3]) : 2.0;
    if (!gift_dnnl_available()) { printf("%s: %s\n", lib, gift_dnnl_description()); return 1; }
    fprintf(stderr, "%s: %s%s%s\n", lib, gift_dnnl_description(), *gift_dnnl_warning() ? "; " : "", gift_dnnl_warning());
    gift_dnnl_set_threads(threads);
    // `small` (d 512, MLP 1376, vocab 4096) at 1024 tokens: the head forward and its two backward
    // products, an MLP projection; then an 8B model's d=4096 projection.
    Shape shapes[] = {{"head fwd NT", 0, 1, 1024, 4096, 512}, {"head dW TN", 1, 0, 4096, 512, 1024},
                      {"head dx NN", 0, 0, 1024, 512, 4096}, {"mlp fwd NT", 0, 1, 1024, 1376, 512},
                      {"8B proj NT", 0, 1, 1024, 4096, 4096}};
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) run(lib, threads, &shapes[i], d, seconds);
    return 0;
}
